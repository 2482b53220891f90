"""Training a prior on a latent cache: a small loop with exact resume.

The autoencoder `Trainer` is built around the DAE schedule (stages, frozen parts, decoders); a prior
has none of that, so it gets this loop, reusing the pieces: `build_optimizer`, `EMA`,
`EpochSampler`, `MetricsLogger`, atomic checkpoints. Everything random in a step (the batch, the KL
latent draw, diffusion's t and noise, label dropout) comes from a generator seeded by
`(seed, step)`, and the global RNG (dropout) is checkpointed, so a resumed run equals an
uninterrupted one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from dae.config import ConfigError, to_dict
from dae.data.sampler import EpochSampler
from dae.priors.cache import LatentCache, build_cache
from dae.train.checkpoint import (
    CheckpointError,
    atomic_write,
    host_rng_state,
    last_checkpoint,
    load_checkpoint,
    load_state,
    restore_host_rng_state,
    save_checkpoint,
)
from dae.train.export import save_weights
from dae.train.logger import MetricsLogger
from dae.train.precision import select_precision
from dae.train.trainer import (
    EMA,
    NonFiniteLossError,
    OptimConfig,
    TrainConfig,
    build_optimizer,
    prepare_run_dir,
)

CHECKPOINT_VERSION = 1


def step_generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator of one training step: a pure function of (seed, step)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step + 1)


def prior_optimizer(cfg: OptimConfig, prior: nn.Module) -> torch.optim.Optimizer:
    """`build_optimizer` over the prior's groups (e.g. no decay on biases, norms, embeddings)."""
    groups = [g for g in prior.param_groups(cfg.weight_decay) if g["params"]]
    opt = build_optimizer(cfg, groups[0]["params"])
    opt.param_groups[0]["weight_decay"] = groups[0]["weight_decay"]
    for group in groups[1:]:
        opt.add_param_group(group)
    return opt


