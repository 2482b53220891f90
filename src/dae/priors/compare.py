"""DAE vs baseline on generation: the same prior preset on two autoencoder runs, scored alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dae.config import to_dict
from dae.errors import RunFolderError
from dae.experiments import load_config
from dae.files import atomic_write
from dae.metrics.evaluate import score_samples
from dae.priors.generate import sample_run
from dae.priors.train import train_prior
from dae.provenance import latents_made_from, pin_paths, stale_prior_run
from dae.run_folder import RunFolder
from dae.runsafety import claim_results_dir


def compare_priors(
    ae_runs: dict[str, Path],
    config: str | Path,
    out: str | Path,
    n: int,
    features: str | None,
    overrides: list[str] = (),
    reference_split: str = "test",
    seed: int = 0,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Train (or resume) a prior per autoencoder run, sample `n` images, score; one row per run.

    A prior already in `out` is reused when this config on this autoencoder made it; one made by
    another config or autoencoder is trained again only with `overwrite` (checked for both runs
    before anything trains, so a refusal leaves `out` as it was)."""
    out = Path(out)
    claim_results_dir(out, "compare-priors", overwrite, resumable=True, inputs=ae_runs.values())
    plans = []
    for name, ae_run in ae_runs.items():
        _, cfg = load_config(config, overrides)
        run = RunFolder(out / name)
        # Reuse a prior only if this config on this autoencoder made it; else train it again.
        pin_paths(cfg, ae_run)
        stale = stale_prior_run(run, to_dict(cfg), latents_made_from(ae_run, cfg))
        if stale and run.holds_run() and not overwrite:
            raise RunFolderError(
                f"{run.path}: a prior made by another config or autoencoder ({stale}); pass "
                "--overwrite to train it again, or choose another --out"
            )
        plans.append((name, ae_run, cfg, run, stale))
    rows = []
    for name, ae_run, cfg, run, stale in plans:
        prior_dir = run.path
        if stale or not run.weights_path.is_file():
            resume = run.checkpoint_path.is_file() and not stale
            if stale and run.holds_run():
                print(f"{prior_dir}: made by another config or autoencoder ({stale}); retraining")
            train_prior(
                cfg, ae_run, prior_dir, resume=resume, overwrite=run.holds_run() and not resume
            )
        info = sample_run(prior_dir, n, run.samples_dir, seed, overrides=overrides)
        row: dict[str, Any] = {"run": name, "ae_run": str(ae_run), "n": n, **_final_loss(prior_dir)}
        if features:
            samples = run.samples_dir / "samples.npz"
            row.update(score_samples(samples, cfg.data, features, reference_split)[0])
        row["latents_from"] = info["latents_from"]
        rows.append(row)
    atomic_write(
        out / "results.json", lambda tmp: tmp.write_text(json.dumps(rows, indent=2) + "\n")
    )
    atomic_write(out / "results.md", lambda tmp: tmp.write_text(markdown_table(rows)))
    return rows


def _final_loss(prior_dir: Path) -> dict[str, float]:
    """The last logged training row's losses (a prior's fit to its latent)."""
    rows = RunFolder(prior_dir).read_metrics()
    last = rows[-1] if rows else {}
    return {f"train_{k}": v for k, v in last.items() if k in ("loss", "mse", "vb")}


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One row per run; numeric columns to 4 significant digits."""
    keys = [k for k in rows[0] if k not in ("ae_run", "latents_from")]
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"
