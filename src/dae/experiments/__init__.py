"""Every experiment kind dae knows, in one table: the `kind:` of a preset -> its config and builders.

    kind          config                    trains with             model of a run
    toy_vae       ToyExperimentConfig       ToyTask                 ToyVAE
    vqgan, kl     VQGAN/KLExperimentConfig  VQGANTask, KLTask       VQGAN, KLAutoencoder
    gan           GANExperimentConfig       GANTask                 DCGAN / VAEGAN / SimCLRGAN
    prior_gpt     GPTPriorConfig            PriorTask (+ cache)     GPTPrior (+ cache metadata)
    prior_dit     DiTPriorConfig            PriorTask (+ cache)     DiTPrior (+ cache metadata)
    complexity    ComplexityConfig          (`dae complexity`)      -

The table is written out here, not filled by imports: reading it lists every kind, and the modules
it names never import it back (tests/test_imports.py checks that src/dae has no import cycle).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torch import nn

from dae.autoencoder.kl import KLAutoencoder
from dae.autoencoder.toy_vae import ToyVAE
from dae.autoencoder.vqgan import VQGAN
from dae.config import apply_overrides, from_dict, read_yaml
from dae.errors import ConfigError
from dae.priors.models import DiTPrior, DiTPriorConfig, GPTPrior, GPTPriorConfig
from dae.priors.task import PriorTask
from dae.reproduce.gan import GANExperimentConfig, GANTask, build_gan_model
from dae.reproduce.toy import ToyExperimentConfig, ToyTask
from dae.theory.complexity import ComplexityConfig
from dae.train.image_task import KLExperimentConfig, KLTask, VQGANExperimentConfig, VQGANTask

Family = Literal["autoencoder", "prior", "study"]


@dataclass(frozen=True)
class Kind:
    """A config dataclass, the task that trains it and the (untrained) model a run of it holds.

    Autoencoders: `task(cfg)`, `model(cfg)`. Priors also need their latent cache:
    `task(cfg, cache)`, `model(cfg, cache.meta)`. `model=None`: build the task and take its model.
    """

    config: type
    family: Family
    task: Callable[..., Any] | None = None
    model: Callable[..., nn.Module] | None = None


KINDS: dict[str, Kind] = {
    "toy_vae": Kind(ToyExperimentConfig, "autoencoder", ToyTask, lambda cfg: ToyVAE(cfg.model)),
    "vqgan": Kind(VQGANExperimentConfig, "autoencoder", VQGANTask, lambda cfg: VQGAN(cfg.model)),
    "kl": Kind(KLExperimentConfig, "autoencoder", KLTask, lambda cfg: KLAutoencoder(cfg.model)),
    "gan": Kind(GANExperimentConfig, "autoencoder", GANTask, build_gan_model),
    "prior_gpt": Kind(GPTPriorConfig, "prior", PriorTask, GPTPrior),
    "prior_dit": Kind(DiTPriorConfig, "prior", PriorTask, DiTPrior),
    "complexity": Kind(ComplexityConfig, "study"),
}


def get_kind(name: Any, where: str = "") -> Kind:
    """`KINDS[name]`, or a ConfigError on `kind` naming the closest known kinds."""
    if name not in KINDS:
        close = difflib.get_close_matches(str(name), list(KINDS), n=3)
        hint = f"did you mean {close}?" if close else f"one of {sorted(KINDS)}"
        what = "missing" if name is None else f"unknown kind {name!r}"
        raise ConfigError("kind", f"{where}{what}; {hint}")
    return KINDS[name]


def config_from_dict(data: dict[str, Any], where: str = "") -> tuple[Kind, Any]:
    """(kind, validated config) of plain config data with a `kind:` key."""
    kind = get_kind(data.get("kind"), where)
    return kind, from_dict(kind.config, data)


def load_config(path: str | Path, overrides: list[str] = ()) -> tuple[Kind, Any]:
    """Read any preset of `configs/`, apply `--set` overrides, validate it against its kind."""
    data = apply_overrides(read_yaml(path), list(overrides))
    return config_from_dict(data, f"{path}: ")


def load_preset(path: str | Path, overrides: list[str] = ()) -> Any:
    """The validated config of any preset (the kind is in it)."""
    return load_config(path, overrides)[1]


load_experiment_config = load_config  # the name the commands used before the table
