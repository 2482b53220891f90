"""`dae config show CONFIG [--explain]`: the resolved, validated config, every default filled in;
with `--explain`, each key's help text as a comment."""

from __future__ import annotations

import argparse

import yaml

from dae.cli import add_overrides
from dae.config import explain, to_dict


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("config", help="show a preset resolved and validated")
    parser.add_argument("action", choices=["show"])
    parser.add_argument("config", help="YAML preset, e.g. configs/toy_vae.yaml")
    add_overrides(parser)
    parser.add_argument("--explain", action="store_true", help="comment every key with its help")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dae.experiments import load_preset

    cfg = load_preset(args.config, args.overrides)
    print(explain(cfg) if args.explain else yaml.safe_dump(to_dict(cfg), sort_keys=False).rstrip())
    return 0
