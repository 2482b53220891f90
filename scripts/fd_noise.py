"""How much of an FD-classifier difference is sampling noise? Each sample set (a `samples.npz` of
`dae sample`, and with `--real SPLIT` the real images of that split) is cut into disjoint chunks
of n images (a seeded permutation), each chunk is scored against the reference split, and the
spread of its FD and sFD over the chunks is the noise of one n-image score of that generator.
The FD of the whole set is reported beside it: FD is biased upward at small n, so the chunks'
mean sits above it. docs/results.md uses it on the DiT priors of the KL-AE study (n = 2,000,
the size `scripts/study_priors.sh` scores).

Usage: python scripts/fd_noise.py SAMPLES.npz [...] [--real train] [-n 2000] [--dataset cifar10]
       [--split test] [--features classifier:cifar10] [--out DIR]
Each set is named by its path (its parent folder for a `samples.npz`); with --out, the table is
written to DIR/fd_noise.json and DIR/fd_noise.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from dae.data.images import load_images
from dae.files import atomic_write
from dae.metrics.evaluate import load_samples
from dae.metrics.features import build_features, reference_features
from dae.metrics.fid import frechet_distance


def chunk_scores(
    feats: dict[str, torch.Tensor], real: dict[str, torch.Tensor], n: int, seed: int
) -> dict[str, list[float]]:
    """FD (and sFD where the features have a spatial map) of each disjoint n-image chunk."""
    count = len(feats["pool"]) // n
    if count < 2:
        raise SystemExit(f"need at least 2 chunks of {n} images, got {len(feats['pool'])} images")
    order = torch.randperm(len(feats["pool"]), generator=torch.Generator().manual_seed(seed))
    out: dict[str, list[float]] = {}
    for i in range(count):
        idx = order[i * n : (i + 1) * n]
        for key in ("pool", "spatial"):
            if key in feats:
                out.setdefault(key, []).append(frechet_distance(real[key], feats[key][idx]))
    return out


def summary(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values),
        "min": min(values),
        "max": max(values),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("samples", nargs="*", type=Path, help="samples.npz files of `dae sample`")
    parser.add_argument("--real", choices=["train", "test"], help="also chunk this real split")
    parser.add_argument("-n", type=int, default=2000, help="images per chunk (default 2000)")
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "mnist"])
    parser.add_argument("--split", default="test", help="reference split (default test)")
    parser.add_argument("--features", default=None, help="default classifier:<dataset>")
    parser.add_argument("--data-root", default=None, help="default: DAE_DATA")
    parser.add_argument("--seed", type=int, default=0, help="seed of the chunks' permutation")
    parser.add_argument("--out", type=Path, help="folder for fd_noise.json and fd_noise.md")
    args = parser.parse_args(argv)
    if not args.samples and not args.real:
        parser.error("give samples.npz files, --real SPLIT, or both")
    if args.real == args.split:
        parser.error("--real must differ from --split: chunks of the reference would score ~0")

    ext = build_features(args.features or f"classifier:{args.dataset}", root=args.data_root)
    ref = load_images(args.dataset, args.split, args.data_root).images
    real = reference_features(ext, ref, f"{args.dataset}-{args.split}")
    # name -> loader, so that only one set's images are in memory at a time
    sources = {
        (p.parent.name if p.name == "samples.npz" else str(p)): lambda p=p: load_samples(p)
        for p in args.samples
    }
    if args.real:
        sources[f"real {args.real}"] = lambda: (
            load_images(args.dataset, args.real, args.data_root).images
        )
    rows = []
    for name, images in sources.items():
        feats = ext.extract(images())
        chunks = chunk_scores(feats, real, args.n, args.seed)
        row = {"set": name, "images": len(feats["pool"]), "chunks": len(chunks["pool"])}
        row["fd_all"] = frechet_distance(real["pool"], feats["pool"])
        row["fd"] = summary(chunks["pool"]) | {"values": chunks["pool"]}
        if "spatial" in chunks:
            row["sfd"] = summary(chunks["spatial"]) | {"values": chunks["spatial"]}
        rows.append(row)
        print(
            f"{name}: FD of all {row['images']} {row['fd_all']:.2f}; over {row['chunks']} chunks "
            f"of {args.n}: {row['fd']['mean']:.2f} ± {row['fd']['sd']:.2f} "
            f"({row['fd']['min']:.2f}-{row['fd']['max']:.2f})",
            flush=True,
        )
    fd_name = ext.names["fd"]
    lines = [
        f"| set | images | {fd_name} of all | chunks of {args.n} | mean ± sd | min–max | sFD mean ± sd |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        sfd = f"{r['sfd']['mean']:.2f} ± {r['sfd']['sd']:.2f}" if "sfd" in r else "–"
        lines.append(
            f"| {r['set']} | {r['images']} | {r['fd_all']:.2f} | {r['chunks']} | "
            f"{r['fd']['mean']:.2f} ± {r['fd']['sd']:.2f} | "
            f"{r['fd']['min']:.2f}–{r['fd']['max']:.2f} | {sfd} |"
        )
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {"n": args.n, "reference": f"{args.dataset}-{args.split}", "features": ext.spec}
        table = json.dumps(meta | {"rows": rows}, indent=2) + "\n"
        atomic_write(args.out / "fd_noise.json", lambda tmp: tmp.write_text(table))
        atomic_write(args.out / "fd_noise.md", lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
