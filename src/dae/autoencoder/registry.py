"""Short names for image autoencoders (`vqgan-f16`, `kl-f8`) at the papers' sizes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dae.autoencoder.image import ImageAutoencoder
from dae.autoencoder.kl import KLAutoencoder, KLAutoencoderConfig
from dae.autoencoder.vqgan import VQGAN, VQGANConfig
from dae.config import from_dict
from dae.registry import Registry

# Family -> (model class, its config class).
FAMILIES: dict[str, tuple[type[ImageAutoencoder], type]] = {
    "vqgan": (VQGAN, VQGANConfig),
    "kl": (KLAutoencoder, KLAutoencoderConfig),
}

IMAGE_AUTOENCODERS: Registry[Callable[..., ImageAutoencoder]] = Registry("image autoencoder")


def _preset(name: str, family: str, **defaults: Any) -> None:
    model_cls, cfg_cls = FAMILIES[family]

    def build(**overrides: Any) -> ImageAutoencoder:
        return model_cls(from_dict(cfg_cls, {**defaults, **overrides}, prefix="model"))

    build.__doc__ = f"{name}: {family} with {defaults} (keyword arguments override)."
    IMAGE_AUTOENCODERS.register(name)(build)


# taming-transformers' FacesHQ / ImageNet VQGAN (f16, 1024 x 256 codebook).
_preset(
    "vqgan-f16",
    "vqgan",
    resolution=256,
    ch=128,
    ch_mult=[1, 1, 2, 2, 4],
    num_res_blocks=2,
    attn_resolutions=[16],
    z_channels=256,
    n_embed=1024,
    embed_dim=256,
)
# latent-diffusion's VQ-f8 and VQ-f4 first stages.
_preset(
    "vqgan-f8",
    "vqgan",
    resolution=256,
    ch=128,
    ch_mult=[1, 2, 2, 4],
    num_res_blocks=2,
    attn_resolutions=[32],
    z_channels=4,
    n_embed=16384,
    embed_dim=4,
)
_preset(
    "vqgan-f4",
    "vqgan",
    resolution=256,
    ch=128,
    ch_mult=[1, 2, 4],
    num_res_blocks=2,
    attn_resolutions=[],
    z_channels=3,
    n_embed=8192,
    embed_dim=3,
)
# latent-diffusion's KL-f8 (the Stable Diffusion VAE's architecture) and KL-f4.
_preset(
    "kl-f8",
    "kl",
    resolution=256,
    ch=128,
    ch_mult=[1, 2, 4, 4],
    num_res_blocks=2,
    attn_resolutions=[],
    z_channels=4,
)
_preset(
    "kl-f4",
    "kl",
    resolution=256,
    ch=128,
    ch_mult=[1, 2, 4],
    num_res_blocks=2,
    attn_resolutions=[],
    z_channels=3,
)


def build_image_autoencoder(name: str, **overrides: Any) -> ImageAutoencoder:
    """`build_image_autoencoder("kl-f8", resolution=32)`."""
    return IMAGE_AUTOENCODERS.get(name)(**overrides)
