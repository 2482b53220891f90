"""`dae data download mnist|cifar10 [--to DIR] [--base-url URL]`, `dae data info NAME` and
`dae data pack NAME --out F.npz --n-train N --n-test M`,
`dae data shard FOLDER OUT [--per-shard N]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from dae.data.download import BASE_URLS
from dae.paths import resolve_data_root


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="download and inspect image datasets")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    get = actions.add_parser("download", help="fetch the official archives and check their MD5s")
    get.add_argument("name", choices=sorted(BASE_URLS))
    get.add_argument("--to", type=Path, help="target folder (default: <data root>/<name>)")
    get.add_argument("--base-url", help="mirror to fetch from (default: the official host)")
    get.set_defaults(func=run_download)
    info = actions.add_parser("info", help="load a dataset split and print its shape and classes")
    info.add_argument("name", choices=["mnist", "cifar10", "folder"])
    info.add_argument("--split", default="train", choices=["train", "val", "test"])
    info.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="with --split train/val: fraction of train held out as val (default 0.1)",
    )
    info.add_argument("--root", help="data root (default: env DAE_DATA, else ~/.cache/dae/data)")
    info.set_defaults(func=run_info)
    pack = actions.add_parser(
        "pack", help="write a seeded subset as one compact uint8 .npz (for a machine without data)"
    )
    pack.add_argument("name", choices=["mnist", "cifar10"])
    pack.add_argument("--out", type=Path, required=True, help="output file, e.g. gpu_data/c10.npz")
    pack.add_argument("--n-train", type=int, required=True, help="training images to keep")
    pack.add_argument("--n-test", type=int, required=True, help="test images to keep")
    pack.add_argument("--seed", type=int, default=0, help="seed of the subset (default 0)")
    pack.add_argument("--root", help="data root (default: env DAE_DATA, else ~/.cache/dae/data)")
    pack.add_argument("--overwrite", action="store_true", help="replace a file already at --out")
    pack.set_defaults(func=run_pack)
    shard = actions.add_parser(
        "shard",
        help="pack an image folder into WebDataset-layout tar shards for data.source=stream",
    )
    shard.add_argument("folder", type=Path, help="image folder (<class>/*.jpg or flat *.jpg)")
    shard.add_argument("out", type=Path, help="folder for shard-NNNNNN.tar (must hold no shards)")
    shard.add_argument("--per-shard", type=_positive, default=10_000, help="images per shard")
    shard.set_defaults(func=run_shard)


def run_download(args: argparse.Namespace) -> int:
    from dae.data.download import download

    to = args.to or resolve_data_root(None) / args.name
    for path in download(args.name, to, args.base_url):
        print(path)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from dae.data.images import load_images

    held_out = args.val_fraction if args.split == "val" else 0.0
    data = load_images(args.name, args.split, args.root, val_fraction=held_out)
    counts = data.labels.bincount(minlength=len(data.classes)).tolist()
    print(
        f"{args.name}/{args.split}: images {tuple(data.images.shape)} uint8, {len(data.classes)} classes"
    )
    for name, count in zip(data.classes, counts, strict=True):
        print(f"  {name}: {count}")
    return 0


def run_pack(args: argparse.Namespace) -> int:
    from dae.data.packed import pack_images

    shapes = pack_images(
        args.name, args.out, args.n_train, args.n_test, args.root, args.seed, args.overwrite
    )
    size = args.out.stat().st_size / 2**20
    print(
        f"wrote {args.out} ({size:.1f} MiB): train {shapes['train_images']}, "
        f"test {shapes['test_images']} uint8"
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def run_shard(args: argparse.Namespace) -> int:
    from dae.data.shards import write_shards

    shards = write_shards(args.folder, args.out, args.per_shard)
    print(f"wrote {len(shards)} shards to {args.out}")
    return 0
