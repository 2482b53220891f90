"""dae's VQGAN against taming-transformers' modules at the identical config, side by side.

    pip install --no-deps --target /tmp/taming taming-transformers   # once, outside the project
    PYTHONPATH=src:/tmp/taming python benchmarks/vs_taming.py --steps 7 --threads 2

The step is an autoencoder step only: L1 + VQ loss, backward, Adam. taming's side is its own
`Encoder`, `Decoder` (taming.modules.diffusionmodules.model) and `VectorQuantizer`
(taming.modules.vqvae.quantize; the 2021 PyPI package has only this first quantizer), joined
with 1x1 convolutions as taming's `VQModel` joins them (that class itself imports
pytorch_lightning, so it is not used). dae's side is `dae.autoencoder.vqgan.VQGAN`.
The two are built with the same parameter count (printed) and timed interleaved in one process
— fp32 and bf16 autocast, the order alternating every round — so machine load hits both alike.
Nothing is installed here: without `taming` on the path it says so and exits with status 0.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from dae.autoencoder.vqgan import VQGAN, VQGANConfig

# The setup of issue 15: CIFAR-size VQGAN, 8x8 codes of a 512 x 64 codebook.
ARCH = {
    "ch": 64,
    "ch_mult": [1, 2, 2],
    "num_res_blocks": 2,
    "attn_resolutions": [8],
    "resolution": 32,
    "z_channels": 64,
    "n_embed": 512,
    "embed_dim": 64,
}
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def import_taming() -> tuple[object, object] | None:
    """taming's (diffusionmodules.model, vqvae.quantize) modules, or None when not importable."""
    try:
        model = importlib.import_module("taming.modules.diffusionmodules.model")
        quantize = importlib.import_module("taming.modules.vqvae.quantize")
    except ImportError:
        return None
    return model, quantize


class TamingVQ(nn.Module):
    """taming's modules joined as its `VQModel` joins them: encode, quantize, decode."""

    def __init__(self, model, quantize, arch: dict):
        super().__init__()
        trunk = {
            "ch": arch["ch"],
            "out_ch": 3,
            "ch_mult": tuple(arch["ch_mult"]),
            "num_res_blocks": arch["num_res_blocks"],
            "attn_resolutions": arch["attn_resolutions"],
            "dropout": 0.0,
            "in_channels": 3,
            "resolution": arch["resolution"],
            "z_channels": arch["z_channels"],
        }
        self.encoder = model.Encoder(double_z=False, **trunk)
        self.decoder = model.Decoder(**trunk)
        self.quantize = quantize.VectorQuantizer(arch["n_embed"], arch["embed_dim"], beta=0.25)
        self.quant_conv = nn.Conv2d(arch["z_channels"], arch["embed_dim"], 1)
        self.post_quant_conv = nn.Conv2d(arch["embed_dim"], arch["z_channels"], 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> (x_hat, VQ loss)."""
        z_q, vq_loss, _ = self.quantize(self.quant_conv(self.encoder(x)))
        return self.decoder(self.post_quant_conv(z_q)), vq_loss


class DaeVQ(nn.Module):
    """dae's VQGAN with the same (x_hat, VQ loss) return as `TamingVQ`."""

    def __init__(self, arch: dict):
        super().__init__()
        self.vqgan = VQGAN(VQGANConfig(in_channels=3, **arch))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.vqgan(x)
        return out.sample, out.vq.total


@dataclass
class Contender:
    name: str
    model: nn.Module
    step: Callable[[], None]


def make_step(model: nn.Module, x: torch.Tensor, dtype: torch.dtype | None) -> Callable[[], None]:
    """One autoencoder step: L1 + VQ loss under autocast to `dtype` (None: fp32), Adam."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=dtype) if dtype else nullcontext():
            x_hat, vq_loss = model(x)
            loss = (x - x_hat).abs().mean() + vq_loss
        loss.backward()
        opt.step()

    return step


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def compare(
    builders: dict[str, Callable[[], nn.Module]],
    batch: int,
    rounds: int,
    precisions: list[str],
    resolution: int = ARCH["resolution"],
) -> dict[str, dict[str, list[float]]]:
    """Seconds per step of every (precision, contender), interleaved round by round.

    Each (precision, contender) has its own model and Adam state, built once and warmed up with
    one untimed step (oneDNN picks its kernels on the first call).
    """
    x = torch.rand(batch, 3, resolution, resolution) * 2 - 1
    steps = {}
    for precision in precisions:
        for name, build in builders.items():
            torch.manual_seed(0)
            steps[precision, name] = make_step(build(), x, PRECISIONS[precision])
            steps[precision, name]()  # warm-up
    times: dict[str, dict[str, list[float]]] = {p: {n: [] for n in builders} for p in precisions}
    keys = list(steps)
    for r in range(rounds):
        for precision, name in keys if r % 2 == 0 else keys[::-1]:  # alternate the order
            start = time.perf_counter()
            steps[precision, name]()
            times[precision][name].append(time.perf_counter() - start)
        print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return times


def profile(builders: dict[str, Callable[[], nn.Module]], batch: int, top: int) -> str:
    """The `top` ops by self CPU time of one (warm) step of every (precision, contender)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    x = torch.rand(batch, 3, ARCH["resolution"], ARCH["resolution"]) * 2 - 1
    out = []
    for precision, dtype in PRECISIONS.items():
        for name, build in builders.items():
            torch.manual_seed(0)
            step = make_step(build(), x, dtype)
            step()
            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                step()
            events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total)[::-1]
            total = sum(e.self_cpu_time_total for e in events)
            out.append(f"\n{name} {precision}: {total / 1e3:.0f} ms self CPU")
            out += [
                f"  {e.key:<40} {e.self_cpu_time_total / 1e3:8.1f} ms {e.count:5d} calls"
                for e in events[:top]
            ]
    return "\n".join(out)


