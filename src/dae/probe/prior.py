"""The prior probe: how easy a run's latent is to model, with one fixed small prior per family.

- VQ runs: a small GPT over the code grids, trained `prior_steps` steps; score = held-out
  negative log-likelihood per token (nats), lower is better. The score is only comparable between
  runs with the same codebook size and grid.
- KL runs: a small unconditional DiT (eps-prediction, no learned variance) on latents centred per
  channel and scaled to unit variance, both measured on the probe's training latents (the cache's
  `shift` and `scaling_factor`), so runs with differently scaled latents compare; score =
  held-out eps-MSE at fixed noise levels, with fixed noise.
The prior trains in dae's one `Trainer` (as a `PriorTask`) on dae's latent cache.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch

from dae.config import to_dict
from dae.data.images import LabelledImages
from dae.experiments import KINDS
from dae.priors.cache import CacheConfig, LatentCache, encode_dataset
from dae.priors.dit import DiTConfig
from dae.priors.gpt import GPTConfig
from dae.priors.models import DiTPrior, DiTPriorConfig, GPTPrior, GPTPriorConfig
from dae.priors.task import PriorTask, step_generator
from dae.probe.config import ProbeConfig
from dae.probe.runs import ProbedRun
from dae.train.optim import OptimConfig
from dae.train.task import TrainConfig
from dae.train.trainer import Trainer

# The fixed prior sizes and recipe: part of the probe's definition, hashed into its cache key.
PROBE_GPT = GPTConfig(n_layer=2, n_head=4, n_embd=128)
PROBE_DIT = DiTConfig(
    arch="DiT-S/2", depth=2, hidden_size=128, num_heads=4, learn_sigma=False, class_dropout=0.0
)
PRIOR_OPTIM = OptimConfig(name="adamw", lr=3e-4, betas=(0.9, 0.95), warmup_steps=50)
# Noise levels (of DDPM's 1000-step linear schedule) at which the DiT's held-out loss is measured.
NOISE_LEVELS = (100, 300, 500, 700, 900)


def prior_recipe(cfg: ProbeConfig) -> dict[str, Any]:
    """Everything a prior-probe result depends on."""
    fixed = {"gpt": PROBE_GPT, "dit": PROBE_DIT, "optim": PRIOR_OPTIM, "t": list(NOISE_LEVELS)}
    return {**cfg.prior_recipe(), **to_dict(fixed)}


def probe_prior(
    run: ProbedRun, train: LabelledImages, test: LabelledImages, cfg: ProbeConfig
) -> dict[str, Any]:
    """Encode a seeded subset of the run's train images and the held-out `test` images, train the
    fixed prior, score it on `test`."""
    t0, cpu0 = time.time(), time.process_time()
    gen = torch.Generator().manual_seed(cfg.seed)
    pick = torch.randperm(len(train), generator=gen)[: cfg.prior_images]
    train_cache = _encode(run, train, pick, cfg)
    test_cache = _encode(run, test, torch.arange(len(test)), cfg)
    if train_cache.kind == "kl":
        _normalise(train_cache, cfg.seed)
        for key in ("scaling_factor", "shift"):  # held-out latents: the training normalisation
            test_cache.meta[key] = train_cache.meta[key]
    train_cache.meta["classes"] = []  # unconditional
    prior_cfg = _prior_config(train_cache, cfg)
    kind = KINDS[prior_cfg.kind]
    torch.manual_seed(cfg.seed)  # the prior's initialisation: the same for every run
    prior = kind.model(prior_cfg, train_cache.meta)
    task = PriorTask(prior_cfg, train_cache, prior)
    rows = Trainer(task, None, prior_cfg.train, prior_cfg.optim).fit()  # no run folder: no files
    prior.eval()
    result: dict[str, Any] = {"family": "gpt" if train_cache.kind == "vq" else "dit"}
    result["train_images"], result["test_images"] = len(train_cache), len(test_cache)
    if train_cache.kind == "vq":
        result["test_nll_per_token"] = _held_out_nll(prior, test_cache, cfg)
        result["codebook_size"] = train_cache.meta["codebook_size"]
    else:
        per_t = _held_out_denoising(prior, test_cache, cfg)
        result["test_denoising_mse"] = {str(t): v for t, v in per_t.items()}
        result["test_denoising_mse_mean"] = sum(per_t.values()) / len(per_t)
        z, _ = train_cache.batch(torch.arange(len(train_cache)), step_generator(cfg.seed, 0))
        result["train_latent_std"] = float(z.std())  # ~1: the normalisation makes runs compare
        result["scaling_factor"] = train_cache.meta["scaling_factor"]
    result["latent_shape"] = train_cache.meta["latent_shape"]
    result["curve"] = [[row["step"], row["loss"]] for row in rows if "loss" in row]
    result["seconds"] = round(time.time() - t0, 1)
    result["cpu_seconds"] = round(time.process_time() - cpu0, 1)
    return result


def _encode(run: ProbedRun, data: LabelledImages, index: torch.Tensor, cfg: ProbeConfig):
    """A latent cache of `data[index]` under the frozen encoder."""
    images, labels = data.images[index], data.labels[index]
    cache_cfg = CacheConfig(batch_size=250)
    return encode_dataset(
        run.model, run.loaded.source, images, labels, data.classes, cache_cfg, cfg.device
    )


def _normalise(cache: LatentCache, seed: int) -> None:
    """Set a KL cache's normalisation to zero mean per channel and unit variance overall, measured
    on its own posterior samples (not taken from the run), so every run's prior sees the same."""
    gen = torch.Generator().manual_seed(seed)
    mean, logvar = cache.tensors["mean"], cache.tensors["logvar"]
    z = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=gen)  # (N, C, h, w)
    channel_mean = z.mean((0, 2, 3))
    scale = 1.0 / float((z - channel_mean.view(1, -1, 1, 1)).std())
    cache.meta.update(scaling_factor=scale, shift=(channel_mean * scale).tolist())


