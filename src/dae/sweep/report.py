"""A sweep's tables, built from its run folders: `sweep.md`, `sweep.json`, and the figures of
dae/sweep/figures.py (`sweep.png`, `sweep_curves.png`).

Every number comes from files the runs wrote (`eval.json`, `probe/probe.json`, and
`metrics.jsonl` for the held-out curves), so the report can be rebuilt from a copy of those small
files alone (`dae sweep ... --report-only`), e.g. after a GPU machine sent back its results
without the weights.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from dae.files import atomic_write, read_json, write_json
from dae.metrics.curves import CONVERGED, final_stage_flatness, held_out_curve
from dae.metrics.paired import EXCLUDED, add_holm, stat_cells, stat_table_head
from dae.metrics.report import discriminator_verdicts
from dae.metrics.stats import paired_test, summarize
from dae.run_folder import RunFolder
from dae.sweep.figures import metric_label, plot_proxy, plot_test_curves
from dae.sweep.plan import BASELINE, SweepRun
from dae.sweep.runner import PROBE_DIR

# The generation proxy, best first: the probe's prior NLL per token (VQ) or denoising loss (KL),
# matched by the end of the flattened key. Without a probe: the decoder's Lipschitz complexity from
# `dae evaluate --metrics lipschitz`, the paper's complexity measure (a smoother latent-to-image map
# is what DAE claims makes the latent easier to model).
PROXY_SUFFIXES = (
    "test_nll_per_token",
    "test_denoising_mse_mean",
    "nll_per_token",
    "denoising_mse_mean",
    "denoising_loss",
)
FALLBACK_PROXY = "lipschitz/decoder"


def flatten(data: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested JSON as {"a/b/0/c": value}; lists of numbers (curves) are skipped."""
    out: dict[str, float] = {}
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, list) and any(isinstance(v, dict) for v in data):
        items = enumerate(data)
    else:
        if isinstance(data, int | float) and not isinstance(data, bool) and prefix:
            out[prefix] = float(data)
        return out
    for key, value in items:
        out.update(flatten(value, f"{prefix}/{key}" if prefix else str(key)))
    return out


def run_record(run: SweepRun) -> dict[str, Any]:
    """One run's numbers: its evaluation metrics, the probe's and the generation proxy."""
    fix = "delete it and run `dae sweep` again to measure it anew"
    ev = read_json(RunFolder(run.dir).eval_path, fix) or {}
    metrics = {k: v for k, v in flatten(ev.get("metrics", {})).items() if k not in EXCLUDED}
    probed = read_json(run.dir / PROBE_DIR / "probe.json", fix) or {}
    # `dae probe RUN --out RUN/probe` holds this one run: name its numbers without `runs/0/`.
    if isinstance(probed.get("runs"), list) and len(probed["runs"]) == 1:
        probed = probed["runs"][0]
    probe = flatten(probed)
    proxy_key = next(
        (k for suffix in PROXY_SUFFIXES for k in sorted(probe) if k.endswith(suffix)), None
    )
    proxy = {"source": f"probe:{proxy_key}", "value": probe[proxy_key]} if proxy_key else None
    if proxy is None and FALLBACK_PROXY in metrics:
        proxy = {"source": f"eval:{FALLBACK_PROXY}", "value": metrics[FALLBACK_PROXY]}
    # stages whose discriminator sat at chance or won outright are named beside the table
    discriminator = [
        {
            k: h[k]
            for k in ("stage", "verdict", "d_loss", "chance", "logit_gap", "tail_from", "last_step")
        }
        for h in discriminator_verdicts([run.dir]).get(run.dir, [])
    ]
    return {
        "variant": run.variant.name,
        "weakness": run.variant.weakness,
        **run_curve(run.dir),
        "value": run.variant.value,
        "seed": run.seed,
        "steps": run.steps,
        "dir": str(run.dir),
        "evaluated": bool(ev),
        "metrics": metrics,
        "probe": {f"probe/{k}": v for k, v in probe.items()},
        "proxy": proxy,
        "discriminator": discriminator,
    }


