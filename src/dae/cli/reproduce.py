"""`dae reproduce toy`: the paper's experiments as one command each."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dae.cli import add_overrides
from dae.cli.reproduce_gan import register_gan
from dae.cli.reproduce_theory import register_theory
from dae.config import ConfigError, apply_overrides, from_dict, read_yaml


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("reproduce", help="reproduce one of the paper's tables")
    what = parser.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    toy = what.add_parser("toy", help="8-cluster Gaussian mixture VAE: joint vs DAE (Table 2 left)")
    toy.add_argument("--config", default=None, help="toy preset (default: built-in defaults)")
    add_overrides(toy)
    toy.add_argument(
        "--seeds",
        type=int,
        default=20,
        help="seeds per row (default 20: enough for the paired tests to detect the DAE gain)",
    )
    toy.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="parallel processes (default: up to 2)",
    )
    toy.add_argument("--out", type=Path, default=Path("runs/toy"), help="output folder")
    toy.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    toy.set_defaults(func=run_toy)
    register_gan(what)
    register_theory(what)


def run_toy(args: argparse.Namespace) -> int:
    from dae.reproduce.toy import ToyExperimentConfig
    from dae.reproduce.toy_table import markdown_table, run_table
    from dae.runsafety import claim_results_dir

    if args.seeds < 2:
        raise ConfigError("--seeds", f"must be >= 2 to report a spread, got {args.seeds}")
    claim_results_dir(args.out, "reproduce toy", args.overwrite)
    data = read_yaml(args.config) if args.config else {}
    cfg = from_dict(ToyExperimentConfig, apply_overrides(data, args.overrides))
    summary = run_table(cfg, args.seeds, max(1, args.workers), args.out)
    print(markdown_table(summary), end="")
    print(
        f"{summary['seeds']} seeds x {len(summary['rows'])} rows in {summary['seconds']} s; "
        f"wrote {args.out}/results.json, results.md, latents.png"
    )
    return 0
