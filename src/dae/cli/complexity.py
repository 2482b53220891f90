"""`dae complexity`: how much generator complexity each latent needs to reach the data."""

from __future__ import annotations

import argparse
from pathlib import Path

from dae.cli import add_overrides
from dae.config import apply_overrides, from_dict, read_yaml
from dae.errors import MissingFileError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "complexity",
        help="estimate inf_{G: complexity <= c} MMD(G#P_z, P_x) for Gaussian / VAE / DAE latents",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="preset, e.g. configs/complexity_toy.yaml (default: built-in)",
    )
    add_overrides(parser)
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: runs/complexity_<dataset>)"
    )
    parser.add_argument(
        "--aggregate",
        nargs="+",
        type=Path,
        default=None,
        metavar="RUN",
        help="instead of running: merge finished runs' results.json (seeds)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from dae.runsafety import claim_results_dir
    from dae.theory.complexity import ComplexityConfig, markdown_table, run_complexity

    torch.set_num_threads(1)
    data = read_yaml(args.config) if args.config else {}
    cfg = from_dict(ComplexityConfig, apply_overrides(data, args.overrides))
    if args.aggregate:
        return _aggregate(args.aggregate, cfg.estimator.epsilons, args.out, args.overwrite)
    out = args.out or Path(f"runs/complexity_{cfg.dataset}")
    claim_results_dir(out, "complexity", args.overwrite)
    summary = run_complexity(cfg, out)
    print(markdown_table(summary), end="")
    print(f"{summary['seconds']} s; wrote {out}/results.json, results.md, curves.png")
    return 0


def _aggregate(runs: list[Path], epsilons: list[float], out: Path | None, overwrite: bool) -> int:

    from dae.errors import RunFolderError
    from dae.files import atomic_write, read_json
    from dae.runsafety import check_out_path
    from dae.theory.complexity import aggregate, plot_curves

    if out is not None:
        check_out_path(out, runs)
        if (out / "aggregate.md").exists() and not overwrite:
            raise RunFolderError(
                f"{out} already holds an aggregate (aggregate.md); pass --overwrite to replace it"
            )
    summaries = []
    for run_dir in runs:
        path = run_dir / "results.json"
        if not path.is_file():
            raise MissingFileError(f"no results.json in {run_dir}")
        summaries.append(read_json(path, f"run `dae complexity` for {run_dir} again"))
    text = aggregate(summaries, epsilons)
    print(text, end="")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "aggregate.md", lambda tmp: tmp.write_text(text))
        for run_dir, summary in zip(runs, summaries, strict=False):
            plot_curves(summary, out / f"curves_{run_dir.name}.png")
    return 0
