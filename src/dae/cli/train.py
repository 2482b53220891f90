"""`dae train CONFIG [--set k=v] [--out RUN] [--resume | --overwrite]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from dae.cli import add_overrides
from dae.config import ConfigError, to_dict
from dae.experiments import load_experiment_config
from dae.paths import absolute_path
from dae.provenance import first_difference, pin_paths
from dae.runsafety import claim_run_dir
from dae.schedule import DAESchedule
from dae.train.checkpoint import atomic_write
from dae.train.distributed import barrier, init_distributed, shutdown
from dae.train.export import save_weights
from dae.train.trainer import Trainer


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train an autoencoder (baseline or DAE) from a preset")
    parser.add_argument("config", help="YAML preset, e.g. configs/toy_vae.yaml")
    add_overrides(parser)
    parser.add_argument("--out", type=Path, help="run folder (default: runs/<preset name>)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the run in --out")
    group.add_argument("--overwrite", action="store_true", help="delete a run already in --out")
    parser.add_argument(
        "--lipschitz-every",
        type=int,
        default=0,
        metavar="N",
        help="log encoder/decoder Lipschitz complexity every N steps (a multiple of train.log_every)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    kind, cfg = load_experiment_config(args.config, args.overrides)
    if args.lipschitz_every < 0 or args.lipschitz_every % cfg.train.log_every:
        # Checked now, not at the first measurement after training has started.
        raise ConfigError(
            "--lipschitz-every",
            f"must be a multiple of train.log_every ({cfg.train.log_every}), got "
            f"{args.lipschitz_every}",
        )
    out = args.out or Path("runs") / Path(args.config).stem
    pin_paths(cfg)  # an absolute data.root: evaluate/cache read the same data from anywhere
    config = to_dict(cfg)
    # Under `torchrun` every process runs this; rank 0 alone touches the run folder.
    info = init_distributed(cfg.train.device)
    lock = None
    try:
        if info.is_main:
            lock = claim_run_dir(out, resume=args.resume, overwrite=args.overwrite)
            saved = out / "config.yaml"
            if args.resume and saved.is_file():
                then = yaml.safe_load(saved.read_text())
                if isinstance(then.get("data"), dict):  # runs made before roots were stored
                    then["data"]["root"] = absolute_path(then["data"].get("root"))  # absolute
                diff = first_difference(config, then)
                if diff:
                    raise ConfigError(
                        diff.split(":")[0], f"differs from the run being resumed ({diff})"
                    )
            atomic_write(saved, lambda tmp: tmp.write_text(yaml.safe_dump(config, sort_keys=False)))
        barrier()
        task = kind.build_task(cfg)
        hooks = []
        if args.lipschitz_every:
            from dae.metrics.lipschitz import hook_for_task

            hooks.append(hook_for_task(task, args.lipschitz_every))
        trainer = Trainer(
            task,
            DAESchedule(cfg.schedule, cfg.train.steps),
            cfg.train,
            cfg.optim,
            run_dir=out,
            config=config,
            resume=args.resume,
            hooks=hooks,
        )
        if args.resume and info.is_main:
            print(f"resuming {out} from step {trainer.step} of {cfg.train.steps}")
        trainer.fit()
        task.finish()  # may fill in measured config values (a KL-AE's scaling_factor)
        if info.is_main:
            save_weights(out / "model.safetensors", task.model, to_dict(cfg))
            print(f"trained {cfg.train.steps} steps; run folder: {out}")
            if trainer.skipped_steps:
                print(
                    f"warning: {trainer.skipped_steps} of {cfg.train.steps} steps were skipped "
                    "for a non-finite loss (train.on_nan=skip); their updates are missing from "
                    "these weights",
                    file=sys.stderr,
                )
        barrier()
    finally:
        if lock is not None:
            lock.release()
        shutdown()
    return 0
