"""Experiment kinds: the `kind:` key of a config names a registered config class + task builder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dae.config import ConfigError, apply_overrides, from_dict, read_yaml
from dae.registry import Registry


@dataclass(frozen=True)
class ExperimentKind:
    """A config dataclass (with `schedule`, `optim`, `train` sections) and `build(cfg) -> Task`."""

    config_cls: type
    build_task: Callable[[Any], Any]


EXPERIMENTS: Registry[ExperimentKind] = Registry("experiment kind")


def load_experiment_config(
    path: str | Path, overrides: list[str] = ()
) -> tuple[ExperimentKind, Any]:
    """Read a preset, apply `--set` overrides, validate it against its kind's dataclass."""
    import dae.reproduce.gan  # noqa: F401
    import dae.reproduce.toy  # noqa: F401  (registers the built-in kinds)
    import dae.train.image_task  # noqa: F401  (vqgan, kl)

    data = apply_overrides(read_yaml(path), list(overrides))
    kind_name = data.get("kind")
    if kind_name is None:
        raise ConfigError("kind", f"{path}: missing; one of {EXPERIMENTS.names()}")
    try:
        kind = EXPERIMENTS.get(kind_name)
    except KeyError as err:
        raise ConfigError("kind", str(err.args[0])) from None
    return kind, from_dict(kind.config_cls, data)


def load_preset(path: str | Path, overrides: list[str] = ()) -> Any:
    """Any preset of `configs/`, validated by its kind: experiments, priors, complexity studies."""
    from dae.priors.models import PRIORS, load_prior_config

    kind = read_yaml(path).get("kind")
    if kind in PRIORS:  # prior presets (dae train-prior)
        return load_prior_config(path, overrides)[1]
    if kind == "complexity":  # dae complexity
        from dae.theory.complexity import ComplexityConfig

        return from_dict(ComplexityConfig, apply_overrides(read_yaml(path), list(overrides)))
    return load_experiment_config(path, overrides)[1]
