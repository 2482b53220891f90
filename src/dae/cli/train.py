"""`dae train CONFIG [--set k=v] [--out RUN] [--resume | --overwrite]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dae.cli import add_overrides
from dae.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train an autoencoder (baseline or DAE) from a preset")
    parser.add_argument("config", help="YAML preset, e.g. configs/toy_vae.yaml")
    add_overrides(parser)
    parser.add_argument("--out", type=Path, help="run folder (default: runs/<preset name>)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the run in --out")
    group.add_argument("--overwrite", action="store_true", help="delete a run already in --out")
    parser.add_argument(
        "--until",
        type=int,
        metavar="N",
        help="stop after step N with a checkpoint (lr decay and stages still those of "
        "train.steps); --resume continues, as if never stopped",
    )
    parser.add_argument(
        "--lipschitz-every",
        type=int,
        default=0,
        metavar="N",
        help="log encoder/decoder Lipschitz complexity every N steps (a multiple of train.log_every)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dae.experiments import load_config
    from dae.experiments.train import train

    # Imported before training, not after: a run takes hours, and the code of an editable install
    # edited meanwhile must not break its last lines (the weights are written by then, but a
    # failed exit marks the run failed in scripts that check it).
    from dae.metrics.report import convergence_notes, discriminator_warnings

    kind, cfg = load_config(args.config, args.overrides)
    if kind.family != "autoencoder":
        other = "dae train-prior AE_RUN" if kind.family == "prior" else "dae complexity"
        raise ConfigError("kind", f"{args.config}: a {cfg.kind} preset trains with `{other}`")
    if args.lipschitz_every < 0 or args.lipschitz_every % cfg.train.log_every:
        # Checked now, not at the first measurement after training has started.
        raise ConfigError(
            "--lipschitz-every",
            f"must be a multiple of train.log_every ({cfg.train.log_every}), got "
            f"{args.lipschitz_every}",
        )
    out = args.out or Path("runs") / Path(args.config).stem
    hooks = None
    if args.lipschitz_every:
        from dae.metrics.lipschitz import hook_for_task

        hooks = lambda task: [hook_for_task(task, args.lipschitz_every)]  # noqa: E731
    trainer = train(
        cfg, out, resume=args.resume, overwrite=args.overwrite, hooks=hooks, until=args.until
    )
    if trainer.dist.is_main and not trainer.finished:
        print(f"stopped after step {trainer.step} of {cfg.train.steps}; --resume continues {out}")
    elif trainer.dist.is_main:
        print(f"trained {cfg.train.steps} steps; run folder: {out}")
        for text in convergence_notes([out]):
            print(text)
        # A discriminator that sat at chance or won outright may have made the GAN term cost
        # compute for little: say so now, not when someone reads the log.
        for text in discriminator_warnings([out]):
            print(f"warning: {text}", file=sys.stderr)
    return 0
