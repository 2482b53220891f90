"""DAE vs baseline on generation: the same prior preset on two autoencoder runs, scored alike."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from dae.config import to_dict
from dae.data.images import load_from_config
from dae.priors.generate import sample_run, score_samples
from dae.priors.models import load_prior_config
from dae.priors.task import train_prior
from dae.provenance import latents_made_from, pin_paths, stale_prior_run
from dae.runsafety import check_out_path, holds_run
from dae.train.checkpoint import atomic_write, last_checkpoint


def compare_priors(
    ae_runs: dict[str, Path],
    config: str | Path,
    out: str | Path,
    n: int,
    features: str | None,
    overrides: list[str] = (),
    reference_split: str = "test",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Train (or resume) a prior per autoencoder run, sample `n` images, score; one row per run."""
    out = Path(out)
    check_out_path(out, ae_runs.values())
    rows = []
    for name, ae_run in ae_runs.items():
        kind, cfg = load_prior_config(config, overrides)
        prior_dir = out / name
        # Reuse a prior only if this config on this autoencoder made it; else train it again.
        pin_paths(cfg, ae_run)
        stale = stale_prior_run(prior_dir, to_dict(cfg), latents_made_from(ae_run, cfg))
        if stale or not (prior_dir / "prior.safetensors").is_file():
            resume = last_checkpoint(prior_dir).is_file() and not stale
            if stale and holds_run(prior_dir):
                print(f"{prior_dir}: made by another config or autoencoder ({stale}); retraining")
            overwrite = holds_run(prior_dir) and not resume
            train_prior(kind, cfg, ae_run, prior_dir, resume=resume, overwrite=overwrite)
        info = sample_run(prior_dir, n, prior_dir / "samples", seed, overrides=overrides)
        row: dict[str, Any] = {"run": name, "ae_run": str(ae_run), "n": n, **_final_loss(prior_dir)}
        if features:
            reference = load_from_config(dataclasses.replace(cfg.data, split=reference_split))
            tag = f"{cfg.data.name}-{reference_split}"
            row.update(
                score_samples(
                    prior_dir / "samples" / "samples.npz", reference.images, features, tag
                )
            )
        row["latents_from"] = info["latents_from"]
        rows.append(row)
    atomic_write(
        out / "results.json", lambda tmp: tmp.write_text(json.dumps(rows, indent=2) + "\n")
    )
    atomic_write(out / "results.md", lambda tmp: tmp.write_text(markdown_table(rows)))
    return rows


def _final_loss(prior_dir: Path) -> dict[str, float]:
    """The last logged training row's losses (a prior's fit to its latent)."""
    lines = (prior_dir / "metrics.jsonl").read_text().splitlines()
    last = json.loads(lines[-1]) if lines else {}
    return {f"train_{k}": v for k, v in last.items() if k in ("loss", "mse", "vb")}


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One row per run; numeric columns to 4 significant digits."""
    keys = [k for k in rows[0] if k not in ("ae_run", "latents_from")]
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"
