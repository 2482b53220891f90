"""`dae data download mnist|cifar10 [--to DIR] [--base-url URL]` and `dae data info NAME`."""

from __future__ import annotations

import argparse
from pathlib import Path

from dae.data.download import BASE_URLS, download
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


def run_download(args: argparse.Namespace) -> int:
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
