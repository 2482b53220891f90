"""`dae reproduce theory`: Theorem 4.1 (linear AE under norm bounds) and the 1-D toy of App. A.1."""

from __future__ import annotations

import argparse
from pathlib import Path

from dae.cli import add_overrides
from dae.config import apply_overrides, from_dict, read_yaml


def register_theory(what: argparse._SubParsersAction) -> None:
    """Add `theory` to `dae reproduce`'s experiments."""
    parser = what.add_parser(
        "theory", help="linear AE under norm bounds (Thm 4.1) and the 1-D Lipschitz toy (App. A.1)"
    )
    parser.add_argument("--config", default=None, help="YAML with linear_ae / oned sections")
    add_overrides(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/theory"), help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from dae.runsafety import claim_results_dir
    from dae.theory.report import TheoryConfig, markdown_summary, run_theory

    torch.set_num_threads(1)  # tiny batched problems: threads cost more than they give
    data = read_yaml(args.config) if args.config else {}
    cfg = from_dict(TheoryConfig, apply_overrides(data, args.overrides))
    claim_results_dir(args.out, "reproduce theory", args.overwrite)
    summary = run_theory(cfg, args.out)
    print(markdown_summary(summary), end="")
    print(f"wrote {args.out}/results.json, summary.md, linear_ae.png, oned.png")
    return 0