def report(times: dict[str, dict[str, list[float]]]) -> str:
    """Markdown: median ms/step of each contender and dae's speed relative to taming; also the
    fastest step of each (on a shared machine the least disturbed one)."""
    lines = [
        "| precision | taming ms/step | dae ms/step | dae speed vs taming | same, fastest steps |",
        "|---|---:|---:|---:|---:|",
    ]
    for precision, by_name in times.items():
        taming, dae = (1e3 * statistics.median(by_name[n]) for n in ("taming", "dae"))
        best = min(by_name["taming"]) / min(by_name["dae"])
        lines.append(
            f"| {precision} | {taming:.0f} | {dae:.0f} | {taming / dae:.2f}x | {best:.2f}x |"
        )
    for name in ("taming", "dae"):
        fp32, bf16 = (statistics.median(times[p][name]) for p in ("fp32", "bf16"))
        lines.append(f"\n{name}: bf16 speed vs fp32 {fp32 / bf16:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed steps per contender")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--profile", type=int, default=0, help="print the top N ops per run")
    args = parser.parse_args(argv)
    taming = import_taming()
    if taming is None:
        print(
            "taming-transformers is not importable; nothing to compare. Install it outside the "
            "project (pip install --no-deps --target DIR taming-transformers) and put DIR on "
            "PYTHONPATH."
        )
        return 0
    torch.set_num_threads(args.threads)
    builders = {"taming": lambda: TamingVQ(*taming, ARCH), "dae": lambda: DaeVQ(ARCH)}
    counts = {name: n_params(build()) for name, build in builders.items()}
    print(
        f"parameters: taming {counts['taming']:,}, dae {counts['dae']:,} "
        f"(equal: {counts['taming'] == counts['dae']})"
    )
    print(
        f"{torch.__version__}, {args.threads} threads, batch {args.batch}, "
        f"load average {os.getloadavg()[0]:.2f} at the start"
    )
    if args.profile:
        print(profile(builders, args.batch, args.profile))
        return 0
    times = compare(builders, args.batch, args.rounds, list(PRECISIONS))
    print(report(times))
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
