"""Write a synthetic image folder for the streaming benchmarks: N JPEGs of SIZE x SIZE.

    python benchmarks/make_synthetic_folder.py /tmp/synth --n 20000 --size 256

Each image is smooth colour noise (an 8x8 random image upsampled bicubically) plus fine grain,
so JPEG sizes (~20 KB at 256x256, quality 90) are near those of real photos. Seeded: the same
arguments write the same files. Not data to train on; never commit it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def write_folder(out: Path, n: int, size: int, seed: int = 0, per_dir: int = 1000) -> None:
    """`out/<NNN>/<NNNNNNN>.jpg`: class folders of `per_dir` images (the `folder` layout)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        folder = out / f"{i // per_dir:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        low = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        smooth = np.asarray(low.resize((size, size), Image.BICUBIC), dtype=np.int16)
        grain = rng.integers(-12, 13, (size, size, 3), dtype=np.int16)
        pixels = np.clip(smooth + grain, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:07d}.jpg", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_folder(args.out, args.n, args.size, args.seed)
    total = sum(p.stat().st_size for p in args.out.rglob("*.jpg"))
    print(f"{args.n} images, {total / 2**20:.0f} MiB in {args.out}")


if __name__ == "__main__":
    main()
