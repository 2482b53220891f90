"""The latents `dae complexity` compares, each as (train sample, held-out sample) for one data set.

- `gaussian`:    N(0, I), the classic GAN latent.
- `joint`:       aggregate posterior z = mu + sigma * eps of a jointly trained VAE.
- `dae`:         the same VAE trained with the DAE schedule (stage 1 weak decoder, stage 2 frozen).
- `contrastive`: a SimCLR-style embedding of the same dimension (`contrastive.py`).

The VAEs come from the toy's own training code (`dae.reproduce.toy.train_toy`, defaults from
`ToyExperimentConfig`) or, for MNIST, the same MLP VAE on flattened digits (`mnist.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from dae.registry import Registry


@dataclass
class LatentData:
    """A data set (train/eval `(N, D)`) and a trainer of VAEs on it, shared by every latent."""

    x_train: torch.Tensor
    x_eval: torch.Tensor
    latent_dim: int
    train_vae: Callable[[str], torch.nn.Module]  # schedule mode -> trained VAE with `encode`
    contrastive: Callable[[], torch.nn.Module]  # -> trained embedding encoder
    seed: int


Latent = tuple[torch.Tensor, torch.Tensor]
LATENTS: Registry[Callable[[LatentData], Latent]] = Registry("latent")


@LATENTS.register("gaussian")
def gaussian_latent(data: LatentData) -> Latent:
    gen = torch.Generator().manual_seed(data.seed + 7)
    d = data.latent_dim
    return torch.randn(len(data.x_train), d, generator=gen), torch.randn(
        len(data.x_eval), d, generator=gen
    )


@torch.no_grad()
def _posterior_samples(vae: torch.nn.Module, x: torch.Tensor, seed: int) -> torch.Tensor:
    """Aggregate-posterior samples: one z ~ q(z | x) per data point `(N, d)`."""
    vae.eval()
    mu, logvar = vae.encode(x)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed))
    return mu + eps * (0.5 * logvar).exp()


def _vae_latent(mode: str) -> Callable[[LatentData], Latent]:
    def latent(data: LatentData) -> Latent:
        vae = data.train_vae(mode)
        return (
            _posterior_samples(vae, data.x_train, data.seed + 11),
            _posterior_samples(vae, data.x_eval, data.seed + 12),
        )

    return latent


LATENTS.register("joint")(_vae_latent("baseline"))
LATENTS.register("dae")(_vae_latent("dae"))


@LATENTS.register("contrastive")
def contrastive_latent(data: LatentData) -> Latent:
    encoder = data.contrastive()  # trains: must run with grad enabled
    with torch.no_grad():
        return encoder(data.x_train), encoder(data.x_eval)
