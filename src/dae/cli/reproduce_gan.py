"""`dae reproduce gan`: paper Table 2 (right), DCGAN / DCGAN-SimCLR / VAEGAN / DAE-VAEGAN on CIFAR-10."""

from __future__ import annotations

import argparse
from pathlib import Path

from dae.cli import add_overrides
from dae.config import ConfigError, apply_overrides, from_dict, read_yaml
from dae.errors import MissingFileError


def register_gan(what: argparse._SubParsersAction) -> None:
    """Add the `gan` experiment to `dae reproduce`."""
    gan = what.add_parser(
        "gan", help="DCGAN vs GANs with learned latents on CIFAR-10 (Table 2 right)"
    )
    gan.add_argument("--config", default=None, help="gan preset (default: built-in defaults)")
    add_overrides(gan)
    gan.add_argument(
        "--quick", action="store_true", help="small nets, short runs (~25 min on a busy 2-core CPU)"
    )
    gan.add_argument(
        "--n-eval",
        type=int,
        default=None,
        help="test images reconstructed / samples drawn and scored (default 10000; --quick: 2000)",
    )
    gan.add_argument("--data", default=None, help="data root (default: env DAE_DATA)")
    gan.add_argument(
        "--inception",
        default=None,
        metavar="PATH",
        help="FID Inception weights file: adds true FID / IS to the table",
    )
    gan.add_argument(
        "--train-features",
        action="store_true",
        help="train dae's CIFAR-10 feature classifier if it is not cached yet",
    )
    gan.add_argument(
        "--rescore", action="store_true", help="only score the images a previous run saved in --out"
    )
    gan.add_argument(
        "--rows",
        default=None,
        metavar="NAME,...",
        help="train only these rows (default: all), e.g. DCGAN,VAEGAN",
    )
    gan.add_argument("--out", type=Path, default=Path("runs/gan"), help="output folder")
    gan.add_argument(
        "--overwrite", action="store_true", help="replace a table already in --out (all its rows)"
    )
    gan.set_defaults(func=run_gan)


def _scorer(args: argparse.Namespace, reference):
    from dae.metrics.classifier import PRESETS
    from dae.reproduce.gan_table import classifier_scorer

    # --quick trains (once) the small named preset, so a fresh machine gets scores, not "pending".
    preset = PRESETS["cifar10-quick"] if args.quick else None
    train = args.train_features or args.quick
    try:
        return classifier_scorer(reference, args.data, args.inception, train, preset)
    except (ImportError, FileNotFoundError) as err:
        if args.inception:
            raise
        print(f"scores pending: {err}")
        return None


def run_gan(args: argparse.Namespace) -> int:
    from dae.data.images import load_images
    from dae.reproduce.gan import GANExperimentConfig, random_subset
    from dae.reproduce.gan_table import (
        QUICK,
        ROWS,
        markdown_table,
        read_summary,
        rescore,
        run_table,
    )
    from dae.runsafety import claim_results_dir, results_made_by

    # Before any data loads: a refusal costs nothing.
    if args.rescore:
        if results_made_by(args.out) not in ("", "reproduce gan"):
            raise MissingFileError(
                f"--rescore: no table of `dae reproduce gan` in {args.out} (results.json)"
            )
    else:
        claim_results_dir(args.out, "reproduce gan", args.overwrite)
    data = read_yaml(args.config) if args.config else {}
    overrides = ([*QUICK] if args.quick else []) + args.overrides
    cfg = from_dict(GANExperimentConfig, apply_overrides(data, overrides))
    root = args.data or cfg.data.root
    args.data = root
    test = load_images("cifar10", "test", root).images
    n_eval = args.n_eval or (2000 if args.quick else 10000)
    if args.rescore:  # score against the reference subset the run itself used
        n_eval = read_summary(args.out)["budget"]["n_eval"]
    if not 2 <= n_eval <= len(test):
        raise ConfigError("--n-eval", f"must be in [2, {len(test)}], got {n_eval}")
    known = {row.name: row for row in ROWS}
    names = args.rows.split(",") if args.rows else list(known)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError("--rows", f"unknown {unknown}; known: {', '.join(known)}")
    train = random_subset(load_images("cifar10", "train", root).images, cfg.data.limit)
    scorer = _scorer(args, random_subset(test, n_eval))
    if args.rescore:
        if scorer is None:
            return 1
        summary = rescore(args.out, scorer, train)
    else:
        rows = tuple(known[name] for name in names)
        summary = run_table(cfg, train, test, n_eval, scorer, args.out, rows=rows)
    print(markdown_table(summary), end="")
    print(f"wrote {args.out}/results.json, results.md, grid_*.png")
    return 0
