"""The probe's one fixed recipe: every run gets the same steps, lr, batch, seed and test images."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from dae.config import check, to_dict


@dataclass
class ProbeConfig:
    widths: list[float] = field(
        default_factory=lambda: [0.25, 0.5, 1.0],
        metadata={"help": "fresh decoder widths, as fractions of the run's decoder `ch`"},
    )
    steps: int = field(default=1000, metadata={"help": "training steps of each fresh decoder"})
    lr: float = field(default=2e-4, metadata={"help": "Adam learning rate of the decoders"})
    batch_size: int = field(default=32, metadata={"help": "decoder training batch size"})
    seed: int = field(default=0, metadata={"help": "seed of decoder init, batches and priors"})
    n: int = field(default=2000, metadata={"help": "test images measured (a seeded subset)"})
    features: str | None = field(
        default=None, metadata={"help": "FD feature net; default classifier:<dataset> or pixels"}
    )
    fd: bool = field(default=True, metadata={"help": "measure the reconstruction FD"})
    curve_every: int = field(default=50, metadata={"help": "steps per averaged train-L1 point"})
    curve_points: int = field(
        default=4, metadata={"help": "evenly spaced steps at which test L1 is measured"}
    )
    curve_n: int = field(default=500, metadata={"help": "test images of those curve points"})
    prior: bool = field(default=True, metadata={"help": "run the prior probe (GPT / DiT)"})
    prior_steps: int = field(default=1000, metadata={"help": "training steps of the prior"})
    prior_batch_size: int = field(default=64, metadata={"help": "prior training batch size"})
    prior_images: int = field(
        default=10000, metadata={"help": "training images encoded for the prior (seeded subset)"}
    )
    prior_n: int = field(default=2000, metadata={"help": "held-out test images of the prior"})
    device: str = field(default="cpu", metadata={"help": "cpu, cuda, ..."})
    precision: Literal["fp32", "bf16", "auto"] = field(
        default="fp32",
        metadata={"help": "autocast dtype of decoder training; auto: bf16 where native, else fp32"},
    )

    def __post_init__(self) -> None:
        check(len(self.widths) >= 1, "widths", "needs at least one width")
        check(all(0 < w <= 4 for w in self.widths), "widths", f"must be in (0, 4]: {self.widths}")
        for key in ("steps", "batch_size", "n", "curve_every", "curve_points", "curve_n"):
            check(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        for key in ("prior_steps", "prior_batch_size", "prior_images", "prior_n"):
            check(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        check(self.curve_points <= self.steps, "curve_points", "must be <= steps")
        self.widths = sorted(set(self.widths))
        if self.precision == "auto":
            import torch  # here, not at import: `dae probe --help` reads these fields

            from dae.train.precision import resolve_precision

            # Stored resolved, so the recipe (and probe.json) says which dtype the decoders used
            # and a cache made with `auto` is valid for the same explicit choice.
            self.precision = resolve_precision("auto", torch.device(self.device)).name

    def decoder_recipe(self) -> dict[str, Any]:
        """What a decoder result depends on (the width is part of its file name)."""
        keys = ("steps", "lr", "batch_size", "seed", "n", "features", "fd", "curve_every")
        return {k: getattr(self, k) for k in (*keys, "curve_points", "curve_n", "precision")}

    def prior_recipe(self) -> dict[str, Any]:
        """What a prior-probe result depends on."""
        keys = ("seed", "prior_steps", "prior_batch_size", "prior_images", "prior_n")
        return {k: getattr(self, k) for k in keys}


def recipe_hash(recipe: dict[str, Any]) -> str:
    """A short stable hash of plain data (the key under which a cached result is valid)."""
    text = json.dumps(to_dict(recipe), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