class PriorTrainer:
    """Trains `prior` on `cache` for `cfg.steps` steps; checkpoints to `run_dir/checkpoints`."""

    def __init__(
        self,
        prior: nn.Module,
        cache: LatentCache,
        cfg: TrainConfig,
        optim: OptimConfig,
        run_dir: str | Path | None = None,
        config: dict[str, Any] | None = None,
        resume: bool = False,
        sample_posterior: bool = True,
    ):
        self.prior, self.cache, self.cfg, self.optim_cfg = prior, cache, cfg, optim
        self.device = torch.device(cfg.device)
        self.prior.to(self.device)
        self.run_dir = Path(run_dir) if run_dir else None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.precision = select_precision(cfg.precision, self.device, self.run_dir)
        self.config = config or {}
        self.sample_posterior = sample_posterior
        self.step = 0
        self.optimizer = prior_optimizer(optim, prior)
        self.ema = EMA(prior, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.sampler = EpochSampler(len(cache), cfg.batch_size, cfg.seed)
        if resume:
            self._load()

    @property
    def ckpt_path(self) -> Path:
        assert self.run_dir is not None
        return last_checkpoint(self.run_dir)

    def state(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "modules": {"prior": self.prior.state_dict()},
            "ema": self.ema.shadow if self.ema else None,
            "optimizers": {"prior": self.optimizer.state_dict()},
            "rng": host_rng_state(),
            "config": self.config,
        }

    def _load(self) -> None:
        payload = load_checkpoint(self.ckpt_path)
        if payload.get("version") != CHECKPOINT_VERSION or "prior" not in payload.get(
            "modules", {}
        ):
            raise CheckpointError(f"{self.ckpt_path}: not a dae prior checkpoint")
        load_state(self.prior, payload["modules"]["prior"], f"prior in {self.ckpt_path}")
        self.optimizer.load_state_dict(payload["optimizers"]["prior"])
        if self.ema is not None and payload.get("ema") is not None:
            self.ema.shadow = payload["ema"]
        self.step = int(payload["step"])
        restore_host_rng_state(payload["rng"])

    def save(self) -> None:
        if self.run_dir is not None:
            save_checkpoint(self.ckpt_path, self.state())

    def export(self) -> None:
        """`prior.safetensors` (and `prior_ema.safetensors`), with the run config in the header."""
        assert self.run_dir is not None
        save_weights(self.run_dir / "prior.safetensors", self.prior, self.config)
        if self.ema is not None:
            ema_model = _with_state(self.prior, self.ema.shadow)
            save_weights(self.run_dir / "prior_ema.safetensors", ema_model, self.config)

    def fit(self) -> list[dict[str, Any]]:
        """Train to `cfg.steps`; returns the logged rows."""
        cfg = self.cfg
        logger = MetricsLogger(self.run_dir, self.step, tensorboard=cfg.tensorboard)
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=not cfg.progress,
            desc="prior",
            unit="step",
            dynamic_ncols=True,
        )
        try:
            while self.step < cfg.steps:
                logs = self._train_step()
                self.step += 1
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    logger.log(self.step, {k: v for k, v in logs.items() if math.isfinite(v)})
                    bar.set_postfix({k: f"{v:.3g}" for k, v in list(logs.items())[:2]})
                if cfg.ckpt_every and self.step % cfg.ckpt_every == 0 and self.step < cfg.steps:
                    self.save()
            self.save()
        except KeyboardInterrupt:
            self.save()
            raise
        finally:
            bar.close()
            logger.close()
        return logger.rows

    def _train_step(self) -> dict[str, float]:
        cfg, step = self.cfg, self.step
        gen = step_generator(cfg.seed, step)
        latents, labels = self.cache.batch(self.sampler.indices(step), gen, self.sample_posterior)
        warm = self.optim_cfg.warmup_steps
        for group in self.optimizer.param_groups:
            group["lr"] = self.optim_cfg.lr * (min(1.0, (step + 1) / warm) if warm else 1.0)
        self.prior.train()
        self.optimizer.zero_grad(set_to_none=True)
        logs: dict[str, float] = {}
        for x, y in zip(latents.chunk(cfg.grad_accum), labels.chunk(cfg.grad_accum), strict=True):
            with self.precision.autocast():
                loss, parts = self.prior.loss(x.to(self.device), y.to(self.device), gen)
            if not torch.isfinite(loss):
                if cfg.on_nan == "stop":
                    raise NonFiniteLossError(
                        f"non-finite prior loss at step {step}; stopped, the "
                        "last good checkpoint is kept"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                return {"skipped_nonfinite": 1.0}
            (loss / cfg.grad_accum).backward()
            for key, value in parts.items():
                logs[key] = logs.get(key, 0.0) + value / cfg.grad_accum
        if self.optim_cfg.grad_clip > 0:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            logs["grad_norm"] = float(nn.utils.clip_grad_norm_(params, self.optim_cfg.grad_clip))
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.prior)
        return logs


def _with_state(module: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of `module` holding `state` (e.g. the EMA weights) for export."""
    import copy

    clone = copy.deepcopy(module)
    clone.load_state_dict(state)
    return clone


def train_prior(
    kind: Any,
    cfg: Any,
    ae_run: str | Path,
    out: str | Path,
    resume: bool = False,
    overwrite: bool = False,
) -> PriorTrainer:
    """`dae train-prior`: cache the run's latents into `out` (once), train, export the weights."""
    import yaml

    ae_run, out = Path(ae_run), Path(out)
    if not (ae_run / "config.yaml").is_file():
        raise FileNotFoundError(f"{ae_run} is not a dae run: no config.yaml")
    cfg.ae_run = str(ae_run)
    prepare_run_dir(out, resume=resume, overwrite=overwrite)
    config = to_dict(cfg)
    saved = out / "config.yaml"
    if resume and saved.is_file() and yaml.safe_load(saved.read_text()) != config:
        raise ConfigError("config", f"differs from the run being resumed ({saved})")
    atomic_write(saved, lambda tmp: tmp.write_text(yaml.safe_dump(config, sort_keys=False)))
    cache_path = out / "latents.safetensors"
    if cache_path.is_file():
        cache = LatentCache.load(cache_path)
    else:
        cache = build_cache(ae_run, cfg.data, cfg.cache, cfg.train.device)
        cache.save(cache_path)
    shape = cache.meta["latent_shape"]
    print(f"latents: {len(cache)} x {shape} ({cache.kind}) from {cache.meta['ae_source']}")
    torch.manual_seed(cfg.train.seed)
    prior = kind.build(cfg, cache.meta)
    trainer = PriorTrainer(
        prior, cache, cfg.train, cfg.optim, out, config, resume, cfg.cache.sample_posterior
    )
    trainer.fit()
    trainer.export()
    return trainer
