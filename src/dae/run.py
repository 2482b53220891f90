"""`Run(path)`: one object owns a run folder. Every command that reads a run goes through it.

The file names are `RunFolder`'s (dae/run_folder.py); `Run` adds what needs the table of
experiment kinds: the validated config, the trained autoencoder with its full decoder active, and a
prior with its latent cache's metadata.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from dae.config import apply_overrides
from dae.errors import CheckpointError, ConfigError
from dae.experiments import Kind, config_from_dict
from dae.priors.cache import read_cache_meta
from dae.provenance import file_sha256
from dae.run_folder import RunFolder, Weights
from dae.schedule import DAESchedule
from dae.train.checkpoint import load_state


@dataclass
class Loaded:
    """A run's model in eval mode, which weights it holds, and the run's config."""

    model: nn.Module
    source: str  # "final", "ema", "ema@STEP", "checkpoint@STEP/STAGE"
    stage: str | None  # the checkpoint's stage; None for final weights
    cfg: Any
    meta: dict[str, Any] = field(default_factory=dict)  # a prior's latent-cache metadata
    step: int | None = None  # steps trained into these weights (all of them for final weights)


class Run(RunFolder):
    """A run folder read through its experiment kind."""

    def kind_and_config(self, overrides: list[str] = ()) -> tuple[Kind, Any]:
        """The kind and validated config in `config.yaml` (with `--set` overrides)."""
        data = apply_overrides(self.read_config(), list(overrides))
        return config_from_dict(data, f"{self.config_path}: ")

    def config(self, overrides: list[str] = ()) -> Any:
        return self.kind_and_config(overrides)[1]

    def _expect(self, kind: Kind, cfg: Any, family: str) -> None:
        if kind.family != family:
            raise ConfigError("kind", f"{self.path} is a {cfg.kind} run, not a {family} run")

    def autoencoder(
        self, weights: Weights = "auto", checkpoint: str | Path | None = None
    ) -> Loaded:
        """The run's autoencoder with `weights` loaded, full decoder active, in eval mode
        (`checkpoint`: another checkpoint file of this run, with weights="checkpoint")."""
        kind, cfg = self.kind_and_config()
        self._expect(kind, cfg, "autoencoder")
        build_cfg = _without_init_from(cfg)
        model = kind.model(build_cfg) if kind.model else kind.task(build_cfg).model
        schedule = DAESchedule(cfg.schedule, cfg.train.steps)
        schedule.prepare(model)  # a DAE run's weights hold its aux decoder
        state, source, payload = self.state(weights, checkpoint=checkpoint)
        load_state(model, state, f"model of {self.path} ({source})")
        schedule.finish(model)
        step = payload.get("step", cfg.train.steps)
        return Loaded(model.eval(), source, payload.get("stage"), cfg, step=step)

    def prior(self, use_ema: bool | None = None, overrides: list[str] = ()) -> Loaded:
        """The run's prior with its final weights (EMA if kept and `sample.use_ema`)."""
        kind, cfg = self.kind_and_config(overrides)
        self._expect(kind, cfg, "prior")
        meta = read_cache_meta(self.latents_path)
        model = kind.model(cfg, meta)
        want_ema = cfg.sample.use_ema if use_ema is None else use_ema
        weights = "ema" if want_ema and self.ema_weights_path.is_file() else "final"
        state, source, _ = self.state(weights)
        load_state(model, state, f"prior of {self.path} ({source})")
        return Loaded(model.eval(), source, None, cfg, meta)

    def autoencoder_of(self, prior: Loaded, weights: Weights = "auto") -> Loaded:
        """The autoencoder that `prior` (this run's `prior()`) decodes with: its `ae_run`, refused
        if it is gone or was replaced after the prior's latents were encoded."""
        ae_run = Run(prior.cfg.ae_run)
        if not ae_run.exists():
            raise ConfigError(
                "ae_run",
                f"{prior.cfg.ae_run} (in {self.config_path}) is not a dae run, seen from "
                f"{Path.cwd()}; runs made now store it absolute",
            )
        made_by = prior.meta.get("made_from", {}).get("ae", {})
        if made_by and made_by["config_sha256"] != file_sha256(ae_run.config_path):
            raise CheckpointError(
                f"{prior.cfg.ae_run}: this autoencoder run was replaced after the prior in "
                f"{self.path} was trained (its {ae_run.config_path.name} changed); its decoder "
                "would not match the prior's latents. Train the prior again (train-prior "
                "--overwrite)"
            )
        return ae_run.autoencoder(weights)


def _without_init_from(cfg: Any) -> Any:
    """`cfg` with `model.init_from` cleared: the run's own weights replace the pretrained start,
    so building its model must not read (or need) the pretrained folder. A shallow copy, since
    `Loaded.cfg` keeps the run's config as trained (and re-validating would reject stage2)."""
    if not getattr(getattr(cfg, "model", None), "init_from", None):
        return cfg
    cfg = copy.copy(cfg)
    cfg.model = copy.copy(cfg.model)
    cfg.model.init_from = None
    return cfg
