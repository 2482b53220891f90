"""Two arms compared run by run: `dae report RUNS --against RUNS [--probes DIR ...]`.

Pair i is `runs[i]` against `against[i]` (the same seed, say). For every number both runs of every
pair measured (each `eval.json` metric, and each probe decoder's and prior's held-out scores) the
table gives the per-pair differences runs − against, their mean ± std, the seeds where the first
arm is higher / equal / lower, the paired t-test and the exact sign test: what `dae sweep`'s table
gives for the runs it trained (the same cells, `stat_cells`), for arms trained any other way.
Because the table holds a dozen tests, each t-test p is also given Holm-adjusted over all of
them, so that one p < 0.05 among many is not read as a finding.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from dae.errors import RunFolderError
from dae.files import read_json
from dae.metrics.stats import format_p, holm, paired_test
from dae.run_folder import RunFolder

HIGHER_IS_BETTER = ("psnr", "ssim", "acc", "perplexity", "precision", "recall", "is-")
EXCLUDED = ("knn_data_acc",)  # a property of the data set, the same for every run


def higher_is_better(metric: str) -> bool | None:
    """Direction of a metric by name: True / False, or None when unknown."""
    name = metric.lower()
    if any(part in name for part in HIGHER_IS_BETTER):
        return True
    if any(part in name for part in ("mse", "l1", "loss", "nll", "lipschitz", "fd", "dead", "kd")):
        return False
    return None


def arrow(metric: str) -> str:
    """` ↑` (higher is better), ` ↓` or nothing, to follow the metric's name."""
    return {True: " ↑", False: " ↓", None: ""}[higher_is_better(metric)]


STAT_COLUMNS = ("Δ mean ± std", "+ / = / −", "{better} better", "t-test p", "sign-test p",
                "t-test p, Holm")  # fmt: skip


def stat_table_head(first: list[str], better: str) -> list[str]:
    """The header and rule of a table whose rows end in `stat_cells`, after the `first` columns;
    `better` names the arm the "better" column counts for."""
    names = [*first, *(c.format(better=better) for c in STAT_COLUMNS)]
    return ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]


def stat_cells(metric: str, test: dict[str, Any]) -> str:
    """A paired test's table cells, as STAT_COLUMNS names them: Δ mean ± std | + / = / − | pairs
    where the first arm is better by `metric`'s direction (`–` if unknown) | t-test p |
    sign-test p | t-test p Holm-adjusted over the table (`add_holm`)."""
    up = higher_is_better(metric)
    better = "–" if up is None else f"{test['wins'] if up else test['losses']}/{test['n']}"
    return (
        f"{test['mean_diff']:+.4g} ± {test['std_diff']:.2g} | {test['wins']} / {test['ties']} / "
        f"{test['losses']} | {better} | {format_p(test['t_p'])} | {format_p(test['sign_p'])} | "
        f"{format_p(test['t_p_holm'])}"
    )


def add_holm(tests: list[dict[str, Any]]) -> None:
    """Give each test of one table `t_p_holm`, its t-test p Holm-adjusted over all of them: a
    dozen rows give some p < 0.05 by chance, and the adjusted p says what one is worth."""
    for test, adjusted in zip(tests, holm([test["t_p"] for test in tests])):
        test["t_p_holm"] = adjusted


def eval_numbers(run: Path) -> dict[str, float]:
    """`run`'s `dae evaluate` metrics that are single numbers (no `_std` companions)."""
    evaluation = RunFolder(run).read_eval() or {}
    return {
        key: float(value)
        for key, value in evaluation.get("metrics", {}).items()
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and not key.endswith("_std")
        and key not in EXCLUDED
    }


def probe_entries(folders: list[Path]) -> dict[Path, tuple[dict[str, Any], str]]:
    """Each probed run's probe.json entry and its recipe hash, by the run's resolved path."""
    entries: dict[Path, tuple[dict[str, Any], str]] = {}
    origin: dict[Path, Path] = {}
    for folder in folders:
        data = read_json(folder / "probe.json", "run `dae probe` again into that folder")
        if data is None:
            raise RunFolderError(f"{folder}: no probe.json (is it a `dae probe --out` folder?)")
        for entry in data.get("runs", []):
            path = Path(entry["run"]["path"]).resolve()
            if path in entries:
                raise RunFolderError(
                    f"{path} is probed in both {origin[path]} and {folder}; pass one of them"
                )
            entries[path], origin[path] = (entry, _recipe(data)), folder
    return entries


def _recipe(probe: dict[str, Any]) -> str:
    """The probe's recipe hashes (the prior's only where it trained one), as one string."""
    hashes = probe.get("recipe_hash") or {}
    with_prior = (probe.get("config") or {}).get("prior")
    return " ".join(f"{k} {v}" for k, v in sorted(hashes.items()) if k != "prior" or with_prior)


