"""Mixed precision: which autocast dtype a `train.precision` gives on a device, or why not."""

from __future__ import annotations

import warnings

import torch

from dae.config import ConfigError


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: without them oneDNN emulates bf16 arithmetic."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`, or None for fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        # Measured on a 2-core AVX-512 Xeon without BF16 (benchmarks/image_ae_throughput.py):
        # a CIFAR VQGAN step ran at 0.3-0.4x the fp32 speed.
        warnings.warn(
            "train.precision=bf16: this CPU has no native bf16 (AVX512-BF16/AMX); autocast "
            "emulates it and is typically slower than fp32",
            stacklevel=2,
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("train.precision", "this GPU has no bf16; use fp16 or fp32")
    return torch.bfloat16 if precision == "bf16" else torch.float16
