"""Cells of a factorial study side by side: each cell is a set of runs, one per seed (e.g. the joint
baseline at β = 0.05), read for its final test PSNR with its own decoder and with the probe's
full-width fresh decoder, and every pair of cells is compared seed by seed (paired t-test and sign
test). study_arms.py compares DAE variants, each against the baseline in its own study folder; here
a cell may hold any runs, so a setting that changes the baseline too (the VQ commitment weight β)
reads off directly: what each arm gains from it, and the arms at each of its levels.

Usage: python scripts/study_cells.py --out DIR [--probe PROBE.json ...]
         --cell LABEL RUN [RUN ...]   (one --cell per cell, at least two)
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
from pathlib import Path

from dae.files import atomic_write
from dae.run import Run
from dae.run_folder import RunFolder


def _sibling(name: str):
    """scripts/ is not a package: load a sibling script as a module."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


paired_contrast = _sibling("study_arms").paired_contrast


def final_psnr(path: Path) -> tuple[int, float]:
    """(seed, test PSNR at the last step) of a finished run; an unfinished one is an error, since
    its PSNR would be compared as if it were final."""
    cfg = Run(path).config()
    tests = [r for r in RunFolder(path).read_metrics() if "test_psnr" in r]
    if not tests:
        raise ValueError(
            f"{path}: no held-out test PSNR in its metrics (train with log.test_every)"
        )
    if tests[-1]["step"] != cfg.train.steps:
        raise ValueError(
            f"{path}: not finished (last test row at step {tests[-1]['step']} of {cfg.train.steps})"
        )
    return cfg.train.seed, float(tests[-1]["test_psnr"])


def probed_psnr(probes: list[Path]) -> dict[Path, float]:
    """Resolved run folder -> the full-width probe decoder's test PSNR. A run probed twice with
    different results (two recipes) is an error: give the probe files of one recipe."""
    found: dict[Path, tuple[float, Path]] = {}
    for probe in probes:
        for run in json.loads(probe.read_text())["runs"]:
            psnr = [d["test"]["psnr"] for d in run["decoders"] if d["width"] == 1.0]
            if not psnr:
                continue
            path = Path(run["run"]["path"]).resolve()
            first = found.setdefault(path, (psnr[0], probe))
            if first[0] != psnr[0]:
                raise ValueError(
                    f"{path}: probed in {first[1]} ({first[0]:.2f} dB) and {probe} ({psnr[0]:.2f} dB);"
                    " give the probe files of one recipe"
                )
    return {path: value for path, (value, _) in found.items()}


def read_cell(runs: list[Path], probed: dict[Path, float]) -> dict[str, dict[int, float]]:
    """{"own": {seed: PSNR}, "probe": {seed: PSNR}}; two runs of one seed in a cell are an error
    (the pairing is by seed)."""
    cell: dict[str, dict[int, float]] = {"own": {}, "probe": {}}
    for path in runs:
        seed, psnr = final_psnr(path)
        if seed in cell["own"]:
            raise ValueError(f"{path}: a second run of seed {seed} in one cell")
        cell["own"][seed] = psnr
        if path.resolve() in probed:
            cell["probe"][seed] = probed[path.resolve()]
    return cell


def _mean(values: dict[int, float]) -> str:
    return f"{sum(values.values()) / len(values):.2f}" if values else "—"


def tables(cells: dict[str, dict]) -> str:
    """Per-seed values of every cell, then every pair of cells (the second minus the first)."""
    labels = list(cells)
    seeds = sorted({s for c in cells.values() for s in c["own"]})
    lines = [
        "### Test PSNR (dB) per seed: own decoder / probe (full-width fresh decoder)",
        "",
        "| seed | " + " | ".join(labels) + " |",
        "|---:|" + "---:|" * len(labels),
    ]
    for seed in seeds:
        row = []
        for lab in labels:
            own, probe = cells[lab]["own"].get(seed), cells[lab]["probe"].get(seed)
            row.append(
                "—" if own is None else f"{own:.2f}" + ("" if probe is None else f" / {probe:.2f}")
            )
        lines.append(f"| {seed} | " + " | ".join(row) + " |")
    lines.append(
        "| mean | "
        + " | ".join(f"{_mean(c['own'])} / {_mean(c['probe'])}" for c in cells.values())
        + " |"
    )
    lines += [
        "",
        "### Cells against each other, paired by seed",
        "",
        "| cell B − cell A | own decoder (dB) | probe (dB) |",
        "|---|---:|---:|",
    ]
    for (la, a), (lb, b) in itertools.combinations(cells.items(), 2):
        own, probe = paired_contrast(a["own"], b["own"]), paired_contrast(a["probe"], b["probe"])
        lines.append(f"| {lb} − {la} | {own} | {probe} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--cell",
        nargs="+",
        action="append",
        required=True,
        metavar="LABEL RUN",
        help="a cell: its label and its runs (one per seed)",
    )
    ap.add_argument("--probe", nargs="*", type=Path, default=[], help="probe.json files")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if len(args.cell) < 2:
        ap.error("give at least two --cell")
    missing = [str(p) for p in args.probe if not p.is_file()]
    if missing:
        ap.error(f"no probe file {', '.join(missing)}")
    try:
        probed = probed_psnr(args.probe)
        cells = {}
        for label, *runs in args.cell:
            if not runs:
                ap.error(f"--cell {label}: needs at least one run")
            absent = [r for r in runs if not Path(r).is_dir()]
            if absent:
                ap.error(f"--cell {label}: no run folder {', '.join(absent)}")
            cells[label] = read_cell([Path(r) for r in runs], probed)
    except ValueError as err:
        ap.error(str(err))
    text = tables(cells)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "cells.md", lambda tmp: tmp.write_text(text))
    atomic_write(args.out / "cells.json", lambda tmp: tmp.write_text(json.dumps(cells, indent=1)))
    print(text)


if __name__ == "__main__":
    main()
