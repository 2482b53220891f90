"""Pluggable feature extractors for the distribution metrics, by short name.

`build_features("inception:/path/pt_inception-2015-12-05-6726825d.pth")`, `"classifier:cifar10"`,
`"classifier:mnist"`, `"pixels"` or `"pixels:1024"` (projected). Each maps images (float in [-1, 1] or uint8, `(B, C, H, W)`) to
`{"pool": (B, D), "spatial": (B, S), "logits": (B, K)}` and carries the names its numbers are
reported under: only the real Inception network gives "FID"; the others say what they are.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from dae.data.transforms import resize_center_crop, to_float
from dae.errors import MissingFileError, UnknownNameError
from dae.files import atomic_write
from dae.paths import cache_root
from dae.progress import progress_bar
from dae.registry import Registry

# Above this many pixel features, FD's D x D covariance square root takes minutes on a CPU.
PIXEL_WARN_DIM = 4096


@dataclass
class FeatureExtractor:
    """A network plus what it expects (channels, size) and how its metrics are named."""

    spec: str
    net: nn.Module | None  # None: identity ("pixels")
    key: str  # identifies the weights, for caching reference statistics
    names: dict[str, str]  # "fd" -> "FID" / "FD-classifier:cifar10", "is", "kd", "sfd" likewise
    in_channels: int | None = None
    size: int | None = None  # input side the net was trained at; inputs are resized to it
    info: dict = field(default_factory=dict)
    projection: Callable[[int], torch.Tensor] | None = None  # pixels:N, input dim -> (D, N)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = to_float(x) if x.dtype == torch.uint8 else x.float()
        if self.in_channels == 1 and x.shape[1] == 3:
            x = x.mean(1, keepdim=True)
        elif self.in_channels == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.size is not None and x.shape[-2:] != (self.size, self.size):
            x = resize_center_crop(x, self.size)
        return x

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.net is None:
            flat = x.float().flatten(1) if x.dtype != torch.uint8 else to_float(x).flatten(1)
            if self.projection is not None:  # "pixels:N": (B, D) -> (B, N)
                return {"pool": flat @ self.projection(flat.shape[1])}
            if flat.shape[1] > PIXEL_WARN_DIM and not self.info.get("warned"):
                self.info["warned"] = True
                print(
                    f"pixel features are {flat.shape[1]}-d: FD needs a {flat.shape[1]}^2 "
                    "covariance and its square root, which takes minutes; --features pixels:1024 "
                    "projects them to 1024-d (a fixed random projection) first",
                    file=sys.stderr,
                )
            return {"pool": flat}
        return {k: v.float() for k, v in self.net.features(self._prepare(x)).items()}

    @torch.no_grad()
    def extract(self, images: torch.Tensor, batch_size: int = 250) -> dict[str, torch.Tensor]:
        """Features of a whole set, batch by batch: name -> `(N, D)` float32."""
        if self.net is not None:
            self.net.eval()
        parts: dict[str, list[torch.Tensor]] = {}
        starts = range(0, len(images), batch_size)
        for i in progress_bar(
            starts, desc=f"features {self.spec}", disable=len(starts) < 4, leave=False
        ):
            for k, v in self(images[i : i + batch_size]).items():
                parts.setdefault(k, []).append(v)
        return {k: torch.cat(v) for k, v in parts.items()}


FEATURES: Registry = Registry("feature extractor")


def _names(prefix: str, exact: bool) -> dict[str, str]:
    if exact:
        return {"fd": "FID", "sfd": "sFID", "is": "IS", "kd": "KID"}
    return {
        "fd": f"FD-{prefix}",
        "sfd": f"sFD-{prefix}",
        "is": f"IS-{prefix}",
        "kd": f"KD-{prefix}",
    }


@FEATURES.register("inception")
def inception_features(arg: str, **_) -> FeatureExtractor:
    """The FID Inception-v3 from a local weights file (SHA-256 checked)."""
    import os

    from dae.metrics.inception import INCEPTION_SHA256_PREFIX, load_inception, sha256_file

    if not arg:
        raise MissingFileError("inception features need a weights path: --features inception:PATH")
    # The expected hash (prefix) can be overridden for a re-exported copy; "skip" disables the check.
    expected = os.environ.get("DAE_INCEPTION_SHA256", INCEPTION_SHA256_PREFIX)
    net = load_inception(arg, None if expected == "skip" else expected)
    return FeatureExtractor(
        f"inception:{arg}",
        net,
        f"inception-{sha256_file(Path(arg))[:16]}",
        _names("", True),
        3,
        None,
    )


@FEATURES.register("classifier")
def classifier_features(
    arg: str, root=None, train_if_missing: bool = True, cfg=None, **_
) -> FeatureExtractor:
    """dae's own classifier trained on dataset `arg` (trained and cached on first use)."""
    from dae.config import replace
    from dae.metrics.classifier import PRESETS, get_classifier, preset_name

    if cfg is None:
        # "cifar10" or "cifar10:epochs=10,width=64" (overrides of the preset; they change the hash)
        dataset, _, overrides = arg.partition(":")
        if dataset not in PRESETS:
            raise UnknownNameError(
                f"classifier features for {dataset!r}: known datasets {sorted(PRESETS)}"
            )
        cfg = replace(PRESETS[dataset], [o for o in overrides.split(",") if o])
    net, info = get_classifier(cfg, root, train_if_missing)
    size = 28 if cfg.dataset == "mnist" else 32
    channels = 1 if cfg.dataset == "mnist" else 3
    name = preset_name(cfg)  # a smaller preset's scores carry its name, never the full one's
    return FeatureExtractor(
        f"classifier:{name}",
        net,
        f"classifier-{cfg.dataset}-{cfg.key()}",
        _names(f"classifier:{name}", False),
        channels,
        size,
        info,
    )


