"""Mixed precision: which autocast dtype a `train.precision` gives on a device, and why.

`auto` (the default) picks bf16 autocast where the hardware does bf16 arithmetic natively (CUDA
with bf16, CPUs with AVX512-BF16 or AMX) and fp32 elsewhere. Measured on two 2-core CPUs
(docs/benchmarks.md): with AVX512-BF16 the CIFAR autoencoder and prior training steps ran
1.4-1.8x faster in bf16 than in fp32; without it oneDNN emulates bf16 and they ran at 0.3-0.4x.
On a third, with AVX2 only (no AVX-512 at all), training steps with and without the GAN term ran
at 0.04-0.07x.

Weights, optimiser state and the losses that need the range stay fp32 under autocast: the VQ
nearest-neighbour search (`autoencoder/vqgan.py`), the KL posterior (`autoencoder/kl.py`), the
GAN logits (`losses/gan.py`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch

from dae.errors import ConfigError

if TYPE_CHECKING:
    from dae.run_folder import RunFolder

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# "0": behave as on a CPU without native bf16, "1": as on one with it; unset: ask the CPU.
# Lets CI run both branches of `auto` on any machine; the test suite pins "0" (tests/conftest.py).
CPU_BF16_ENV = "DAE_CPU_BF16"


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX (or what `DAE_CPU_BF16` says): without them oneDNN emulates bf16."""
    forced = os.environ.get(CPU_BF16_ENV, "")
    if forced not in ("", "0", "1"):
        raise ConfigError(CPU_BF16_ENV, f"must be 0, 1 or unset, got {forced!r}")
    if forced:
        return forced == "1"
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


@dataclass(frozen=True)
class Precision:
    """The resolved choice: `name` is fp32, bf16 or fp16; `requested` what the config said."""

    requested: str
    name: str
    device: str
    reason: str

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for plain fp32."""
        return DTYPES[self.name]

    def autocast(self) -> contextlib.AbstractContextManager:
        """`torch.autocast` to `dtype` on the device, or a no-op for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=self.dtype)

    def describe(self) -> str:
        """One line for the log: `train.precision=auto -> bf16 on cpu (...)`."""
        return f"train.precision={self.requested} -> {self.name} on {self.device} ({self.reason})"


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """What `precision` means on `device`; an impossible request is a ConfigError."""
    if precision not in PRECISIONS:
        raise ConfigError("train.precision", f"must be one of {PRECISIONS}, got {precision!r}")
    dev = str(device)
    if device.type == "cuda":
        has_bf16 = torch.cuda.is_bf16_supported()
        if precision == "bf16" and not has_bf16:
            raise ConfigError("train.precision", "this GPU has no bf16; use fp16 or fp32")
        if precision == "auto":
            name = "bf16" if has_bf16 else "fp32"
            return Precision(precision, name, dev, f"GPU bf16 support: {has_bf16}")
        return Precision(precision, precision, dev, "as configured")
    if precision == "fp16" and device.type == "cpu":
        # also checked by TrainConfig; repeated here for callers that build no TrainConfig
        raise ConfigError("train.precision", "fp16 needs a CUDA device; use bf16")
    native = device.type == "cpu" and cpu_has_native_bf16()
    if precision == "auto":
        return Precision(precision, "bf16" if native else "fp32", dev, f"native bf16: {native}")
    if precision == "bf16" and not native:
        # An explicit request is honoured (a run that must match earlier bf16 runs), but the
        # cost is said, and recorded in precision.json: on AVX2 it can turn an hour into a day.
        emulated = (
            f"emulated: no native bf16 on this CPU ({torch.backends.cpu.get_cpu_capability()})"
        )
        warnings.warn(
            f"train.precision=bf16: {emulated}; measured (benchmarks/image_ae_throughput.py) at "
            "0.3-0.4x the fp32 speed with AVX-512 and 0.04-0.07x with AVX2 only. "
            "train.precision=auto picks fp32 here",
            stacklevel=2,
        )
        return Precision(precision, precision, dev, f"as configured, {emulated}")
    return Precision(precision, precision, dev, "as configured")


def select_precision(
    precision: str, device: torch.device, run: RunFolder | None = None, log: bool = True
) -> Precision:
    """Resolve `precision`, say the choice on stderr and record it in the run's `precision.json`."""
    choice = resolve_precision(precision, device)
    if log:
        print(choice.describe(), file=sys.stderr)
    if run is not None:
        run.write_precision(asdict(choice))
    return choice
