"""Plot which mode VQ runs are in: held-out test L1 and the training commitment loss (the mean
squared distance of the encoder's outputs from their codes, averaged over `--window` log rows
because one batch's value is noisy) against step, one line per run, joint baselines in blue and
DAE runs in orange. docs/results.md uses it for the better mode at S = 14,400, where the runs
that reach it show a three- to four-fold rise of the commitment loss as their test L1 drops.
It also prints each run's jump step: the first step from which that averaged loss stays at least
`--factor` times its lowest value before it (a rule, not a fit: it names when, not why).
`--by seed` colours the lines by `train.seed` instead (DAE runs dashed): runs of one
initialisation with other batch orders (`train.data_seed`) then share a colour. `--by recipe`
colours them by schedule: joint, or DAE with its weak decoder and stage-1 share, so that two DAE
recipes (a half-width decoder with 75 % and 90 % stage 1, say) can be told apart. `--by run` gives
each run its own colour and names it in the legend, by its folder where names repeat (copies of
one run continued under other batch orders, say).

Usage: python scripts/plot_mode.py RUN [RUN ...] --out FIG.png [--start 6000] [--window 8]
       [--factor 2.5] [--by arm|seed|recipe|run] [--end STEP]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dae.files import atomic_write
from dae.metrics import figures
from dae.metrics.mode import FACTOR, WINDOW, jump_step, mode_series
from dae.run import Run
from dae.run_folder import RunFolder


def rows_until(path: str, end: int | None) -> list[dict]:
    """A run's metrics rows up to step `end` (all of them for None)."""
    return [r for r in RunFolder(path).read_metrics() if end is None or r["step"] <= end]


def run_labels(runs: list[str]) -> list[str]:
    """`dae report`'s run labels, in order: the name, parent/name where two runs share a name (the
    same run in several folders, e.g. other batch orders)."""
    labels = figures.run_labels([Path(path) for path in runs])
    return [labels[Path(path)] for path in runs]


def recipe(config) -> str:
    """The schedule a run trained with, as a legend label."""
    s = config.schedule
    if s.mode == "baseline":
        return "joint"
    return f"DAE, {s.weak_decoder} weak decoder, {s.stage1_fraction:.0%} stage 1"


def plot(
    runs: list[str], out: Path, start: int, window: int, by: str = "arm", end: int | None = None
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    labelled = set()
    recipes: list[str] = []  # in order of first appearance: each keeps one colour
    for i, (path, name) in enumerate(zip(runs, run_labels(runs), strict=True)):
        config = Run(path).config()
        joint = config.schedule.mode == "baseline"
        try:
            series = mode_series(rows_until(path, end), start, window)
        except ValueError as e:
            raise SystemExit(f"{path}: {e}") from None
        if by == "seed":
            key = config.train.seed
            kw = {"color": f"C{key % 10}", "ls": "-" if joint else "--", "lw": 1, "alpha": 0.85}
            label = None if key in labelled else f"seed {key}"
        elif by == "recipe":
            key = recipe(config)
            if key not in recipes:
                recipes.append(key)
            kw = {"color": f"C{recipes.index(key) % 10}", "lw": 1, "alpha": 0.85}
            label = None if key in labelled else key
        elif by == "run":
            key, label = name, name
            kw = {"color": f"C{i % 10}", "ls": "-" if joint else "--", "lw": 1, "alpha": 0.85}
        else:
            key = joint
            kw = {"color": "tab:blue" if joint else "tab:orange", "lw": 1, "alpha": 0.85}
            label = None if key in labelled else ("baseline (joint)" if joint else "DAE")
        labelled.add(key)
        top.plot(series["test_steps"], series["test_l1"], label=label, **kw)
        bottom.plot(series["commit_steps"], series["commitment"], **kw)
        if not joint and by == "arm":  # the baselines end together: names would overlap
            last = (series["test_steps"][-1], series["test_l1"][-1])
            top.annotate(Path(path).name.rsplit("-", 1)[-1], last, fontsize=7)
    top.set_ylabel("held-out test L1")
    top.legend(fontsize=8)
    bottom.set_ylabel(f"training commitment loss\n(mean of {window} log rows)")
    bottom.set_yscale("log")
    bottom.set_xlabel("step (DAE: the weak-decoder stage, then stage 2 with the encoder frozen)")
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=120, format=out.suffix[1:] or "png"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", type=Path, required=True, help="figure file (.png)")
    ap.add_argument("--start", type=int, default=0, help="first step shown")
    ap.add_argument("--window", type=int, default=WINDOW, help="log rows averaged (commitment)")
    ap.add_argument("--factor", type=float, default=FACTOR, help="rise that counts as the jump")
    ap.add_argument(
        "--by", choices=["arm", "seed", "recipe", "run"], default="arm", help="what colours a line"
    )
    ap.add_argument("--end", type=int, help="last step shown and tabled (runs stopped early)")
    args = ap.parse_args()
    plot(args.runs, args.out, args.start, args.window, args.by, args.end)
    print(f"wrote {args.out}")
    print(f"| run | jump step (x{args.factor:g}) | commitment at the end | final test L1 |")
    print("|---|---:|---:|---:|")
    for path, name in zip(args.runs, run_labels(args.runs), strict=True):
        series = mode_series(rows_until(path, args.end), 0, args.window)
        jump = jump_step(series["commit_steps"], series["commitment"], args.factor)
        print(
            f"| {name} | {jump if jump is not None else '—'} "
            f"| {series['commitment'][-1]:.4f} | {series['test_l1'][-1]:.4f} |"
        )


if __name__ == "__main__":
    main()
