"""LPIPS perceptual distance (Zhang et al. 2018) from user-supplied weight files.

No weights ship with dae and none are downloaded: the user passes a VGG-16 `features` state dict
(torchvision's key names `features.N.weight`, or without the prefix) and the LPIPS linear heads
(the `lpips` package's `vgg.pth`, keys `linK.model.1.weight`). The network is written out here
because torchvision is not a dependency.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dae.errors import MissingFileError
from dae.files import load_checkpoint, load_weights

# VGG-16 `features`: conv widths, "M" = max-pool. LPIPS reads the ReLU after each stage's last conv.
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
TAPS = (3, 8, 15, 22, 29)  # indices of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
WIDTHS = (64, 128, 256, 512, 512)


def vgg16_features() -> nn.Sequential:
    """VGG-16 up to relu5_3 with torchvision's layer indices."""
    layers: list[nn.Module] = []
    in_ch = 3
    for spec in VGG16:
        if spec == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, spec, 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = spec
    return nn.Sequential(*layers)


def _read_state(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"LPIPS weights file not found: {path}")
    if path.suffix == ".safetensors":
        return load_weights(path)[0]
    return load_checkpoint(path)  # weights-only, one-line errors on junk


class LPIPS(nn.Module):
    """`lpips(x, y) -> (B, 1, 1, 1)` distance of images in [-1, 1]; frozen, eval-only."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.features = vgg16_features()
        self.lins = nn.ModuleList(nn.Conv2d(w, 1, 1, bias=False) for w in WIDTHS)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(cls, vgg_path: str | Path, lin_path: str | Path) -> LPIPS:
        """Load the VGG backbone and the linear heads; key mismatches name the file."""
        model = cls()
        vgg = {k.removeprefix("features."): v for k, v in _read_state(vgg_path).items()}
        vgg = {
            k: v for k, v in vgg.items() if k.split(".")[0].isdigit() and int(k.split(".")[0]) < 30
        }
        lins = {
            f"{k[3]}.weight": v for k, v in _read_state(lin_path).items() if k.startswith("lin")
        }
        for module, state, path in ((model.features, vgg, vgg_path), (model.lins, lins, lin_path)):
            try:
                module.load_state_dict(state, strict=True)
            except RuntimeError as err:
                raise ValueError(
                    f"{path}: not usable LPIPS weights ({str(err).splitlines()[0]})"
                ) from None
        return model

    def train(self, mode: bool = True) -> LPIPS:
        return super().train(False)  # a fixed metric: never in training mode

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:  # grey images: the backbone is RGB
            x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
        h = torch.cat([x, y]).sub(self.shift).div(self.scale)
        total = 0.0
        taps = iter(self.lins)
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in TAPS:
                fx, fy = h.chunk(2)
                # unit-normalise each position's channel vector, then a learned per-channel weight
                fx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                fy = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                total = total + next(taps)((fx - fy).pow(2)).mean((2, 3), keepdim=True)
        return total
