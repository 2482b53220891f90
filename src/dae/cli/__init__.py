"""`dae` command line: one module per subcommand, each with `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys

from dae.errors import UserError

# Subcommand modules, in the order `dae --help` lists them (the architecture's order).
COMMANDS = [
    "dae.cli.data",
    "dae.cli.train",
    "dae.cli.export",
    "dae.cli.prior",
    "dae.cli.reproduce",
    "dae.cli.complexity",
    "dae.cli.evaluate",
    "dae.cli.probe",
    "dae.cli.report",
    "dae.cli.sweep",
    "dae.cli.config",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dae", description="Decoupled Autoencoders: train, reproduce, evaluate."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:  # anything else is a bug and keeps its traceback
        print(f"dae {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"dae {args.command}: interrupted", file=sys.stderr)
        return 130


def add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.steps=200 (repeatable)",
    )


if __name__ == "__main__":
    sys.exit(main())
