"""Tables and curves of the converged CPU study (scripts/study_cpu.sh): held-out test L1 / PSNR per
family and variant, mean ± std over seeds, paired differences against the baseline of the same seed
(paired t-test and exact sign test), and whether each run's test curve has flattened.

With `--probe DIR/probe.json` (a `dae probe` of the runs) it adds the probe's fresh-decoder and
prior scores, and with eval.json files in the runs (`dae evaluate --metrics
recon,codebook,diagnostics`) the latent diagnostics, each paired by seed against the baseline.

With `--priors DIR/results.json` (scripts/study_priors.sh) it adds the priors' sample scores
(GPT on VQ codes, DiT on KL latents). Several results.json for one seed (priors trained again
with another PRIOR_SEED) are averaged per seed before the paired test, and a table gives how much
a score moves when the prior is trained again.

Usage: python scripts/study_report.py runs/study --out runs/study/report [--probe P/probe.json]
       [--priors Q/results.json]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import textwrap
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from dae.config import from_dict
from dae.files import atomic_write
from dae.metrics.curves import (
    HeldOutCurve,
    final_stage_flatness,
    flatness,
    held_out_curve,
    point_flatness,
)
from dae.metrics.mode import settled_since
from dae.metrics.stats import format_p, paired_test, pearson
from dae.run_folder import RunFolder
from dae.schedule import ScheduleConfig

VARIANTS = {
    "baseline": "baseline (joint), S steps",
    "dae-a": "DAE, S/2 + S/2 (equal total steps)",
    "dae-b": "DAE, S/2 + S (equal decoder steps)",
    "dae-e": "DAE, S + S (equal encoder steps)",
}
# scripts/study_cpu.sh's share of the steps in stage 1 for each DAE variant
STAGE1_FRACTION = {"dae-a": 0.5, "dae-b": 1 / 3, "dae-e": 0.5}
COLOURS = {"baseline": "tab:blue", "dae-a": "tab:orange", "dae-b": "tab:green", "dae-e": "tab:red"}
RUN = re.compile(
    r"^(?P<family>[a-z0-9]+-[a-z]+)-(?P<variant>baseline|dae-a|dae-b|dae-e)-s(?P<seed>\d+)$"
)


def test_curve(run: Path) -> HeldOutCurve:
    """(steps, test L1, test PSNR, stage, (step, test_latent_dims) where logged) of the rows that
    carry a held-out measurement."""
    return held_out_curve(RunFolder(run).read_metrics())


def schedule_note(run: Path, variant: str) -> str:
    """A DAE run's schedule, when it is not its variant's default in study_cpu.sh (half-width aux
    decoder, the default stage-1 share, stage-2 decoder from scratch): weak decoder, share of the
    steps in stage 1, decoder init. "" for a default schedule and for the baseline. Studies run
    with `EXTRA="--set schedule..."` keep their variant's folder names, so the label comes from
    what each run was trained with."""
    config = run / "config.yaml"
    if variant not in STAGE1_FRACTION or not config.is_file():
        return ""
    sched = (yaml.safe_load(config.read_text()) or {}).get("schedule") or {}
    cfg, default = from_dict(ScheduleConfig, sched, "schedule"), ScheduleConfig()
    frac, cont = cfg.stage1_fraction, cfg.stage2.decoder_init == "continue"
    if "stage1_fraction" not in sched:  # a config without it: the variant's, as study_cpu.sh sets
        frac = STAGE1_FRACTION[variant]
    if (
        (cfg.weak_decoder, cfg.aux_width) == (default.weak_decoder, default.aux_width)
        and math.isclose(frac, STAGE1_FRACTION[variant])
        and not cont
    ):
        return ""
    weak = (
        f"Dropout2d p {cfg.dropout_p:g}"
        if cfg.weak_decoder == "dropout2d"
        else f"aux decoder at {cfg.aux_width:g} width"
    )
    return f"{weak}, {100 * frac:.0f} % in stage 1" + (", decoder continued" if cont else "")


def variant_label(variant: str, seeds: dict) -> str:
    """The variant's name in tables and legends, with its runs' schedule when not the default."""
    notes = sorted({s.get("schedule", "") for s in seeds.values()})
    if notes == [""]:
        return VARIANTS[variant]
    budget = VARIANTS[variant].split("(")[1]
    return f"DAE, {' / '.join(n or 'default schedule' for n in notes)} ({budget}"


def finished(run: Path) -> bool:
    """Final weights here, or an eval.json of them (a copy whose weights stayed elsewhere, such as
    the GPU study's results)."""
    if (run / "model.safetensors").exists():
        return True
    try:
        return json.loads((run / "eval.json").read_text()).get("weights") == "final"
    except (OSError, ValueError):
        return False


def collect(root: Path) -> dict:
    runs: dict = defaultdict(lambda: defaultdict(dict))
    for run in sorted(root.iterdir()):
        m = RUN.match(run.name)
        if not m or not finished(run):
            continue
        steps, l1, psnr, stages, dims = test_curve(run)
        runs[m["family"]][m["variant"]][int(m["seed"])] = {
            "run": str(run),
            "steps": steps,
            "test_l1": l1,
            "test_psnr": psnr,
            "stages": stages,
            "schedule": schedule_note(run, m["variant"]),
            "final_l1": l1[-1],
            "final_psnr": psnr[-1],
            "flatness": flatness(steps, l1),
            "stage_flatness": final_stage_flatness(steps, l1, stages),
            "point_flatness": point_flatness(steps, l1),
            # the weak decoder's last held-out L1 (DAE runs): which mode stage 1 ended in
            "stage1_l1": next((v for v, g in zip(l1[::-1], stages[::-1]) if g == "stage1"), None),
            # the latent's directions at the end and the step from which it held them
            "latent_dims": (dims[-1][1], settled_since(dims)) if dims else None,
        }
    return runs


def summarise(runs: dict) -> dict:
    out: dict = {}
    for family, variants in runs.items():
        base = variants.get("baseline", {})
        fam: dict = {}
        for variant, seeds in variants.items():
            l1 = np.array([s["final_l1"] for s in seeds.values()])
            psnr = np.array([s["final_psnr"] for s in seeds.values()])
            row = {
                "label": variant_label(variant, seeds),
                "seeds": sorted(seeds),
                "test_l1": [float(l1.mean()), float(l1.std(ddof=1)) if len(l1) > 1 else math.nan],
                "test_psnr": [
                    float(psnr.mean()),
                    float(psnr.std(ddof=1)) if len(psnr) > 1 else math.nan,
                ],
                "max_flatness": max(s["flatness"] for s in seeds.values()),
                "max_stage_flatness": max(s["stage_flatness"] for s in seeds.values()),
                "max_point_flatness": max(s["point_flatness"] for s in seeds.values()),
            }
            paired = sorted(set(seeds) & set(base))
            if variant != "baseline" and len(paired) >= 2:
                for key in ("final_l1", "final_psnr"):
                    a = [seeds[k][key] for k in paired]
                    b = [base[k][key] for k in paired]
                    # differences are variant - baseline; "wins" counts seeds where it is larger
                    row[f"paired_{key[6:]}"] = paired_test(b, a).as_dict()
            fam[variant] = row
        out[family] = fam
    return out


def curve_table(runs: dict, every: int = 200) -> str:
    """Mean held-out test L1 over seeds at every `every` steps, one column per variant."""
    lines = []
    for family, variants in runs.items():
        names = [v for v in VARIANTS if v in variants]
        last = max(s["steps"][-1] for v in names for s in variants[v].values())
        # Every `every` steps, or the runs' own test interval where 200 would miss its points.
        first = min(s["steps"][0] for v in names for s in variants[v].values() if s["steps"])
        every = every if first % every == 0 or every % first == 0 else first
        lines += [
            f"#### {family}: held-out test L1 during training (mean over seeds)",
            "",
            "| step | " + " | ".join(names) + " |",
            "|---:|" + "---:|" * len(names),
        ]
        for step in range(every, last + 1, every):
            cells = []
            for v in names:
                vals = [
                    s["test_l1"][s["steps"].index(step)]
                    for s in variants[v].values()
                    if step in s["steps"]
                ]
                cells.append(f"{np.mean(vals):.4f}" if vals else "")
            lines.append(f"| {step} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def decoder_step_table(runs: dict, every: int = 400) -> str:
    """Baseline and DAE (b) side by side at equal *decoder* steps k: the baseline at step k, DAE's
    stage 2 k steps in (its full decoder trains from scratch on the frozen latent). In (b) both
    decoders get the same lr schedule over the same number of steps, so this is the fair curve."""
    lines = []
    for family, variants in runs.items():
        base, dae = variants.get("baseline", {}), variants.get("dae-b", {})
        seeds = sorted(set(base) & set(dae))
        if not seeds:
            continue
        # The stage boundary: the last stage-1 test row (S/2 is a multiple of the test interval).
        start = {
            k: max(t for t, g in zip(dae[k]["steps"], dae[k]["stages"]) if g == "stage1")
            for k in seeds
        }
        lines += [
            f"#### {family}: test L1 at equal decoder steps, baseline vs DAE (b) stage 2 "
            "(mean over seeds)",
            "",
            "| decoder step | baseline | DAE (b) | DAE − baseline (seeds DAE larger) |",
            "|---:|---:|---:|---:|",
        ]
        last = min(base[k]["steps"][-1] for k in seeds)
        for step in range(every, last + 1, every):
            a, b = [], []
            for k in seeds:
                at = start[k] + step
                if step in base[k]["steps"] and at in dae[k]["steps"]:
                    a.append(base[k]["test_l1"][base[k]["steps"].index(step)])
                    b.append(dae[k]["test_l1"][dae[k]["steps"].index(at)])
            if a:
                wins = sum(y > x for x, y in zip(a, b))
                lines.append(
                    f"| {step} | {np.mean(a):.4f} | {np.mean(b):.4f} | "
                    f"{np.mean(b) - np.mean(a):+.4f} ({wins}/{len(a)}) |"
                )
        lines.append("")
    return "\n".join(lines)


def markdown(summary: dict) -> str:
    lines = []
    for family, fam in summary.items():
        lines += [
            f"### {family}",
            "",
            "| variant | seeds | test L1 ↓ | test PSNR (dB) ↑ | Δ L1 vs baseline (paired) | "
            "Δ PSNR vs baseline (paired) | last-20 % L1 gain (max) | "
            "the same, final stage only | the same, 3 points at 80 % against the last 3 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for variant in VARIANTS:
            if variant not in fam:
                continue
            r = fam[variant]
            cells = []
            for key in ("l1", "psnr"):
                p = r.get(f"paired_{key}")
                cells.append(
                    "—"
                    if p is None
                    else f"{p['mean_diff']:+.4f} (t-test p={p['t_p']:.3f}, "
                    f"larger on {p['wins']}/{p['n']} seeds, sign p={p['sign_p']:.2f})"
                )
            lines.append(
                f"| {r['label']} | {len(r['seeds'])} | {r['test_l1'][0]:.4f} ± "
                f"{r['test_l1'][1]:.4f} | {r['test_psnr'][0]:.2f} ± {r['test_psnr'][1]:.2f} | "
                f"{cells[0]} | {cells[1]} | {100 * r['max_flatness']:.1f} % | "
                f"{100 * r['max_stage_flatness']:.1f} % | {100 * r['max_point_flatness']:.1f} % |"
            )
        lines.append("")
    return "\n".join(lines)


EVAL_KEYS = {  # eval.json "metrics" key -> label (lower is better unless marked ↑)
    "psnr": "eval PSNR on 2,000 test images (dB) ↑",
    "codebook_perplexity": "code perplexity",
    "linear_probe_acc": "linear-probe accuracy of the latent ↑",
    "latent_hf_fraction": "latent DCT high-frequency fraction",
    "gmm_modes": "GMM modes (BIC, PCA-8)",
    "lipschitz/encoder": "Lipschitz estimate, encoder",
    "lipschitz/decoder": "Lipschitz estimate, decoder",
}


def paired_rows(pairs: dict[str, dict[int, dict[str, float]]], variant: str = "dae-a") -> list[str]:
    """Markdown rows `label | baseline | DAE | paired difference` from {variant: {seed: values}}."""
    base, dae = pairs.get("baseline", {}), pairs.get(variant, {})
    seeds = sorted(set(base) & set(dae))
    rows = []
    for key in sorted({k for v in base.values() for k in v}):
        a = [base[s][key] for s in seeds if key in base[s] and key in dae[s]]
        b = [dae[s][key] for s in seeds if key in base[s] and key in dae[s]]
        if len(a) < 2:
            continue
        p = paired_test(a, b)
        rows.append(
            f"| {key} | {np.mean(a):.4g} ± {np.std(a, ddof=1):.2g} | {np.mean(b):.4g} ± "
            f"{np.std(b, ddof=1):.2g} | {p.mean_diff:+.4g} (t-test p={p.t_p:.3f}; DAE larger on "
            f"{p.wins}/{p.n} seeds, sign p={p.sign_p:.2f}) |"
        )
    return rows


def probe_match(probe: Path, run: dict, root: Path) -> re.Match | None:
    """The study name of a probed run: its own folder name, or, for a probe written inside a run
    folder (`dae sweep`'s RUN/probe/probe.json) that ROOT names by a link, the link's name."""
    m = RUN.match(run["run"]["name"])
    if m or not root.is_dir():
        return m
    owner = probe.resolve().parent.parent
    for entry in root.iterdir():
        if entry.resolve() == owner:
            return RUN.match(entry.name)
    return None


def prior_draws(priors: list[Path]) -> dict:
    """{(family, seed): [{variant: {label: value}}, one per results.json]}. Several files for one
    seed are priors trained again on the same latents (scripts/study_priors.sh PRIOR_SEED); a
    file named twice (overlapping globs) counts once."""
    draws: dict = defaultdict(list)
    for result in dict.fromkeys(p.resolve() for p in priors):
        per_seed: dict = defaultdict(lambda: defaultdict(dict))
        for row in json.loads(result.read_text()):
            m = RUN.match(Path(row["ae_run"]).name)
            if not m:
                continue
            prior = "DiT" if m["family"].endswith("-kl") else "GPT"
            for key, value in row.items():
                # a score's own spread over sample splits (`_std`) is not a measure to pair
                if isinstance(value, (int, float)) and key != "n" and not key.endswith("_std"):
                    label = f"{prior} prior, {row['n']} samples: {key}"
                    per_seed[(m["family"], int(m["seed"]))][m["variant"]][label] = value
        for key, arms in per_seed.items():
            draws[key].append(arms)
    return draws


def pooled_sd(groups: list[list[float]]) -> tuple[float, int]:
    """The pooled within-group sd and its degrees of freedom (groups of one add nothing)."""
    groups = [g for g in groups if len(g) > 1]
    df = sum(len(g) - 1 for g in groups)
    if not df:
        return math.nan, 0
    return math.sqrt(sum(float(np.sum((np.array(g) - np.mean(g)) ** 2)) for g in groups) / df), df


def prior_noise(draws: dict, variant: str = "dae-a") -> str:
    """How much the priors' scores move when a prior is trained again on the same latent: the
    pooled sd of one score and of a seed's DAE - baseline difference, over the priors of each
    seed. Empty when no seed has more than one prior."""
    lines = []
    for family in sorted({f for f, _ in draws}):
        seeds = {s: d for (f, s), d in draws.items() if f == family and len(d) > 1}
        if not seeds:
            continue
        labels = sorted({k for d in seeds.values() for arms in d for v in arms.values() for k in v})
        rows = []
        for label in labels:
            scores = [
                [arms[v][label] for arms in d if label in arms.get(v, {})]
                for d in seeds.values()
                for v in ("baseline", variant)
            ]
            diffs = [
                [
                    arms[variant][label] - arms["baseline"][label]
                    for arms in d
                    if label in arms.get(variant, {}) and label in arms.get("baseline", {})
                ]
                for d in seeds.values()
            ]
            sd, df = pooled_sd(scores)
            dsd, ddf = pooled_sd(diffs)
            if df:
                rows.append(f"| {label} | {sd:.3g} ({df} df) | {dsd:.3g} ({ddf} df) |")
        counts = ", ".join(f"s{s}: {len(d)}" for s, d in sorted(seeds.items()))
        lines += [
            f"### {family}: the priors trained again on the same latents ({counts} priors)",
            "",
            "The paired tables above take each seed's mean over its priors.",
            "",
            "| measure | pooled sd of one score | pooled sd of a seed's DAE − baseline |",
            "|---|---:|---:|",
            *rows,
            "",
        ]
    return "\n".join(lines)


def probe_and_eval(root: Path, probes: list[Path], priors: list[Path] = ()) -> str:
    """Paired tables of the probe (per decoder width, prior), of the priors' samples
    (`dae compare-priors` results.json; a seed's several priors averaged) and of eval.json
    diagnostics."""
    values: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    draws = prior_draws(priors)
    for (family, seed), seed_draws in draws.items():
        for variant in {v for arms in seed_draws for v in arms}:
            cell = values[family][variant][seed]
            for label in {k for arms in seed_draws for k in arms.get(variant, {})}:
                got = [
                    arms[variant][label] for arms in seed_draws if label in arms.get(variant, {})
                ]
                cell[label] = float(np.mean(got))
    for probe in probes:
        for run in json.loads(probe.read_text())["runs"]:
            m = probe_match(probe, run, root)
            if not m:
                continue
            cell = values[m["family"]][m["variant"]][int(m["seed"])]
            for dec in run["decoders"]:
                for metric, value in dec["test"].items():
                    cell[f"probe w={dec['width']:g}: test {metric}"] = value
            prior = run.get("prior") or {}
            for key in ("test_nll_per_token", "test_denoising_mse_mean"):
                if key in prior:
                    cell[f"prior probe: {key}"] = prior[key]
    for run in sorted(root.iterdir()):
        m = RUN.match(run.name)
        if not m or not (run / "eval.json").is_file():
            continue
        metrics = json.loads((run / "eval.json").read_text()).get("metrics", {})
        cell = values[m["family"]][m["variant"]][int(m["seed"])]
        for key, label in EVAL_KEYS.items():
            if isinstance(metrics.get(key), (int, float)):
                cell[label] = metrics[key]
    lines = []
    for family, pairs in values.items():
        for variant in ("dae-a", "dae-e"):  # the arms whose encoders are probed
            rows = paired_rows(pairs, variant)
            if not rows:
                continue
            budget = VARIANTS[variant].split("(")[1].rstrip(")")
            lines += [
                f"### {family}: probe and latent diagnostics, baseline vs DAE ({budget})",
                "",
                "| measure | baseline | DAE | DAE − baseline (paired by seed) |",
                "|---|---:|---:|---:|",
                *rows,
                "",
            ]
    return "\n".join(lines + [prior_noise(draws)])


def plot(runs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = sorted(runs)
    fig, axes = plt.subplots(1, len(fams), figsize=(5 * len(fams), 4), squeeze=False)
    for ax, family in zip(axes[0], fams):
        for variant, seeds in sorted(runs[family].items()):
            for i, (_seed, s) in enumerate(sorted(seeds.items())):
                ax.plot(
                    s["steps"],
                    s["test_l1"],
                    color=COLOURS[variant],
                    alpha=0.8,
                    lw=1,
                    # a schedule makes a long name: wrapped, the legend keeps to a corner
                    label=textwrap.fill(variant_label(variant, seeds), 40) if i == 0 else None,
                )
        ax.set_title(f"{family}: held-out test L1 (1,000 images)")
        ax.set_xlabel("step (DAE: stage 1 trains with the weak decoder)")
        ax.set_ylabel("test L1")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))


def probe_psnr(probes: list[Path], root: Path) -> dict:
    """(family, variant) -> decoder width -> {seed: probe test PSNR}. A run probed twice (the
    baseline beside (a) and beside (e), with the same deterministic recipe) counts once; two
    different runs (by weights hash) under one study name are an error, not a silent pick."""
    seeded: dict = defaultdict(lambda: defaultdict(dict))
    weights: dict = {}  # study name -> (weights hash, the probe file that named it first)
    for probe in probes:
        for run in json.loads(probe.read_text())["runs"]:
            m = probe_match(probe, run, root)
            if not m:
                continue
            sha = run["run"].get("weights_sha256")
            first = weights.setdefault(m.group(0), (sha, probe))
            if sha and first[0] and first[0] != sha:
                raise ValueError(
                    f"{m.group(0)}: {first[1]} and {probe} probe different runs of that name"
                    f" (weights {first[0]} and {sha}); give the probe files of one of them"
                )
            for dec in run["decoders"]:
                seeded[m["family"], m["variant"]][dec["width"]][int(m["seed"])] = dec["test"][
                    "psnr"
                ]
    return seeded


def seed_table(runs: dict, probes: dict) -> str:
    """Final test PSNR of every run, one row per seed, its full-width probe's beside it, each
    DAE run's weak-decoder test L1 at the end of stage 1 and, where logged, the latent directions
    each run ends with and the step from which it held them: when runs land in different modes,
    the per-seed values show it (and where stage 1 left the latent) where mean ± std hides it."""
    lines = []
    for family, variants in sorted(runs.items()):
        names = [v for v in VARIANTS if v in variants]
        probed = [v for v in names if 1.0 in probes.get((family, v), {})]
        staged = [v for v in names if any(r["stage1_l1"] is not None for r in variants[v].values())]
        dimmed = [v for v in names if any(r["latent_dims"] for r in variants[v].values())]
        header = [
            *names,
            *(f"probe {v}" for v in probed),
            *(f"stage-1 L1 {v}" for v in staged),
            *(f"dims {v}" for v in dimmed),
        ]
        lines += [
            f"#### {family}: test PSNR (dB) per seed (runs' own decoders; probe: full-width"
            " fresh decoder; stage-1 L1: the weak decoder's last test L1; dims: the latent's"
            " last `test_latent_dims`, from the step it held them)",
            "",
            "| seed | " + " | ".join(header) + " |",
            "|---:|" + "---:|" * len(header),
        ]
        seeds = sorted({s for v in names for s in variants[v]})
        for seed in seeds:
            own = [variants[v].get(seed, {}).get("final_psnr") for v in names]
            fresh = [probes[family, v][1.0].get(seed) for v in probed]
            weak = [variants[v].get(seed, {}).get("stage1_l1") for v in staged]
            cells = ["—" if x is None else f"{x:.2f}" for x in (*own, *fresh)]
            cells += ["—" if x is None else f"{x:.3f}" for x in weak]
            held = [variants[v].get(seed, {}).get("latent_dims") for v in dimmed]
            cells += ["—" if x is None else f"{x[0]} from {x[1]}" for x in held]
            lines.append(f"| {seed} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += [line for v in staged if (line := mode_line(variants, v))]
    return "\n".join(lines)


def mode_line(variants: dict, variant: str) -> str:
    """How well the end of stage 1 predicts the outcome: Pearson r between a DAE run's stage-1
    test L1 and its final PSNR gap to the baseline of its seed, with the p of no correlation
    ('' below three paired seeds, or when either has no spread and r is undefined)."""
    base = variants.get("baseline", {})
    runs = variants[variant]
    seeds = [s for s in sorted(runs) if s in base and runs[s]["stage1_l1"] is not None]
    if len(seeds) < 3:
        return ""
    weak = [runs[s]["stage1_l1"] for s in seeds]
    gap = [runs[s]["final_psnr"] - base[s]["final_psnr"] for s in seeds]
    r, p = pearson(weak, gap)
    if math.isnan(r):
        return ""
    return (
        f"{variant}: Pearson r(stage-1 L1, PSNR − baseline) = {r:+.2f} over {len(seeds)} seeds"
        f" (p={format_p(p)})\n"
    )


def plot_probe(seeded: dict, path: Path, runs: dict | None = None) -> None:
    """Probe test PSNR against fresh-decoder width, mean ± std over seeds, one line per variant
    and family (`seeded`: `probe_psnr`'s; `runs`: `collect`'s, for the variants' schedules): the
    better latent reaches a given quality with a narrower decoder."""
    psnr = {k: {w: list(v.values()) for w, v in by_w.items()} for k, by_w in seeded.items()}
    if not psnr:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = sorted({f for f, _ in psnr})
    fig, axes = plt.subplots(1, len(fams), figsize=(4.5 * len(fams), 3.6), squeeze=False)
    for ax, family in zip(axes[0], fams):
        for (fam, variant), by_width in sorted(psnr.items()):
            if fam != family:
                continue
            widths = sorted(by_width)
            mean = [np.mean(by_width[w]) for w in widths]
            std = [np.std(by_width[w], ddof=1) if len(by_width[w]) > 1 else 0 for w in widths]
            n = min(len(by_width[w]) for w in widths)
            name = variant_label(variant, (runs or {}).get(fam, {}).get(variant, {}))
            label = textwrap.fill(f"{name}, {n} seed{'s' if n != 1 else ''}", 40)
            ax.errorbar(widths, mean, yerr=std, color=COLOURS[variant], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("fresh decoder width (fraction of the run's ch)")
        ax.set_ylabel("probe test PSNR (dB)")
        ax.set_title(f"{family}: latent probe")
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--probe", type=Path, nargs="*", default=[], help="probe.json files of `dae probe` runs"
    )
    ap.add_argument(
        "--priors",
        type=Path,
        nargs="*",
        default=[],
        help="results.json files of `dae compare-priors` (scripts/study_priors.sh)",
    )
    args = ap.parse_args()
    runs = collect(args.root)
    if not runs:
        raise SystemExit(f"no finished study runs (<family>-<variant>-s<seed>) in {args.root}")
    summary = summarise(runs)
    try:
        probed = probe_psnr(args.probe, args.root)  # shared by the per-seed table and the plot
    except ValueError as err:
        ap.error(str(err))
    args.out.mkdir(parents=True, exist_ok=True)
    study = json.dumps({"summary": summary, "runs": runs}, indent=1)
    atomic_write(args.out / "study.json", lambda tmp: tmp.write_text(study))
    text = "\n".join(
        [
            markdown(summary),
            curve_table(runs),
            decoder_step_table(runs),
            seed_table(runs, probed),
            probe_and_eval(args.root, args.probe, args.priors),
        ]
    )
    atomic_write(args.out / "study.md", lambda tmp: tmp.write_text(text))
    plot(runs, args.out / "test_curves.png")
    plot_probe(probed, args.out / "probe_widths.png", runs)
    print(text)


if __name__ == "__main__":
    main()