def probe_numbers(entry: dict[str, Any]) -> dict[str, float]:
    """A probe entry's held-out scores: `probe w0.5 psnr`, ..., `probe prior test_nll_per_token`."""
    out = {}
    for decoder in entry.get("decoders", []):
        for key, value in decoder.get("test", {}).items():
            out[f"probe w{decoder['width']:g} {key}"] = float(value)
    prior = entry.get("prior") or {}
    for key in ("test_nll_per_token", "test_denoising_mse_mean"):
        if key in prior:
            out[f"probe prior {key}"] = float(prior[key])
    return out


def seed_mismatches(runs: list[Path], against: list[Path]) -> list[str]:
    """Pairs whose runs were trained with different `train.seed`: most likely arms given in
    different orders, which a paired test cannot detect by itself."""
    out = []
    for p, q in zip(runs, against):
        s, t = (
            (RunFolder(r).read_config_or_empty().get("train") or {}).get("seed") for r in (p, q)
        )
        if s is not None and t is not None and s != t:
            out.append(f"{p} (seed {s}) against {q} (seed {t})")
    return out


def compare(runs: list[Path], against: list[Path], probes: list[Path]) -> dict[str, Any]:
    """The paired comparison (see the module docstring) as a JSON-ready dict."""
    if len(runs) != len(against):
        raise RunFolderError(
            f"--against needs one run per run to compare, paired by position: got {len(runs)} "
            f"runs and {len(against)} to compare them against"
        )
    entries = probe_entries(probes)
    # Missing probe sidecars in a sweep's layout (RUN/probe) count too, as `dae sweep` writes them.
    for run in [*runs, *against]:
        if run.resolve() not in entries and (run / "probe" / "probe.json").is_file():
            entries.update(probe_entries([run / "probe"]))
    numbers, recipes = [], {}
    for run in [*runs, *against]:
        values = eval_numbers(run)
        entry = entries.get(run.resolve())
        if entry is not None:
            values |= probe_numbers(entry[0])
            recipes[run] = entry[1]
        numbers.append(values)
    if len(set(recipes.values())) > 1:
        detail = ", ".join(f"{run}: {h}" for run, h in recipes.items())
        raise RunFolderError(
            f"the probes were trained with different recipes ({detail}); a paired comparison "
            "needs one recipe for every run: probe them again with the same options"
        )
    a, b = numbers[: len(runs)], numbers[len(runs) :]
    every = list(dict.fromkeys(k for n in a + b for k in n))
    shared = [k for k in every if all(k in n for n in a + b)]
    metrics = {}
    for key in shared:
        x, y = [n[key] for n in a], [n[key] for n in b]
        if any(math.isnan(v) for v in x + y):
            continue
        test = paired_test(y, x)  # x − y: the first arm minus the one it is compared against
        metrics[key] = {"differences": [p - q for p, q in zip(x, y)], **test.as_dict()}
    add_holm(list(metrics.values()))
    unprobed = [str(run) for run in [*runs, *against] if run not in recipes]
    return {
        "pairs": [[str(p), str(q)] for p, q in zip(runs, against)],
        "seed_mismatches": seed_mismatches(runs, against),
        "probe_recipe": next(iter(recipes.values()), None),
        "unprobed": unprobed if recipes else [],
        "not_in_every_run": [k for k in every if k not in shared],
        "metrics": metrics,
    }


def markdown_lines(result: dict[str, Any], labels: dict[Path, str]) -> list[str]:
    """The `## Paired` section of report.md."""
    pairs = "; ".join(f"{labels[Path(p)]} − {labels[Path(q)]}" for p, q in result["pairs"])
    lines = [
        "## Paired: runs − against (by position)",
        "",
        f"Pairs: {pairs}. Per pair, then mean ± std of the differences, pairs where the first "
        "arm is higher / equal / lower, pairs where it is better (↑ higher is better, ↓ lower), "
        "two-sided paired t-test, the same p Holm-adjusted over every row of this table, and the "
        "exact sign test. With few pairs the sign test cannot reach a small p (three pairs: 0.25 "
        "at best).",
        "",
    ]
    if result.get("seed_mismatches"):
        lines += ["**Pairs trained with different seeds** (is the order right?): "
                  + "; ".join(result["seed_mismatches"]), ""]  # fmt: skip
    if result["unprobed"]:
        lines += ["Not probed (no probe scores for them): " + ", ".join(result["unprobed"]), ""]
    if result["not_in_every_run"]:
        left_out = ", ".join(f"`{k}`" for k in result["not_in_every_run"])
        lines += [f"Left out, not measured by every run: {left_out}.", ""]
    if not result["metrics"]:
        return [*lines, "No number was measured by every run: `dae evaluate` each run first.", ""]
    lines += stat_table_head(["metric", "per pair"], better="first")
    for key, t in result["metrics"].items():
        per_pair = ", ".join(f"{d:+.4g}" for d in t["differences"])
        lines.append(f"| {key}{arrow(key)} | {per_pair} | {stat_cells(key, t)} |")
    return [*lines, ""]
