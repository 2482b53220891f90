"""`dae report RUN [RUN ...] --out DIR`: Markdown comparison table + PNG plots of the runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dae.errors import MissingFileError, RunFolderError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help="compare runs: Markdown table and plots")
    parser.add_argument(
        "runs", nargs="+", type=Path, help="run folders (evaluated with dae evaluate)"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for report.md and PNGs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dae.metrics.report import discriminator_warnings, write_report
    from dae.run_folder import RunFolder
    from dae.runsafety import check_out_path

    for run_dir in args.runs:
        if not run_dir.is_dir():
            raise MissingFileError(f"run folder not found: {run_dir}")
        folder = RunFolder(run_dir)
        if not (folder.metrics_path.is_file() or folder.eval_path.is_file()):
            # a mistyped folder would otherwise give a report with an empty column
            raise RunFolderError(f"{run_dir} is not a dae run: no metrics.jsonl or eval.json")
    check_out_path(args.out, args.runs)  # not a run itself, nor /, ~ or the cwd
    print(f"wrote {write_report(args.runs, args.out)}")
    for text in discriminator_warnings(args.runs):
        print(f"warning: {text}", file=sys.stderr)
    return 0
