"""`dae config show CONFIG`: the fully resolved, validated config with every default filled in."""

from __future__ import annotations

import argparse

import yaml

from dae.cli import add_overrides
from dae.config import to_dict
from dae.experiments import load_preset


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("config", help="show a preset resolved and validated")
    parser.add_argument("action", choices=["show"])
    parser.add_argument("config", help="YAML preset, e.g. configs/toy_vae.yaml")
    add_overrides(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_preset(args.config, args.overrides)
    print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
    return 0
