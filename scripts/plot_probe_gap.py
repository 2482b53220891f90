"""DAE's latent against the joint model's, by the width of the fresh decoder that reads it: for
each study, the probe's test PSNR of DAE's latent minus the baseline's of the same seed, at each
probed width, with a paired t-test over the seeds. The paper's complexity claim predicts a gap
that grows in DAE's favour as the decoder narrows; one line per study, one dot per seed.

Usage: python scripts/plot_probe_gap.py --out FIG.png [--variant dae-a] [--allow KEY]
         --study LABEL STUDY_DIR PROBE.json [PROBE.json ...]   (one --study per study)
It prints the table in markdown (and writes it beside FIG as .md).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from dae.files import atomic_write
from dae.metrics.stats import format_p, paired_test

# scripts/ is not a package: the sibling report module (its probe parsing) by its folder
sys.path.insert(0, str(Path(__file__).parent))
import study_report as report  # noqa: E402

# what a decoder's score depends on besides its width: probes that differ here do not compare
RECIPE = ("steps", "lr", "batch_size", "seed", "n", "precision")


def check_recipe(probes: list[Path], allow: tuple[str, ...] = ()) -> None:
    """The probes of one study must train their decoders alike (a 1,000-step probe's width 0.25
    beside a 4,000-step probe's width 1 would read as a width effect), but for the keys in
    `allow`, differences the user has accepted (say bf16 against fp32 rounding)."""
    keys = [k for k in RECIPE if k not in allow]
    recipes = {}
    for probe in probes:
        config = json.loads(probe.read_text()).get("config", {})
        recipes[probe] = tuple(config.get(k) for k in keys)
    if len(set(recipes.values())) > 1:
        listed = "; ".join(f"{p}: {dict(zip(keys, r))}" for p, r in recipes.items())
        raise ValueError(
            f"the probes of one study use different decoder recipes ({listed}); --allow KEY "
            "accepts a difference in KEY"
        )


def width_gaps(
    root: Path, probes: list[Path], variant: str, allow: tuple[str, ...] = ()
) -> tuple[dict[float, dict[int, float]], dict[float, int]]:
    """({width: {seed: DAE - baseline probe PSNR}} over the seeds probed in both arms, {width:
    fresh decoders a run}). Probes of one run at one width with other decoder seeds (`--allow
    seed`) are averaged over the decoder seeds probed in both arms: a narrow decoder's init moves
    its score, so an init one arm lacks (a probe still running) would bias the pair. One family a
    study: a study folder with two would mix their widths."""
    check_recipe(probes, allow)
    report.probe_psnr(probes, root)  # its check: one run (by weights) under each study name
    psnr: dict = defaultdict(dict)  # (family, variant, width, seed) -> {decoder seed: PSNR}
    for probe in probes:
        init = json.loads(probe.read_text()).get("config", {}).get("seed")
        for (family, arm), by_width in report.probe_psnr([probe], root).items():
            for width, by_seed in by_width.items():
                for seed, value in by_seed.items():
                    psnr[family, arm, width, seed][init] = value
    families = {k[0] for k in psnr if k[1] == variant}
    if len(families) != 1:
        raise ValueError(f"{root}: the probes give {len(families)} families with {variant}, not 1")
    family = families.pop()
    gaps: dict = defaultdict(dict)
    decoders: dict = {}
    for (fam, arm, width, seed), dae in sorted(psnr.items()):
        base = psnr.get((fam, "baseline", width, seed), {})
        inits = set(dae) & set(base)
        if fam != family or arm != variant or not inits:
            continue
        gaps[width][seed] = float(np.mean([dae[i] - base[i] for i in inits]))
        decoders[width] = min(decoders.get(width, len(inits)), len(inits))
    if not gaps:
        raise ValueError(f"{root}: no width probed in both the baseline and {variant}")
    return dict(sorted(gaps.items())), decoders


def _row(label: str, width: float, decoders: int, values: list[float]) -> str:
    p = format_p(paired_test(np.zeros(len(values)), values).t_p) if len(values) > 1 else "–"
    ahead = sum(v > 0 for v in values)
    return (
        f"| {label} | {width:g} | {decoders} | {np.mean(values):+.2f} | {p} "
        f"| {ahead}/{len(values)} |"
    )


def table(studies: dict[str, tuple[dict, dict]]) -> str:
    """One row per study and width; with several studies, one more per width that all of them
    probed: every pair of every study pooled ("all"), each pair one observation."""
    rows = [
        "| study | decoder width | fresh decoders a run | DAE − joint, probe PSNR (dB) "
        "| paired t-test | seeds DAE ahead |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, (gaps, decoders) in studies.items():
        for width, by_seed in gaps.items():
            rows.append(_row(label, width, decoders[width], list(by_seed.values())))
    if len(studies) > 1:
        shared = set.intersection(*(set(gaps) for gaps, _ in studies.values()))
        for width in sorted(shared):
            values = [v for gaps, _ in studies.values() for v in gaps[width].values()]
            fewest = min(decoders[width] for _, decoders in studies.values())
            rows.append(_row(f"all {len(studies)} studies", width, fewest, values))
    return "\n".join(rows) + "\n"


def plot(studies: dict[str, tuple[dict, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.axhline(0, color="grey", lw=0.8)
    for i, (label, (gaps, _)) in enumerate(studies.items()):
        colour = f"C{i}"
        widths = list(gaps)
        # a small sideways offset per study keeps the seeds' dots of two studies apart
        shift = 2 ** (0.04 * (i - (len(studies) - 1) / 2))
        for w in widths:
            ax.scatter([w * shift] * len(gaps[w]), list(gaps[w].values()), color=colour, s=12)
        n = min(len(gaps[w]) for w in widths)
        ax.plot(
            [w * shift for w in widths],
            [np.mean(list(gaps[w].values())) for w in widths],
            color=colour,
            marker="o",
            label=f"{label} ({n} seed{'s' if n != 1 else ''})",
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("fresh decoder width (fraction of the run's ch)")
    ax.set_ylabel("DAE − joint, probe test PSNR (dB)")
    ax.set_title(
        "Which latent a narrower decoder reads better\n(line: mean over seeds; dots: seeds)",
        fontsize=10,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out", type=Path, required=True, help="the figure (.png); its table goes beside it (.md)"
    )
    ap.add_argument("--variant", default="dae-a", help="the DAE arm (study name's variant)")
    ap.add_argument(
        "--study",
        nargs="+",
        action="append",
        required=True,
        metavar="LABEL STUDY_DIR PROBE.json",
        help="a label, the study folder and its probe.json files",
    )
    ap.add_argument(
        "--allow",
        action="append",
        default=[],
        choices=RECIPE,
        help="a recipe key whose difference between the probes of a study is accepted",
    )
    args = ap.parse_args()
    studies = {}
    for label, root, *probes in args.study:
        if not probes:
            ap.error(f"--study {label}: give the study folder and at least one probe.json")
        try:
            paths = [Path(p) for p in probes]
            studies[label] = width_gaps(Path(root), paths, args.variant, tuple(args.allow))
        except (ValueError, FileNotFoundError) as err:
            ap.error(str(err))
    text = table(studies)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(studies, args.out)
    atomic_write(args.out.with_suffix(".md"), lambda tmp: tmp.write_text(text))
    print(text)


if __name__ == "__main__":
    main()
