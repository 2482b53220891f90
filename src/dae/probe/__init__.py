"""The latent probe: how good is a run's latent, measured the same way for every run.

Freeze a run's encoder + bottleneck (as DAE stage 2 does), train fresh decoders of several widths
and one small fixed prior on it with one recipe, and report test error against decoder width:
a better latent reaches a given error with a smaller decoder (the paper's complexity-induced
distance, measured on images). See docs/probe.md.
"""

from __future__ import annotations

import importlib
from typing import Any

from dae.probe.config import ProbeConfig

# The public names and their modules, imported on first use: `dae probe --help` reads
# ProbeConfig without importing torch and the training code.
_LAZY = {
    "probe_runs": "dae.probe.runner",
    "freeze_encoder": "dae.probe.runs",
    "load_probed_run": "dae.probe.runs",
}

__all__ = ["ProbeConfig", "freeze_encoder", "load_probed_run", "probe_runs"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'dae.probe' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
