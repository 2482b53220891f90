"""`dae train-prior RUN_AE CONFIG` and `dae sample RUN --n N --out DIR`: generation on a latent."""

from __future__ import annotations

import argparse
from pathlib import Path

from dae.cli import add_overrides
from dae.errors import ConfigError, RunFolderError


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train-prior", help="train a GPT (VQ) or DiT (KL) prior on an autoencoder run"
    )
    train.add_argument("ae_run", type=Path, help="autoencoder run folder (from `dae train`)")
    train.add_argument("config", help="prior preset, e.g. configs/prior_gpt_cifar10.yaml")
    add_overrides(train)
    train.add_argument("--out", type=Path, help="run folder (default: runs/<ae run>-<preset>)")
    group = train.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the run in --out")
    group.add_argument("--overwrite", action="store_true", help="delete a run already in --out")
    train.set_defaults(func=run_train)

    sample = sub.add_parser("sample", help="sample images from a trained prior run")
    sample.add_argument("run", type=Path, help="prior run folder (from `dae train-prior`)")
    sample.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    sample.add_argument("--out", type=Path, help="output folder (default: RUN/samples)")
    sample.add_argument("--seed", type=int, default=0, help="sampling seed")
    sample.add_argument("--device", default=None, help="cpu, cuda, ... (default: the run's)")
    sample.add_argument(
        "--ae-weights",
        choices=["auto", "final", "checkpoint"],
        default="auto",
        help="decoder weights: final if present (auto), or the last checkpoint",
    )
    sample.add_argument(
        "--score",
        metavar="FEATURES",
        default=None,
        help="also score against the data set, e.g. classifier:cifar10 (needs dae.metrics)",
    )
    sample.add_argument(
        "--reference-split",
        default="test",
        choices=["train", "val", "test"],
        help="split of the prior's data set to score against (default test)",
    )
    sample.add_argument(
        "--overwrite", action="store_true", help="replace the samples already in --out"
    )
    add_overrides(sample)
    sample.set_defaults(func=run_sample)

    compare = sub.add_parser(
        "compare-priors", help="DAE vs baseline: one prior preset on two autoencoder runs, scored"
    )
    compare.add_argument("baseline_run", type=Path, help="baseline autoencoder run")
    compare.add_argument("dae_run", type=Path, help="DAE autoencoder run")
    compare.add_argument("config", help="prior preset")
    compare.add_argument("--out", type=Path, required=True, help="folder for both prior runs")
    compare.add_argument("--n", type=int, default=10000, help="samples per prior (default 10000)")
    compare.add_argument(
        "--score",
        metavar="FEATURES",
        default="classifier:cifar10",
        help="feature extractor for the metrics; 'none' to skip scoring",
    )
    compare.add_argument("--reference-split", default="test", choices=["train", "val", "test"])
    compare.add_argument("--seed", type=int, default=0, help="sampling seed")
    compare.add_argument(
        "--overwrite",
        action="store_true",
        help="train again a prior in --out that another config or autoencoder made",
    )
    add_overrides(compare)
    compare.set_defaults(func=run_compare)


def run_train(args: argparse.Namespace) -> int:
    from dae.experiments import load_config
    from dae.priors.train import train_prior

    kind, cfg = load_config(args.config, args.overrides)
    if kind.family != "prior":
        raise ConfigError(
            "kind", f"{args.config}: {cfg.kind} is not a prior (prior_gpt, prior_dit)"
        )
    out = args.out or Path("runs") / f"{args.ae_run.name}-{Path(args.config).stem}"
    train_prior(cfg, args.ae_run, out, resume=args.resume, overwrite=args.overwrite)
    print(f"trained {cfg.train.steps} steps; prior run folder: {out}")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from dae.priors.generate import sample_run

    if args.n < 1:
        raise ConfigError("--n", f"must be >= 1, got {args.n}")
    out = args.out or args.run / "samples"
    if (out / "samples.npz").is_file() and not args.overwrite:  # before the minutes of sampling
        raise RunFolderError(
            f"{out} already holds samples.npz; pass --overwrite to replace it, or another --out"
        )
    info = sample_run(
        args.run, args.n, out, args.seed, args.device, args.overrides, args.ae_weights
    )
    print(
        f"wrote {info['n']} samples to {out}/samples.npz and {out}/grid.png "
        f"(prior {info['prior_weights']}, decoder {info['ae_weights']})"
    )
    if args.score:
        score(args, out)
    return 0


def score(args: argparse.Namespace, out: Path) -> None:
    """`--score FEATURES`: metrics against the prior's data set, to `out/scores.json`."""
    import json

    from dae.files import atomic_write
    from dae.metrics.evaluate import score_samples
    from dae.run import Run

    data = Run(args.run).config(args.overrides).data
    scores = score_samples(out / "samples.npz", data, args.score, args.reference_split)
    text = json.dumps(scores, indent=2) + "\n"
    atomic_write(out / "scores.json", lambda tmp: tmp.write_text(text))
    print(json.dumps(scores))


def run_compare(args: argparse.Namespace) -> int:
    from dae.priors.compare import compare_priors, markdown_table

    runs = {"baseline": args.baseline_run, "dae": args.dae_run}
    features = None if args.score == "none" else args.score
    rows = compare_priors(
        runs,
        args.config,
        args.out,
        args.n,
        features,
        args.overrides,
        args.reference_split,
        args.seed,
        args.overwrite,
    )
    print(markdown_table(rows), end="")
    return 0