def run_curve(run_dir: Path) -> dict[str, Any]:
    """`test_curve`: the held-out rows as [step, test L1] (empty for a run trained without
    `log.test_every`, or a copy without its metrics.jsonl), and `flatness`: the relative test-L1
    gain over the last 20 % of the final stage (`dae.metrics.curves.final_stage_flatness`), None
    with too few rows to tell."""
    folder = RunFolder(run_dir)
    curve = held_out_curve(folder.read_metrics() if folder.metrics_path.is_file() else [])
    flat = final_stage_flatness(curve.steps, curve.l1, curve.stages)
    return {
        "test_curve": [[s, v] for s, v in zip(curve.steps, curve.l1, strict=True)],
        "flatness": None if math.isnan(flat) else flat,
    }


def _by_seed(records: list[dict], variant: str, metric: str) -> dict[int, float]:
    out = {}
    for r in records:
        value = (
            r["proxy"]["value"] if metric == "proxy" and r["proxy"] else r["metrics"].get(metric)
        )
        if r["variant"] == variant and value is not None and not math.isnan(value):
            out[r["seed"]] = value
    return out


def summarize_sweep(records: list[dict[str, Any]], header: dict[str, Any]) -> dict[str, Any]:
    """Per variant mean ± std of each metric; per DAE variant, the paired test against the baseline."""
    variants = list(dict.fromkeys(r["variant"] for r in records))
    metrics = list(dict.fromkeys(m for r in records for m in r["metrics"]))
    if any(r["proxy"] for r in records):
        metrics.append("proxy")
    proxy_sources = sorted({r["proxy"]["source"] for r in records if r["proxy"]})
    table: dict[str, Any] = {}
    paired: dict[str, Any] = {}
    for variant in variants:
        first = next(r for r in records if r["variant"] == variant)
        row = {"weakness": first["weakness"], "value": first["value"], "metrics": {}}
        flats = [r["flatness"] for r in records if r["variant"] == variant]
        row["max_flatness"] = max((f for f in flats if f is not None), default=None)
        for metric in metrics:
            values = _by_seed(records, variant, metric)
            if values:
                s = summarize(list(values.values()))
                row["metrics"][metric] = {"n": s.n, "mean": s.mean, "std": s.std}
        table[variant] = row
        if variant == BASELINE:
            continue
        paired[variant] = {}
        for metric in metrics:
            base, other = _by_seed(records, BASELINE, metric), _by_seed(records, variant, metric)
            seeds = sorted(set(base) & set(other))
            if seeds:
                test = paired_test([base[s] for s in seeds], [other[s] for s in seeds])
                paired[variant][metric] = {"seeds": seeds, **test.as_dict()}
    add_holm([test for tests in paired.values() for test in tests.values()])
    return {
        **header,
        "proxy_sources": proxy_sources,
        "metrics": metrics,
        "table": table,
        "paired_vs_baseline": paired,
        "runs": records,
    }


def _overrides_lines(summary: dict[str, Any]) -> list[str]:
    """The `--set`s behind the table, so that settings the arms do not share are read beside it."""
    lines = []
    for key, who in (
        ("overrides", "Every run"),
        ("baseline_overrides", "The baseline only, applied last"),
    ):
        if summary.get(key):
            lines += [f"{who}: " + ", ".join(f"`{o}`" for o in summary[key]) + ".", ""]
    return lines


def _convergence_lines(summary: dict[str, Any]) -> list[str]:
    """What the table's `last 20 %` column means, and the runs not flat by that criterion."""
    runs = summary["runs"]
    if not any(r.get("test_curve") for r in runs):
        return [
            "",
            "Convergence not measured: no run logged held-out test rows (image presets log "
            "them with `--set log.test_every=N`, a multiple of `train.log_every`), so the "
            "table cannot say whether each run's test curve has flattened.",
        ]
    lines = [
        "",
        "last 20 %: the largest relative test-L1 gain, over seeds, in the last 20 % of each "
        f"run's final stage (flat: under {100 * CONVERGED:g} %; `dae.metrics.curves`); "
        "`sweep_curves.png` draws the held-out curves.",
    ]
    steep = [r for r in runs if r.get("flatness") is not None and r["flatness"] >= CONVERGED]
    unmeasured = [r for r in runs if r.get("flatness") is None]
    if steep:
        lines.append(
            "Not flat: "
            + ", ".join(
                f"{r['variant']} seed {r['seed']} ({100 * r['flatness']:.1f} %)" for r in steep
            )
            + "; their numbers may still move with more steps."
        )
    if unmeasured:
        lines.append(
            "Too few held-out rows to tell: "
            + ", ".join(f"{r['variant']} seed {r['seed']}" for r in unmeasured)
            + "."
        )
    return lines