@FEATURES.register("pixels")
def pixel_features(arg: str = "", **_) -> FeatureExtractor:
    """Identity features (flattened inputs): for vector data (the toy) or as a crude baseline;
    `pixels:N` projects them to N dimensions with a fixed seeded Gaussian matrix (distances are
    kept up to a small factor, Johnson-Lindenstrauss) so the FD stays fast on large images."""
    if not arg:
        return FeatureExtractor("pixels", None, "pixels", _names("pixels", False))
    if not arg.isdigit() or int(arg) < 2:
        raise UnknownNameError(
            f"pixels:{arg}: expected pixels:N with N >= 2 dimensions, e.g. pixels:1024"
        )
    dim = int(arg)

    def projection(d_in: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(d_in * 7919 + dim)  # the same matrix every time
        return torch.randn(d_in, dim, generator=gen) / math.sqrt(dim)

    spec = f"pixels:{dim}"
    return FeatureExtractor(
        spec, None, f"pixels-proj{dim}", _names(spec, False), projection=projection
    )


def default_features(dataset: str) -> str:
    """dae's classifier for the datasets it has one for, else raw pixels."""
    return f"classifier:{dataset}" if dataset in ("mnist", "cifar10") else "pixels"


def build_features(spec: str, **kwargs) -> FeatureExtractor:
    """`"name:arg"` -> a feature extractor from the registry."""
    name, _, arg = spec.partition(":")
    return FEATURES.get(name)(arg, **kwargs)


def reference_features(
    extractor: FeatureExtractor, images: torch.Tensor, tag: str, cache: bool = True
) -> dict[str, torch.Tensor]:
    """Features of a reference set, computed once and cached under `<DAE_CACHE>/refstats/`.

    `tag` names the set (e.g. "cifar10-test-10000"); the key also hashes the extractor's weights id
    and a fingerprint of the pixels, so a changed dataset or network never reuses stale features.
    """
    if not cache or extractor.net is None:
        return extractor.extract(images)
    fingerprint = hashlib.sha256(
        images[:: max(1, len(images) // 256)].numpy().tobytes()
    ).hexdigest()[:12]
    path = (
        cache_root() / "refstats" / f"{extractor.key}-{tag}-{len(images)}-{fingerprint}.safetensors"
    )
    if path.is_file():
        return load_file(str(path))
    feats = extractor.extract(images)
    atomic_write(
        path, lambda tmp: save_file({k: v.contiguous() for k, v in feats.items()}, str(tmp))
    )
    return feats
