"""The decoder probe: a fresh decoder of a given width trained on a run's frozen latent.

The encoder and bottleneck are frozen as in DAE stage 2 (`freeze_encoder`); the decoder is the
run's own family (`model.build_decoder(width)`: a 1x1 input conv and a diffusers Decoder `width`
times as wide), trained with the run's pixel loss (L1, plus LPIPS if the run used it) and no GAN.
Every run sees the same batches, flips, initialisation seed and test images, so a difference in
the numbers is a difference in the latent. A VQ decoder reads the quantised codes; a KL decoder
reads posterior samples in training and the posterior mean at test time, as the run's did.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from dae.autoencoder.base import DecoupledAutoencoder
from dae.autoencoder.image import diffusers_trunk
from dae.data.images import LabelledImages, float_batch
from dae.data.sampler import EpochSampler
from dae.data.transforms import to_float, to_uint8
from dae.losses.reconstruction import Reconstruction
from dae.metrics.features import FeatureExtractor
from dae.metrics.fid import frechet_distance
from dae.metrics.reconstruction import psnr
from dae.probe.config import ProbeConfig
from dae.probe.runs import ProbedRun
from dae.progress import progress_bar
from dae.train.optim import OptimConfig, build_optimizer
from dae.train.precision import resolve_precision

# Taming's Adam betas, which every dae image preset uses.
BETAS = (0.5, 0.9)


@torch.no_grad()
def encode_images(run: ProbedRun, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Deterministic latents `(N, bottleneck, h, w)` of uint8 `images` under the frozen encoder:
    quantised codes (VQ) or posterior means (KL); encoded once, reused by every width."""
    model = run.model.to(device)
    parts = [
        model.latent(to_float(images[i : i + 250]).to(device)).cpu()
        for i in range(0, len(images), 250)
    ]
    return torch.cat(parts)


def train_latent(model: DecoupledAutoencoder, x: torch.Tensor) -> torch.Tensor:
    """What the stage-2 decoder reads in training: quantised codes, or a posterior sample (KL)."""
    with torch.no_grad():
        if model.kind == "vq":
            return model.latent(x)
        mean, logvar = model.posterior(x)  # (B, C, h, w) each
        # torch.randn, not randn_like: a channels-last `mean` would reorder the draws
        return mean + (0.5 * logvar).exp() * torch.randn(mean.shape, device=mean.device)


@torch.no_grad()
def decode_all(decoder: nn.Module, latents: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Reconstructions `(N, C, H, W)` in float, batch by batch, on the CPU."""
    decoder.eval()
    out = [
        decoder(latents[i : i + 250].to(device)).float().cpu() for i in range(0, len(latents), 250)
    ]
    decoder.train()
    return torch.cat(out)


def measure(
    recon: torch.Tensor,
    images: torch.Tensor,
    features: FeatureExtractor | None = None,
    reference: dict[str, torch.Tensor] | None = None,
) -> dict[str, float]:
    """Test L1, PSNR and (given features of the real `images`) the reconstruction FD, all of the
    reconstructions clamped to the image range [-1, 1], as they would be saved."""
    real, recon = to_float(images), recon.clamp(-1, 1)
    out = {"l1": float((recon - real).abs().mean()), "psnr": psnr(recon, real)}
    if features is not None and reference is not None:
        fake = features.extract(to_uint8(recon))
        out[features.names["fd"]] = frechet_distance(reference["pool"], fake["pool"])
    return out


def curve_steps(cfg: ProbeConfig) -> list[int]:
    """The steps (1-based counts) after which test L1 is measured; the last is `cfg.steps`."""
    return sorted({round(cfg.steps * (k + 1) / cfg.curve_points) for k in range(cfg.curve_points)})


def probe_decoder(
    run: ProbedRun,
    width: float,
    train: LabelledImages,
    test_images: torch.Tensor,
    test_latents: torch.Tensor,
    cfg: ProbeConfig,
    features: FeatureExtractor | None = None,
    reference: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Train one fresh decoder `width` times as wide on the frozen latent; its scores and curves."""
    t0, cpu0 = time.time(), time.process_time()
    device = torch.device(cfg.device)
    model = run.model.to(device)
    torch.manual_seed(cfg.seed)  # decoder init and KL posterior draws: the same for every run
    decoder = model.build_decoder(width).to(device)
    optimizer = build_optimizer(
        OptimConfig(name="adam", lr=cfg.lr, betas=BETAS), list(decoder.parameters())
    )
    loss_fn = Reconstruction(run.cfg.loss).to(device)
    sampler = EpochSampler(len(train), cfg.batch_size, cfg.seed)
    precision = resolve_precision(cfg.precision, device)
    checkpoints = set(curve_steps(cfg))
    train_curve: list[list[float]] = []
    test_curve: list[list[float]] = []
    window_sum, window_len = torch.zeros((), device=device), 0  # no per-step sync on a GPU
    hflip = run.cfg.data.hflip
    bar = progress_bar(range(cfg.steps), desc=f"{run.identity['name']} w={width:g}", unit="step")
    for step in bar:
        x = float_batch(train, sampler.indices(step), hflip, seed=cfg.seed + step).to(device)
        z = train_latent(model, x)
        with precision.autocast():
            x_hat = decoder(z).float()
        loss = loss_fn(x, x_hat).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        window_sum, window_len = window_sum + (x - x_hat.detach()).abs().mean(), window_len + 1
        done = step + 1
        if done % cfg.curve_every == 0 or done == cfg.steps:
            train_curve.append([done, float(window_sum) / window_len])
            bar.set_postfix(l1=f"{train_curve[-1][1]:.4f}")
            window_sum, window_len = torch.zeros((), device=device), 0
        if done in checkpoints:
            n = cfg.curve_n
            recon = decode_all(decoder, test_latents[:n], device)
            test_curve.append([done, measure(recon, test_images[:n])["l1"]])
    bar.close()
    recon = decode_all(decoder, test_latents, device)
    scores = measure(recon, test_images, features, reference)
    return {
        "width": width,
        "channels": list(diffusers_trunk(run.cfg.model, width)["block_out_channels"]),
        "parameters": sum(p.numel() for p in decoder.parameters()),
        "test": scores,
        "curve": {"train_l1": train_curve, "test_l1": test_curve},
        "seconds": round(time.time() - t0, 1),
        "cpu_seconds": round(time.process_time() - cpu0, 1),  # ~`seconds` on an idle machine
    }