def _prior_config(cache: LatentCache, cfg: ProbeConfig) -> GPTPriorConfig | DiTPriorConfig:
    """The fixed prior's config for the cache's latent kind: unconditional, the probe's recipe."""
    train = TrainConfig(
        steps=cfg.prior_steps,
        batch_size=min(cfg.prior_batch_size, len(cache)),
        seed=cfg.seed,
        log_every=max(1, cfg.prior_steps // 20),
        ckpt_every=0,
        device=cfg.device,
        tensorboard=False,
    )  # fp32: `cfg.precision` is the decoders' and is not in the prior's recipe
    if cache.kind == "vq":
        return GPTPriorConfig(
            model=PROBE_GPT, class_conditional=False, optim=PRIOR_OPTIM, train=train
        )
    size = cache.meta["latent_shape"][-1]
    # patch 2 unless the latent's side is odd; runs of one latent shape always get the same DiT
    model = PROBE_DIT if size % 2 == 0 else dataclasses.replace(PROBE_DIT, arch="DiT-S/1")
    return DiTPriorConfig(model=model, class_conditional=False, optim=PRIOR_OPTIM, train=train)


@torch.no_grad()
def _held_out_nll(prior: GPTPrior, cache: LatentCache, cfg: ProbeConfig) -> float:
    """Mean next-token cross-entropy (nats per token) over the held-out code grids."""
    total, count = 0.0, 0
    for start in range(0, len(cache), 250):
        codes, labels = cache.batch(torch.arange(start, min(start + 250, len(cache))), None)
        loss, _ = prior.loss(codes.to(cfg.device), labels.to(cfg.device), None)
        total, count = total + float(loss) * len(codes), count + len(codes)
    return total / count


@torch.no_grad()
def _held_out_denoising(prior: DiTPrior, cache: LatentCache, cfg: ProbeConfig) -> dict[int, float]:
    """eps-MSE at each fixed noise level on the held-out posterior means, with fixed noise."""
    z, _ = cache.batch(torch.arange(len(cache)), None, sample=False)  # (N, C, h, w), prior space
    gen = torch.Generator().manual_seed(cfg.seed)
    noise = torch.randn(z.shape, generator=gen)
    null = torch.zeros(len(z), dtype=torch.long)

    def model(x: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        b = len(x)
        return prior.dit(
            x, ts, null[:b].to(x.device), torch.ones(b, dtype=torch.bool, device=x.device)
        )

    out = {}
    for level in NOISE_LEVELS:
        losses = []
        for start in range(0, len(z), 250):
            x0 = z[start : start + 250].to(cfg.device)
            t = torch.full((len(x0),), level, dtype=torch.long, device=cfg.device)
            eps = noise[start : start + 250].to(cfg.device)
            terms = prior.diffusion.training_losses(model, x0, t, eps, lambda_vlb=0.0)
            losses.append(terms["mse"].cpu())
        out[level] = float(torch.cat(losses).mean())
    return out