def markdown(summary: dict[str, Any]) -> str:
    """Two tables: mean ± std per variant, and paired differences against the baseline."""
    metrics = summary["metrics"]
    lines = [
        f"# Sweep: {summary['config']} ({summary['protocol']}, {summary['seeds']} seeds)",
        "",
        f"Budget: {summary['budget']}. Mean ± std over seeds (↑ higher is better, ↓ lower).",
        "",
        *_overrides_lines(summary),
        "| variant | steps | n | last 20 % | "
        + " | ".join(metric_label(m, summary) for m in metrics)
        + " |",
        "|---|---|---|---|" + "---|" * len(metrics),
    ]
    steps = {r["variant"]: r["steps"] for r in summary["runs"]}
    for variant, row in summary["table"].items():
        cells = []
        for m in metrics:
            s = row["metrics"].get(m)
            cells.append(f"{s['mean']:.4g} ± {s['std']:.2g}" if s else "–")
        n = max((s["n"] for s in row["metrics"].values()), default=0)
        flat = row.get("max_flatness")  # absent from a sweep.json written before it existed
        flat = "–" if flat is None else f"{100 * flat:.1f} %"
        lines.append(f"| {variant} | {steps[variant]} | {n} | {flat} | " + " | ".join(cells) + " |")
    lines += _convergence_lines(summary)
    lines += [
        "",
        "Paired against the baseline (same seed): difference variant − baseline, mean ± std, "
        "seeds above / equal / below the baseline, seeds where the variant is better (by the "
        "metric's direction), two-sided paired t-test, exact sign test, and the t-test's p "
        "Holm-adjusted over every row of this table.",
        "",
        *stat_table_head(["variant", "metric"], better="variant"),
    ]
    for variant, tests in summary["paired_vs_baseline"].items():
        for metric, t in tests.items():
            label = metric_label(metric, summary)
            lines.append(f"| {variant} | {label} | {stat_cells(label, t)} |")
    if not summary["proxy_sources"]:
        lines += ["", "No generation proxy: no probe results and no `lipschitz` evaluation."]
    silent = [
        (r, h)
        for r in summary["runs"]
        for h in r.get("discriminator", [])
        if h["verdict"] != "learning"
    ]
    if silent:
        lines += [
            "",
            "Discriminators at chance or won outright (means over the last half of each "
            "stage's GAN log rows; `dae report RUN` tables and plots them):",
            "",
        ]
        lines += [
            f"- {r['variant']} seed {r['seed']}: {h['stage']} {h['verdict']} over steps "
            f"{h['tail_from']}–{h['last_step']} (d_loss {h['d_loss']:.3g}, chance "
            f"{h['chance']:.3g}; logit real − fake {h['logit_gap']:.3g})"
            for r, h in silent
        ]
    return "\n".join(lines) + "\n"


def write_report(out: Path, summary: dict[str, Any], log=print) -> None:
    """`sweep.json`, `sweep.md` and, with matplotlib, `sweep.png` (when there is a generation
    proxy) and `sweep_curves.png` (when runs logged held-out rows) in `out`."""
    write_json(out / "sweep.json", summary)
    atomic_write(out / "sweep.md", lambda p: p.write_text(markdown(summary)))
    wrote = ["sweep.json", "sweep.md"]
    try:
        if plot_proxy(summary, out / "sweep.png"):
            wrote.append("sweep.png")
        else:
            log("sweep: no sweep.png (needs a reconstruction metric and a generation proxy)")
        if plot_test_curves(summary, out / "sweep_curves.png"):
            wrote.append("sweep_curves.png")
    except ImportError:
        log("sweep: matplotlib is missing; rebuild the plots elsewhere with --report-only")
    log(f"sweep: wrote {', '.join(str(out / w) for w in wrote)}")
