"""Image transforms in plain torch (no torchvision): resize, centre crop, flip, [-1, 1] scaling,
and the one image-grid writer."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from dae.files import atomic_write


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 `[0, 255]` -> float32 `[-1, 1]` (same shape)."""
    if images.dtype != torch.uint8:
        raise TypeError(f"to_float expects uint8 images, got {images.dtype}")
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float `[-1, 1]` -> uint8 `[0, 255]`, rounded and clamped (inverse of `to_float`)."""
    return ((images.detach().float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize `(N, C, H, W)` so the shorter side is `size` (bilinear, antialiased when shrinking)."""
    h, w = images.shape[-2:]
    if min(h, w) == size:
        return images
    scale = size / min(h, w)
    out_hw = (max(size, round(h * scale)), max(size, round(w * scale)))
    dtype = images.dtype
    x = F.interpolate(
        images.float(), size=out_hw, mode="bilinear", antialias=scale < 1, align_corners=False
    )
    return x.round().clamp(0, 255).to(dtype) if dtype == torch.uint8 else x.to(dtype)


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central `size x size` window of `(N, C, H, W)`."""
    h, w = images.shape[-2:]
    if size > min(h, w):
        raise ValueError(f"crop size {size} exceeds image size {h}x{w}")
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top : top + size, left : left + size]


def resize_center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to `size`, then centre-crop to a square: `(N, C, size, size)`."""
    return center_crop(resize(images, size), size)


def random_hflip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image left-right with probability 1/2 (a copy; the input is not modified)."""
    flip = torch.rand(len(images), generator=generator) < 0.5
    out = images.clone()
    out[flip] = images[flip].flip(-1)
    return out


def save_grid(
    path: str | Path, images: torch.Tensor, nrow: int = 8, pad: int = 0, upscale: int = 1
) -> None:
    """uint8 `(N, C, H, W)` -> one PNG, `nrow` images per row, `pad` white pixels between them,
    each pixel drawn `upscale` times as large; written atomically."""
    from PIL import Image

    n, c, h, w = images.shape
    rows = -(-n // nrow)
    canvas = torch.full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), 255, dtype=torch.uint8)
    for i, img in enumerate(images.cpu()):
        y, x = pad + (i // nrow) * (h + pad), pad + (i % nrow) * (w + pad)
        canvas[:, y : y + h, x : x + w] = img
    array = canvas.permute(1, 2, 0).contiguous().numpy()  # (C, H, W) -> (H, W, C)
    picture = Image.fromarray(array[..., 0] if c == 1 else array)
    if upscale > 1:
        picture = picture.resize((picture.width * upscale, picture.height * upscale), Image.NEAREST)
    atomic_write(Path(path), lambda tmp: picture.save(tmp, format="PNG"))
