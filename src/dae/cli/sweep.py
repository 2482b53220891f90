"""`dae sweep CONFIG --out DIR [--seeds N] [--jobs J] [--steps S] [--grid KEY=v1,v2 ...]`."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from dae.cli import add_overrides


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "sweep",
        help="baseline vs DAE over a grid of decoder weakness and seeds, with paired tests",
        description="Train the baseline and one DAE variant per weakness setting for each seed, "
        "evaluate and probe every run, and write DIR/sweep.md, sweep.json and sweep.png. "
        "Runs go to DIR/<variant>/seed<k>/; rerunning the same command resumes a killed sweep.",
    )
    parser.add_argument(
        "config", type=Path, help="autoencoder preset, e.g. configs/mnist_vqgan.yaml"
    )
    parser.add_argument("--out", type=Path, required=True, help="sweep folder")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per variant (default 3)")
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs in parallel (above 1, one thread each)"
    )
    parser.add_argument(
        "--steps", type=int, help="step budget S (default: the preset's train.steps)"
    )
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=v1,v2",
        help="weakness values, repeatable (default: schedule.aux_width=0.25,0.5,0.75 and "
        "schedule.dropout_p=0.25,0.5,0.75); aux_width implies the aux decoder, dropout_p dropout2d",
    )
    parser.add_argument(
        "--protocol",
        choices=["equal-total", "equal-decoder"],
        default="equal-total",
        help="equal-total: every run S steps; equal-decoder: DAE's stage 2 gets S steps, "
        "stage 1 on top",
    )
    add_overrides(parser)
    parser.add_argument(
        "--baseline-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override for the baseline runs only, e.g. disc.start=... (repeatable)",
    )
    parser.add_argument(
        "--eval-metrics",
        default="recon,lipschitz,codebook",
        help="groups passed to `dae evaluate --metrics` (default recon,lipschitz,codebook)",
    )
    parser.add_argument(
        "--eval-args", default="", help="extra arguments for `dae evaluate`, e.g. '-n 2000'"
    )
    parser.add_argument(
        "--probe",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="probe each run with `dae probe RUN --out RUN/probe` (default on)",
    )
    parser.add_argument("--probe-args", default="", help="extra arguments for `dae probe`")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: rebuild the report from the run folders' eval/probe results",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dae.config import ConfigError
    from dae.errors import MissingFileError
    from dae.sweep.plan import DEFAULT_GRID, parse_grid, plan_runs
    from dae.sweep.report import run_record, summarize_sweep, write_report
    from dae.sweep.runner import RunnerOptions, check_runs_match_plan, run_all

    if args.jobs < 1:
        raise ConfigError("--jobs", f"must be >= 1, got {args.jobs}")
    grid = parse_grid(args.grid) or DEFAULT_GRID
    runs = plan_runs(
        args.config,
        args.out,
        args.seeds,
        grid,
        args.protocol,
        args.steps,
        tuple(args.overrides),
        tuple(args.baseline_set),
    )
    check_runs_match_plan(runs, args.config)
    failed = []
    if not args.report_only:
        opts = RunnerOptions(
            config=args.config,
            jobs=args.jobs,
            eval_metrics=args.eval_metrics,
            eval_args=tuple(shlex.split(args.eval_args)),
            probe=args.probe,
            probe_args=tuple(shlex.split(args.probe_args)),
        )
        failed = [r.run.label for r in run_all(runs, opts) if not r.ok]
    budget = f"{args.steps or 'preset'} steps, {args.protocol}"
    header = {
        "config": str(args.config),
        "protocol": args.protocol,
        "seeds": args.seeds,
        "budget": budget,
        "grid": {k: list(v) for k, v in grid.items()},
        "overrides": list(args.overrides),
        "baseline_overrides": list(args.baseline_set),
        "failed": failed,
    }
    records = [run_record(r) for r in runs]
    if not any(r["evaluated"] for r in records):
        raise MissingFileError(
            f"no evaluated runs under {args.out} (no eval.json); nothing to report"
        )
    summary = summarize_sweep([r for r in records if r["evaluated"]], header)
    write_report(args.out, summary)
    if failed:
        print(f"dae sweep: {len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
