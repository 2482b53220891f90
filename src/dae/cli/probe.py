"""`dae probe RUN [RUN ...] --out DIR`: fresh decoders and a fixed prior on each run's frozen latent."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from dae.config import from_dict
from dae.errors import ConfigError
from dae.probe.config import ProbeConfig

# CLI flag -> ProbeConfig field, for the flags that take a value (help comes from the config).
VALUE_FLAGS = {
    "--steps": ("steps", int),
    "--lr": ("lr", float),
    "--batch-size": ("batch_size", int),
    "--seed": ("seed", int),
    "-n": ("n", int),
    "--features": ("features", str),
    "--curve-every": ("curve_every", int),
    "--curve-points": ("curve_points", int),
    "--curve-n": ("curve_n", int),
    "--prior-steps": ("prior_steps", int),
    "--prior-batch-size": ("prior_batch_size", int),
    "--prior-images": ("prior_images", int),
    "--prior-n": ("prior_n", int),
    "--device": ("device", str),
    "--precision": ("precision", str),
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "probe", help="latent probe: fresh decoders of several widths + a fixed prior per run"
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (config + final weights)")
    parser.add_argument("--out", type=Path, required=True, help="folder for probe.json and plots")
    docs = {f.name: f.metadata["help"] for f in fields(ProbeConfig)}
    defaults = ProbeConfig()
    parser.add_argument(
        "--widths",
        default=",".join(f"{w:g}" for w in defaults.widths),
        help=f"{docs['widths']}, comma-separated (default %(default)s)",
    )
    for flag, (name, kind) in VALUE_FLAGS.items():
        default = getattr(defaults, name)
        parser.add_argument(
            flag, dest=name, type=kind, default=default, help=f"{docs[name]} (default {default})"
        )
    parser.add_argument("--no-fd", action="store_true", help="skip the reconstruction FD (faster)")
    parser.add_argument("--no-prior", action="store_true", help="skip the prior probe")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a probe.json in --out that this probe would not cover (other runs, widths "
        "or recipe); the results/ it measured stay",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dae.probe.runner import probe_runs
    from dae.runsafety import check_out_path

    check_out_path(args.out, args.runs)  # not the runs themselves, nor /, ~ or the cwd

    values = {name: getattr(args, name) for name, _ in VALUE_FLAGS.values()}
    try:
        widths = [float(w) for w in args.widths.split(",") if w.strip()]
    except ValueError:
        raise ConfigError(
            "widths", f"expected numbers like 0.25,0.5,1, got {args.widths!r}"
        ) from None
    cfg = from_dict(
        ProbeConfig, {**values, "widths": widths, "fd": not args.no_fd, "prior": not args.no_prior}
    )
    probe_runs(args.runs, args.out, cfg, overwrite=args.overwrite)
    print(f"wrote {args.out / 'probe.json'}, {args.out / 'probe.png'}, {args.out / 'curves.png'}")
    return 0
