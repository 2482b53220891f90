"""Channel spectra of VQ runs' latents (docs/results.md, "What the better mode is").

For each run (or each kept checkpoint of a run), encode the first N images of the seeded test
subset that training's held-out rows use, and print one JSON line: the fractions of the variance
held by the leading principal directions of the encoder output z (before quantisation) and of
the code vectors (dae's latent), and how many directions hold 99 % (`dae.metrics.diagnostics`).

    python scripts/latent_spectrum.py RUN [RUN=CHECKPOINT.pt ...] [-n 2000] [--plot F.png]

`RUN=CHECKPOINT.pt` reads RUN's config with the weights of another checkpoint of it (a copy kept
while it trained). `--plot` draws the fraction of z's variance in direction `--direction` (3 by
default) against the step, one line per run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from dae.data.images import float_batch
from dae.metrics.diagnostics import channel_spectrum, pca_dims
from dae.metrics.mode import run_mode
from dae.run import Loaded, Run
from dae.train.image_task import held_out_images


def load(arg: str) -> tuple[Run, Loaded]:
    """`RUN` (its final weights) or `RUN=CHECKPOINT.pt` (RUN's config, a kept checkpoint's
    weights) -> the run and its autoencoder."""
    folder, _, ckpt = arg.partition("=")
    run = Run(folder)
    loaded = run.autoencoder("checkpoint", checkpoint=ckpt) if ckpt else run.autoencoder("auto")
    if not hasattr(loaded.model, "quantize"):
        raise SystemExit(f"{arg}: not a VQ run (no quantiser)")
    return run, loaded


def by_run(rows: list[dict], name_only: bool = False) -> dict[str, list[dict]]:
    """Rows grouped by run folder (its parent/name, the legend label; `name_only`: its name, so
    that copies of one run kept in several folders make one line), each group by step."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        folder = Path(r["run"].partition("=")[0])
        label = folder.name if name_only else f"{folder.parent.name}/{folder.name}"
        groups.setdefault(label, []).append(r)
    return {label: sorted(rs, key=lambda r: r["step"]) for label, rs in groups.items()}


def save(fig, ax, out: Path) -> None:
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


@torch.no_grad()
def measure(arg: str, n: int, keep: int = 4) -> dict:
    run, loaded = load(arg)
    model, step = loaded.model, loaded.step
    images = held_out_images(loaded.cfg.data, n)
    x = float_batch(images, torch.arange(len(images)))
    z = torch.cat([model.encode(x[i : i + 250]) for i in range(0, len(x), 250)])
    q = model.quantize.lookup(model.quantize.nearest(z))
    x_hat = torch.cat([model.decode(q[i : i + 250]) for i in range(0, len(q), 250)])
    z_frac, q_frac = channel_spectrum(z), channel_spectrum(q)
    mode = None if "=" in arg else run_mode(run.read_metrics())
    return {
        "run": arg,
        "step": step,
        "jump_step": mode["jump_step"] if mode else None,
        "z_fractions": [round(float(v), 6) for v in z_frac[:keep]],
        "code_fractions": [round(float(v), 6) for v in q_frac[:keep]],
        "z_dims": pca_dims(z_frac),
        "code_dims": pca_dims(q_frac),
        "test_l1": round(float((x_hat.float().clamp(-1, 1) - x).abs().mean()), 5),
    }


def plot(rows: list[dict], direction: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, rs in by_run(rows).items():
        share = [max(r["z_fractions"][direction - 1], 1e-6) for r in rs]
        ax.plot([r["step"] for r in rs], share, ".-", label=label)
    ax.axhline(0.01, color="0.6", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set(
        xlabel="step",
        ylabel=f"fraction of z's variance in direction {direction}",
        title="the latent's channel spectrum along training",
    )
    save(fig, ax, out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="RUN folders, or RUN=CHECKPOINT.pt")
    p.add_argument("-n", type=int, default=2000, help="test images (default 2000)")
    p.add_argument("--plot", type=Path, help="PNG of one direction's share against the step")
    p.add_argument("--direction", type=int, default=3, help="which direction --plot shows")
    args = p.parse_args(argv)
    rows = []
    for arg in args.runs:
        rows.append(measure(arg, args.n, keep=max(4, args.direction)))
        print(json.dumps(rows[-1]), flush=True)
    if args.plot:
        plot(rows, args.direction, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
