"""From a trained prior run to images: sample latents, decode with the autoencoder, write files.

`samples.npz` holds `images` (uint8 `(N, C, H, W)`) and `labels` (int64 `(N,)`), the format
`dae evaluate` reads; `grid.png` shows the first samples.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from dae.autoencoder.base import DecoupledAutoencoder
from dae.data.transforms import save_grid, to_uint8
from dae.errors import ConfigError
from dae.files import atomic_write
from dae.priors.cache import from_prior_space
from dae.run import Loaded, Run


def load_prior_run(
    run_dir: str | Path, overrides: list[str] = (), use_ema: bool | None = None
) -> Loaded:
    """The prior of a `dae train-prior` run with its final (EMA if kept) weights: `Run.prior`."""
    return Run(run_dir).prior(use_ema, overrides)


def decode_latents(model: DecoupledAutoencoder, latents: torch.Tensor, meta: dict) -> torch.Tensor:
    """Codes `(B, h, w)` or scaled KL latents `(B, C, h, w)` -> images in [-1, 1] `(B, C, H, W)`."""
    if model.kind != {"vq": "vq", "kl": "gaussian"}[meta["kind"]]:
        raise ConfigError(
            "kind",
            f"the prior was trained on {meta['kind']} latents, the autoencoder is {model.kind}",
        )
    if meta["kind"] == "vq":
        return model.decode_indices(latents.long())
    return model.decode(from_prior_space(latents, meta))


@torch.no_grad()
def generate_samples(
    run: Loaded,
    ae: Loaded,
    n: int,
    seed: int = 0,
    device: str = "cpu",
    labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` samples as uint8 `(n, C, H, W)` and their labels: balanced over the classes for a
    class-conditional prior, -1 ("no label") for an unconditional one."""
    if labels is None:
        n_classes = run.model.n_classes
        labels = torch.arange(n) % n_classes if n_classes else torch.full((n,), -1)
    gen = torch.Generator(device=device).manual_seed(seed)
    prior = run.model.to(device)
    ae.model.to(device)
    images = []
    for start in range(0, n, run.cfg.sample.batch_size):
        y = labels[start : start + run.cfg.sample.batch_size]
        latents = prior.sample(y, gen, device)
        images.append(to_uint8(decode_latents(ae.model, latents, run.meta).clamp(-1, 1)).cpu())
    return torch.cat(images), labels.long()


def write_samples(out: str | Path, images: torch.Tensor, labels: torch.Tensor, info: dict) -> None:
    """`out/samples.npz` (images, labels), `out/grid.png` (first 64) and `out/samples.yaml`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def npz(tmp: Path) -> None:
        buf = io.BytesIO()  # np.savez appends ".npz" to names without it
        np.savez(buf, images=images.numpy(), labels=labels.numpy())
        tmp.write_bytes(buf.getvalue())

    # Scores of the samples being replaced would be read as these samples' scores; gone first, a
    # kill between the two writes leaves old samples unscored rather than new ones misscored.
    (out / "scores.json").unlink(missing_ok=True)
    atomic_write(out / "samples.npz", npz)
    save_grid(out / "grid.png", images[:64], nrow=min(8, len(images)))
    atomic_write(
        out / "samples.yaml", lambda tmp: tmp.write_text(yaml.safe_dump(info, sort_keys=False))
    )


def read_samples(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images `(N, C, H, W)`, labels) from a `samples.npz`."""
    with np.load(Path(path), allow_pickle=False) as z:
        return torch.from_numpy(z["images"]), torch.from_numpy(z["labels"])


def sample_run(
    run_dir: str | Path,
    n: int,
    out: str | Path,
    seed: int = 0,
    device: str | None = None,
    overrides: list[str] = (),
    ae_weights: str = "auto",
) -> dict[str, Any]:
    """`dae sample`: load the prior and its autoencoder, sample `n` images, write them to `out`."""
    run = load_prior_run(run_dir, overrides)
    device = device or run.cfg.train.device
    ae = Run(run_dir).autoencoder_of(run, ae_weights)
    images, labels = generate_samples(run, ae, n, seed, device)
    info = {
        "prior_run": str(run_dir),
        "prior_weights": run.source,
        "ae_run": run.cfg.ae_run,
        "ae_weights": ae.source,
        "latents_from": run.meta["ae_source"],
        "n": n,
        "seed": seed,
        "sample": {k: v for k, v in vars(run.cfg.sample).items()},
    }
    write_samples(out, images, labels, info)
    return info
