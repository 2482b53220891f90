"""The latent probe: how good is a run's latent, measured the same way for every run.

Freeze a run's encoder + bottleneck (as DAE stage 2 does), train fresh decoders of several widths
and one small fixed prior on it with one recipe, and report test error against decoder width:
a better latent reaches a given error with a smaller decoder (the paper's complexity-induced
distance, measured on images). See docs/probe.md.
"""

from dae.probe.config import ProbeConfig
from dae.probe.runner import probe_runs
from dae.probe.runs import freeze_encoder, load_probed_run

__all__ = ["ProbeConfig", "freeze_encoder", "load_probed_run", "probe_runs"]
