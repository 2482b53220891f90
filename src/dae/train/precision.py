"""Mixed precision: which autocast dtype a `train.precision` gives on a device, or why not."""

from __future__ import annotations

import torch

from dae.config import ConfigError


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`, or None for fp32; refuses slow set-ups."""
    if precision == "fp32":
        return None
    if precision == "bf16" and device.type == "cpu":
        # Without AVX-512 (or AMX) oneDNN emulates bf16 and it is slower than fp32.
        capability = torch.backends.cpu.get_cpu_capability()
        if "AVX512" not in capability and "AMX" not in capability:
            raise ConfigError(
                "train.precision",
                f"bf16 on this CPU ({capability}) would be slower than fp32; use fp32",
            )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("train.precision", "this GPU has no bf16; use fp16 or fp32")
    return torch.bfloat16 if precision == "bf16" else torch.float16
