"""Arms of one study side by side: DAE settings trained into separate study folders against the
same baselines (scripts/study_cpu.sh with OUT=... EXTRA=..., baselines linked in), each arm's gap
to the baseline of its seed, and every pair of arms compared seed by seed (paired t-test and
sign test on the difference of the gaps), once with the runs' own decoders and once with the
probe's full-width fresh decoder. A factorial design (two settings, two levels each) reads off
the pairs that differ in one setting.

Usage: python scripts/study_arms.py --family cifar10-vq [--variant dae-a] --out DIR
         --arm LABEL STUDY_DIR [PROBE.json ...]   (one --arm per arm, at least two)
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
from pathlib import Path

import numpy as np

from dae.files import atomic_write
from dae.metrics.stats import format_p, paired_test


def _study_report():
    """scripts/ is not a package: load the sibling report module for its run parsing."""
    path = Path(__file__).with_name("study_report.py")
    spec = importlib.util.spec_from_file_location("study_report", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _study_report()


def arm_gaps(root: Path, probes: list[Path], family: str, variant: str) -> dict[str, dict]:
    """{"own": {seed: gap}, "probe": {seed: gap}}: the variant's final test PSNR minus the
    baseline's of the same seed, with the runs' own decoders and with the full-width probe."""
    runs = report.collect(root).get(family, {})
    base, arm = runs.get("baseline", {}), runs.get(variant, {})
    own = {s: arm[s]["final_psnr"] - base[s]["final_psnr"] for s in sorted(arm) if s in base}
    probed = report.probe_psnr(probes, root)
    pb = probed.get((family, "baseline"), {}).get(1.0, {})
    pv = probed.get((family, variant), {}).get(1.0, {})
    return {"own": own, "probe": {s: pv[s] - pb[s] for s in sorted(pv) if s in pb}}


def _cell(gaps: dict[int, float]) -> str:
    if not gaps:
        return "—"
    # against zero: the mean gap, its t-test and the seeds ahead, from one paired_test
    test = paired_test([0.0] * len(gaps), list(gaps.values()))
    text = f"{test.mean_diff:+.2f}"
    if test.n >= 2:
        text += f" (p={format_p(test.t_p)}; {test.wins}/{test.n} ahead)"
    return text


def arms_table(arms: dict[str, dict]) -> str:
    lines = [
        "| arm | seeds | own decoder: PSNR − baseline (dB) | probe: PSNR − baseline (dB) |",
        "|---|---:|---:|---:|",
    ]
    for label, gaps in arms.items():
        seeds = len(set(gaps["own"]) | set(gaps["probe"]))
        lines.append(f"| {label} | {seeds} | {_cell(gaps['own'])} | {_cell(gaps['probe'])} |")
    return "\n".join(lines) + "\n"


def paired_contrast(a: dict[int, float], b: dict[int, float]) -> str:
    """b minus a over their common seeds (t-test and sign test); also study_cells.py's."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return "—"
    test = paired_test([a[s] for s in seeds], [b[s] for s in seeds])
    return (
        f"{test.mean_diff:+.2f} (t-test p={format_p(test.t_p)}; "
        f"higher on {test.wins}/{test.n}, sign p={format_p(test.sign_p)})"
    )


def contrast_table(arms: dict[str, dict]) -> str:
    """Every pair of arms, the second minus the first, paired by seed."""
    lines = [
        "| arm B − arm A | own decoder (dB) | probe (dB) |",
        "|---|---:|---:|",
    ]
    for (la, ga), (lb, gb) in itertools.combinations(arms.items(), 2):
        own, probe = (
            paired_contrast(ga["own"], gb["own"]),
            paired_contrast(ga["probe"], gb["probe"]),
        )
        lines.append(f"| {lb} − {la} | {own} | {probe} |")
    return "\n".join(lines) + "\n"


def plot(arms: dict[str, dict], path: Path) -> None:
    """Each seed's gap in each arm, one line per seed across the arms: a paired design is read
    from the lines' slopes, not from the spread of the dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(arms)
    panels = [("own", "own decoders"), ("probe", "probe (fresh decoder)")]
    panels = [p for p in panels if any(g[p[0]] for g in arms.values())]  # no empty probe panel
    fig, axes = plt.subplots(
        1, len(panels), figsize=((1.1 + 0.8 * len(labels)) * len(panels), 3.8), sharey=True
    )
    axes = np.atleast_1d(axes)
    for ax, (kind, title) in zip(axes, panels):
        seeds = sorted({s for g in arms.values() for s in g[kind]})
        for seed in seeds:
            x = [i for i, lab in enumerate(labels) if seed in arms[lab][kind]]
            y = [arms[labels[i]][kind][seed] for i in x]
            ax.plot(x, y, marker="o", alpha=0.6, label=f"seed {seed}")
        means = [
            np.mean(list(arms[lab][kind].values())) if arms[lab][kind] else np.nan for lab in labels
        ]
        ax.plot(range(len(labels)), means, "k_", markersize=24, mew=2, label="mean")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        ax.set_title(title)
    axes[0].set_ylabel("test PSNR − baseline of the seed (dB)")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", required=True, help="e.g. cifar10-vq")
    ap.add_argument("--variant", default="dae-a", help="the DAE variant of each arm (dae-a)")
    ap.add_argument(
        "--arm",
        nargs="+",
        action="append",
        required=True,
        metavar="LABEL STUDY_DIR [PROBE.json ...]",
        help="an arm: its label, its study folder, and the probe.json files of its runs (or of runs"
        " that froze the same latent, e.g. the same stage 1 with another stage 2)",
    )
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if len(args.arm) < 2:
        ap.error("give at least two --arm")
    arms = {}
    for arm in args.arm:
        if len(arm) < 2:
            ap.error(f"--arm {' '.join(arm)}: needs a label and a study folder")
        label, root, probes = arm[0], Path(arm[1]), [Path(p) for p in arm[2:]]
        if not root.is_dir():
            ap.error(f"--arm {label}: no study folder {root}")
        missing = [str(p) for p in probes if not p.is_file()]
        if missing:
            ap.error(f"--arm {label}: no probe file {', '.join(missing)}")
        try:
            gaps = arm_gaps(root, probes, args.family, args.variant)
        except ValueError as err:
            ap.error(f"--arm {label}: {err}")
        if not gaps["own"]:
            ap.error(
                f"--arm {label}: no finished {args.family} {args.variant} run paired "
                f"with a baseline in {root}"
            )
        arms[label] = gaps
    text = "\n".join(
        [
            f"### {args.family}: arms of {args.variant}, each against the baseline of its seed",
            "",
            arms_table(arms),
            f"### {args.family}: arms against each other, paired by seed",
            "",
            contrast_table(arms),
        ]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "arms.md", lambda tmp: tmp.write_text(text))
    atomic_write(args.out / "arms.json", lambda tmp: tmp.write_text(json.dumps(arms, indent=1)))
    plot(arms, args.out / "arms.png")
    print(text)


if __name__ == "__main__":
    main()
