"""`dae` command line: one module per subcommand, each with `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import re
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


_OUT_OF_MEMORY = re.compile(r"can't allocate memory|out of memory", re.IGNORECASE)
_ASKED = re.compile(r"tried to allocate [0-9.]+ ?\w+", re.IGNORECASE)


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
    except (MemoryError, RuntimeError) as err:
        # An impossible size (model.ch=100000, a huge batch) fails in an allocation: one line.
        text = str(err)
        if not isinstance(err, MemoryError) and not _OUT_OF_MEMORY.search(text):
            raise
        asked = _ASKED.search(text)
        detail = asked.group(0) if asked else text.splitlines()[0] if text else "MemoryError"
        print(
            f"dae {args.command}: error: out of memory ({detail}); reduce the model size or "
            "train.batch_size",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt as err:
        detail = f" ({err})" if str(err) else ""  # a training loop says where it stopped
        print(f"dae {args.command}: interrupted{detail}", file=sys.stderr)
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
