"""Tiny image-autoencoder configs and synthetic images shared by the image tests."""

from __future__ import annotations

from pathlib import Path

import torch

from dae.config import from_dict
from dae.data.images import LabelledImages
from dae.train.image_task import KLExperimentConfig, VQGANExperimentConfig

TINY_MODEL = {
    "in_channels": 3,
    "resolution": 16,
    "ch": 8,
    "ch_mult": [1, 2],
    "num_res_blocks": 1,
    "attn_resolutions": [8],
    "norm_groups": 4,
    "z_channels": 4,
}

# `model` sections of a tiny VQGAN per quantizer (all with 4-dim codes, as TINY_MODEL's vq has)
QUANTIZER_MODELS = {
    "vq": {"quantizer": "vq"},
    "vq-l2": {"quantizer": "vq-l2"},
    "fsq": {"quantizer": "fsq", "fsq_levels": [5, 5, 3, 3]},
    "lfq": {"quantizer": "lfq"},
}


def tiny_config(kind: str = "vqgan", **sections) -> VQGANExperimentConfig | KLExperimentConfig:
    """A 16x16, 8-channel experiment config; `sections` update the named sections."""
    model = dict(TINY_MODEL, **({"n_embed": 16, "embed_dim": 4} if kind == "vqgan" else {}))
    if kind == "kl":
        model["scaling_images"] = 16
    data = {
        "kind": kind,
        "model": model,
        "disc": {"n_layers": 2, "ndf": 8, "start": 1},
        "optim": {"lr": 1e-3, "betas": [0.5, 0.9]},
        "train": {
            "steps": 4,
            "batch_size": 4,
            "progress": False,
            "tensorboard": False,
            "log_every": 1,
            "ckpt_every": 0,
        },
        "log": {"image_every": 0},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    cls = VQGANExperimentConfig if kind == "vqgan" else KLExperimentConfig
    return from_dict(cls, data)


def synthetic_images(
    n: int = 16, size: int = 16, channels: int = 3, seed: int = 0
) -> LabelledImages:
    """Smooth random uint8 images (blurred noise, so there is structure to reconstruct)."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(n, channels, size // 4, size // 4, generator=gen)
    images = torch.nn.functional.interpolate(low, size=size, mode="bilinear", align_corners=False)
    pixels = (images * 255).round().to(torch.uint8)
    return LabelledImages(pixels, torch.zeros(n, dtype=torch.long), ["x"])


def write_image_folder(root: Path, data: LabelledImages) -> Path:
    """The images as PNGs in `root/x/NNNN.png` (a `folder` dataset)."""
    from PIL import Image

    (root / "x").mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(data.images):
        array = img.permute(1, 2, 0).numpy()
        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(
            root / "x" / f"{i:04d}.png"
        )
    return root
