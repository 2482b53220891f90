"""How far a VQ run's encoder outputs sit from their codes, on held-out images: mean |z|, mean
code norm, mean |z - q| and the relative error mean(|z - q| / |z|) over every latent position.
docs/results.md uses it to describe DAE's better mode at S = 14,400 (its encoder outputs sit
twice as far from their codes as the baseline's).

Usage: python scripts/quantisation_error.py RUN [RUN ...] [-n 500] [--data-root ../shared/data]
"""

from __future__ import annotations

import argparse
import json

import torch

from dae.data.images import load_images
from dae.data.transforms import to_float
from dae.run import Run


@torch.no_grad()
def quantisation_error(model: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    z = model.encode(x)
    q = model.quantize.lookup(
        model.quantize.nearest(z)
    ).float()  # VQGAN.latent, without a 2nd encode
    z = z.float()
    z_norm, err = z.norm(dim=1), (z - q).norm(dim=1)  # per latent position
    return {
        "z_norm": z_norm.mean().item(),
        "code_norm": model.codebook.float().norm(dim=1).mean().item(),
        "error": err.mean().item(),
        "relative_error": (err / z_norm.clamp_min(1e-8)).mean().item(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("-n", type=int, default=500, help="test images (the first n)")
    ap.add_argument("--data-root", default=None, help="data root (default: DAE_DATA)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for path in args.runs:
        loaded = Run(path).autoencoder("final")
        data = load_images(loaded.cfg.data.name, "test", args.data_root)
        x = to_float(data.images[: args.n])
        print(json.dumps({"run": path, **quantisation_error(loaded.model, x)}))


if __name__ == "__main__":
    main()
