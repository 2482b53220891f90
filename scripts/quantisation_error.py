"""How far a VQ run's encoder outputs sit from their codes, on held-out images: mean |z|, mean
code norm, mean |z - q| and the relative error mean(|z - q| / |z|) over every latent position;
how close each output sits to the boundary between its code and the next-nearest one (the mean
ratio of the two Euclidean distances, d1 / d2: 0 on a code, 1 on the boundary); and how far
apart the codes in use lie (the median distance from each code picked on these images to its
nearest other code). docs/results.md uses it to describe DAE's better mode at S = 14,400 (its
encoder outputs sit twice as far from their codes as the baseline's, near the boundaries).

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
    """The numbers above for images `x`, for a `vq` quantiser (each output's code is the
    Euclidean-nearest codebook row, so one distance matrix gives q, d1, d2 and the codes in use)."""
    z = model.encode(x).float()
    z = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (positions, D)
    codebook = model.codebook.float()
    top = torch.cdist(z, codebook).topk(2, dim=1, largest=False)
    d1, d2 = top.values.unbind(1)  # d1 = |z - q|
    z_norm = z.norm(dim=1)
    between = torch.cdist(codebook, codebook).fill_diagonal_(float("inf"))
    used = top.indices[:, 0].unique()
    return {
        "z_norm": z_norm.mean().item(),
        "code_norm": codebook.norm(dim=1).mean().item(),
        "error": d1.mean().item(),
        "relative_error": (d1 / z_norm.clamp_min(1e-8)).mean().item(),
        "boundary_ratio": (d1 / d2.clamp_min(1e-8)).mean().item(),
        "code_spacing": between[used].min(1).values.median().item(),
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
        quantizer = getattr(loaded.cfg.model, "quantizer", None)
        if quantizer != "vq":
            raise SystemExit(f"{path}: needs a VQGAN with the `vq` quantiser, not {quantizer!r}")
        data = load_images(loaded.cfg.data.name, "test", args.data_root)
        x = to_float(data.images[: args.n])
        print(json.dumps({"run": path, **quantisation_error(loaded.model, x)}))


if __name__ == "__main__":
    main()
