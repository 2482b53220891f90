"""The FID Inception-v3 network, in the state-dict layout of `pt_inception-2015-12-05-6726825d.pth`.

That file (the TF 2015-12-05 graph ported to PyTorch by pytorch-fid; torch-fidelity ships the same
tensors) is what published FIDs are computed with. dae never downloads it: pass its path, e.g.
`--features inception:/path/pt_inception-2015-12-05-6726825d.pth`, and its SHA-256 is checked.
The blocks below follow the TF graph (TF-style average pooling that ignores padding, max pooling in
the last block's pool branch, TF1 bilinear resize to 299), as pytorch-fid's `FIDInception*` do.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dae.errors import DataFormatError, MissingFileError

# SHA-256 of pytorch-fid's pt_inception-2015-12-05-6726825d.pth (its URL carries the first 8 hex).
INCEPTION_SHA256_PREFIX = "6726825d"


class BasicConv2d(nn.Sequential):
    """conv (no bias) -> BN(eps=1e-3) -> ReLU; keys `conv.*`, `bn.*` as in the weights file."""

    def __init__(self, c_in: int, c_out: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3)
        self.relu = nn.ReLU(inplace=True)


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class Branches(nn.Module):
    """Named branches, each a chain of BasicConv2d (lists split into parallel `a`/`b` heads), concatenated."""

    def __init__(self, spec: dict[str, list], pool: str | None, pool_conv: tuple[int, int] | None):
        super().__init__()
        self.order: list[list[tuple[str, bool]]] = []
        for branch, layers in spec.items():
            names = []
            for suffix, args in layers:
                setattr(self, f"{branch}{suffix}", BasicConv2d(*args))
                names.append((f"{branch}{suffix}", suffix.endswith(("a", "b"))))  # parallel heads
            self.order.append(names)
        self.pool = pool
        if pool_conv is not None:
            self.branch_pool = BasicConv2d(*pool_conv, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for names in self.order:
            h, split = x, []
            for name, parallel in names:
                if parallel:
                    split.append(getattr(self, name)(h))  # the 1x3 and 3x1 heads see the same input
                else:
                    h = getattr(self, name)(h)
            outs.append(torch.cat(split, 1) if split else h)
        if self.pool == "avg":
            outs.append(self.branch_pool(_tf_avg_pool(x)))
        elif self.pool == "max_conv":  # the last block of the TF graph max-pools here
            outs.append(self.branch_pool(F.max_pool2d(x, 3, stride=1, padding=1)))
        elif self.pool == "max":
            outs.append(F.max_pool2d(x, 3, stride=2))
        return torch.cat(outs, 1)


def inception_a(c: int, pool_features: int) -> Branches:
    return Branches(
        {
            "branch1x1": [("", (c, 64, 1))],
            "branch5x5": [("_1", (c, 48, 1)), ("_2", (48, 64, 5, 1, 2))],
            "branch3x3dbl": [
                ("_1", (c, 64, 1)),
                ("_2", (64, 96, 3, 1, 1)),
                ("_3", (96, 96, 3, 1, 1)),
            ],
        },
        "avg",
        (c, pool_features),
    )


def inception_b(c: int) -> Branches:
    return Branches(
        {
            "branch3x3": [("", (c, 384, 3, 2))],
            "branch3x3dbl": [("_1", (c, 64, 1)), ("_2", (64, 96, 3, 1, 1)), ("_3", (96, 96, 3, 2))],
        },
        "max",
        None,
    )


def inception_c(c: int, c7: int) -> Branches:
    h, v = ((1, 7), 1, (0, 3)), ((7, 1), 1, (3, 0))
    return Branches(
        {
            "branch1x1": [("", (c, 192, 1))],
            "branch7x7": [("_1", (c, c7, 1)), ("_2", (c7, c7, *h)), ("_3", (c7, 192, *v))],
            "branch7x7dbl": [
                ("_1", (c, c7, 1)),
                ("_2", (c7, c7, *v)),
                ("_3", (c7, c7, *h)),
                ("_4", (c7, c7, *v)),
                ("_5", (c7, 192, *h)),
            ],
        },
        "avg",
        (c, 192),
    )


def inception_d(c: int) -> Branches:
    return Branches(
        {
            "branch3x3": [("_1", (c, 192, 1)), ("_2", (192, 320, 3, 2))],
            "branch7x7x3": [
                ("_1", (c, 192, 1)),
                ("_2", (192, 192, (1, 7), 1, (0, 3))),
                ("_3", (192, 192, (7, 1), 1, (3, 0))),
                ("_4", (192, 192, 3, 2)),
            ],
        },
        "max",
        None,
    )


def inception_e(c: int, pool: str) -> Branches:
    h, v = ((1, 3), 1, (0, 1)), ((3, 1), 1, (1, 0))
    return Branches(
        {
            "branch1x1": [("", (c, 320, 1))],
            "branch3x3": [("_1", (c, 384, 1)), ("_2a", (384, 384, *h)), ("_2b", (384, 384, *v))],
            "branch3x3dbl": [
                ("_1", (c, 448, 1)),
                ("_2", (448, 384, 3, 1, 1)),
                ("_3a", (384, 384, *h)),
                ("_3b", (384, 384, *v)),
            ],
        },
        pool,
        (c, 192),
    )


def resize_like_tf1(x: torch.Tensor, size: int) -> torch.Tensor:
    """TF1 `resize_bilinear(align_corners=False)`: source coordinate = dst * in/out (no half-pixel
    offset), which is what the FID graph does and what PyTorch's bilinear mode does not."""
    _, _, h, w = x.shape

    def axis(n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos = torch.arange(size, dtype=torch.float64, device=x.device) * (n_in / size)
        lo = pos.floor().long().clamp(max=n_in - 1)
        return lo, (lo + 1).clamp(max=n_in - 1), (pos - lo).to(x.dtype)

    y0, y1, wy = axis(h)
    x0, x1, wx = axis(w)
    rows = x[:, :, y0] * (1 - wy)[:, None] + x[:, :, y1] * wy[:, None]  # (B, C, size, W)
    return rows[..., x0] * (1 - wx) + rows[..., x1] * wx  # (B, C, size, size)


class FIDInceptionV3(nn.Module):
    """Inception-v3 of the FID reference: images in [-1, 1] -> {pool (2048), spatial (2023), logits (1008)}."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, 2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, 1, 1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = (
            inception_a(192, 32),
            inception_a(256, 64),
            inception_a(288, 64),
        )
        self.Mixed_6a = inception_b(288)
        self.Mixed_6b, self.Mixed_6c = inception_c(768, 128), inception_c(768, 160)
        self.Mixed_6d, self.Mixed_6e = inception_c(768, 160), inception_c(768, 192)
        self.Mixed_7a = inception_d(768)
        self.Mixed_7b, self.Mixed_7c = inception_e(1280, "avg"), inception_e(2048, "max_conv")
        self.fc = nn.Linear(2048, 1008)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = resize_like_tf1((x.float() + 1) * 127.5, 299)  # [-1, 1] -> [0, 255], (B, 3, 299, 299)
        x = (x - 128) / 128
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)  # (B, 64, 73, 73)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)  # (B, 192, 35, 35)
        x = self.Mixed_6c(
            self.Mixed_6b(self.Mixed_6a(self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))))
        )
        # sFID (Nash et al.; ADM's evaluator): TF "mixed_6/conv" = Mixed_6d's 1x1 branch, first 7
        # channels of its 17x17 map, flattened: (B, 7 * 17 * 17) = (B, 2023).
        spatial = self.Mixed_6d.branch1x1(x)[:, :7].flatten(1)
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(self.Mixed_6e(self.Mixed_6d(x)))))
        pool = x.mean((2, 3))  # (B, 2048, 8, 8) -> (B, 2048)
        logits = pool @ self.fc.weight.T  # IS uses the unbiased logits, as torch-fidelity does
        return {"pool": pool, "spatial": spatial, "logits": logits}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)["pool"]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_inception(
    path: str | Path, sha256: str | None = INCEPTION_SHA256_PREFIX
) -> FIDInceptionV3:
    """Load the FID Inception from a `.pth` (torch.load weights_only) or `.safetensors` state dict,
    refusing a file whose SHA-256 does not start with `sha256` (None: skip the check)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(
            f"Inception weights not found: {path} (download pt_inception-2015-12-05-6726825d.pth "
            "on a machine with internet access and pass its path; see docs/metrics.md)"
        )
    digest = sha256_file(path)
    if sha256 and not digest.startswith(sha256):
        raise DataFormatError(
            f"{path}: SHA-256 {digest} does not match the expected {sha256}...; wrong or corrupt file"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    net = FIDInceptionV3()
    missing, unexpected = net.load_state_dict(state, strict=False)
    # BN's `num_batches_tracked` is absent from the TF port; anything else missing is an error.
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    unexpected = [k for k in unexpected if not k.startswith("AuxLogits.")]
    if missing or unexpected:
        raise DataFormatError(
            f"{path}: not the FID Inception layout (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return net.eval().requires_grad_(False)
