"""`dae report RUN [RUN ...] --out DIR`: Markdown comparison table + PNG plots of the runs;
with `--against RUN [RUN ...]`, the paired comparison of two arms (dae/metrics/paired.py)."""

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
    parser.add_argument(
        "--against",
        nargs="+",
        type=Path,
        metavar="RUN",
        help="a second arm, one run per run above, paired by position (the same seed): adds "
        "paired differences runs - against with t and sign tests, and writes paired.json",
    )
    parser.add_argument(
        "--probes",
        nargs="+",
        type=Path,
        default=[],
        metavar="DIR",
        help="`dae probe --out` folders holding these runs' probes (RUN/probe is read anyway): "
        "their held-out scores join the paired table",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dae.files import write_json
    from dae.metrics.paired import compare
    from dae.metrics.report import discriminator_warnings, write_report
    from dae.run_folder import RunFolder
    from dae.runsafety import check_out_path

    if args.probes and not args.against:
        raise RunFolderError("--probes adds probe scores to the paired table: give --against too")
    runs = [*args.runs, *(args.against or [])]
    for run_dir in runs:
        if not run_dir.is_dir():
            raise MissingFileError(f"run folder not found: {run_dir}")
        folder = RunFolder(run_dir)
        if not (folder.metrics_path.is_file() or folder.eval_path.is_file()):
            # a mistyped folder would otherwise give a report with an empty column
            raise RunFolderError(f"{run_dir} is not a dae run: no metrics.jsonl or eval.json")
    check_out_path(args.out, runs)  # not a run itself, nor /, ~ or the cwd
    paired = compare(args.runs, args.against, args.probes) if args.against else None
    print(f"wrote {write_report(runs, args.out, paired)}")
    if paired is not None:
        write_json(args.out / "paired.json", paired)
        print(f"wrote {args.out / 'paired.json'}")
        for text in paired["seed_mismatches"]:
            print(f"warning: paired runs with different train.seed: {text}", file=sys.stderr)
    for text in discriminator_warnings(runs):
        print(f"warning: {text}", file=sys.stderr)
    return 0
