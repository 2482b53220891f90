"""`dae config show CONFIG`: the fully resolved, validated config with every default filled in."""

from __future__ import annotations

import argparse

import yaml

from dae.cli import add_overrides
from dae.config import read_yaml, to_dict
from dae.experiments import load_experiment_config


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("config", help="show a preset resolved and validated")
    parser.add_argument("action", choices=["show"])
    parser.add_argument("config", help="YAML preset, e.g. configs/toy_vae.yaml")
    add_overrides(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dae.priors.models import PRIORS, load_prior_config

    if read_yaml(args.config).get("kind") in PRIORS:  # prior presets (dae train-prior)
        _, cfg = load_prior_config(args.config, args.overrides)
    else:
        _, cfg = load_experiment_config(args.config, args.overrides)
    print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
    return 0
