"""Gaussian diffusion for the DiT prior: DDPM math with a learned variance (Nichol & Dhariwal 2021).

The forward process, its posterior, the learned-range variance, the hybrid loss
`L_simple + lambda * L_vlb`, timestep respacing and the DDPM / DDIM samplers, compactly, after
openai/improved-diffusion as used by DiT. Written by hand (not with diffusers' schedulers) because
the VLB term needs the same posterior / p(x_{t-1}|x_t) code the sampler uses: one implementation
means the loss and the sampler cannot disagree. diffusers' `DDPMScheduler`/`DDIMScheduler` serve as
the reference this module is tested against (tests/test_diffusion.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

# model(x_t, t) -> eps (C channels) or [eps, v] (2C channels), t in the *original* 0..999 steps.
ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def linear_betas(num_timesteps: int = 1000, start: float = 1e-4, end: float = 0.02) -> torch.Tensor:
    """DDPM's linear schedule, scaled so any step count spans the same noise range (float64)."""
    scale = 1000 / num_timesteps
    return torch.linspace(scale * start, scale * end, num_timesteps, dtype=torch.float64)


def space_timesteps(num_timesteps: int, count: int) -> list[int]:
    """`count` evenly strided steps of `0..num_timesteps-1`, both ends included (improved-diffusion)."""
    if not 1 <= count <= num_timesteps:
        raise ValueError(f"cannot take {count} of {num_timesteps} steps")
    if count == 1:
        return [num_timesteps - 1]
    stride = (num_timesteps - 1) / (count - 1)
    return sorted({round(i * stride) for i in range(count)})


def normal_kl(
    m1: torch.Tensor, lv1: torch.Tensor, m2: torch.Tensor, lv2: torch.Tensor
) -> torch.Tensor:
    """KL(N(m1, e^lv1) || N(m2, e^lv2)), elementwise."""
    return 0.5 * (-1.0 + lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2))


def discretized_gaussian_log_likelihood(
    x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor
) -> torch.Tensor:
    """log p(x) of a Gaussian integrated over 8-bit bins of [-1, 1] (DDPM's decoder at t = 0)."""

    def cdf(v: torch.Tensor) -> torch.Tensor:  # the tanh approximation DDPM uses
        return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))

    centred, inv_std = x - means, torch.exp(-log_scales)
    cdf_plus, cdf_min = cdf(inv_std * (centred + 1 / 255)), cdf(inv_std * (centred - 1 / 255))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(
        x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta)
    )


def _mean_flat(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=tuple(range(1, x.ndim)))


class GaussianDiffusion:
    """Coefficients of one noise schedule (float64) and the operations on it.

    `timestep_map[i]` is the original step a respaced step `i` stands for; the model always sees
    original steps, so a network trained with 1000 steps samples with 250.
    """

    def __init__(self, betas: torch.Tensor, timestep_map: torch.Tensor | None = None):
        self.betas = betas.double()
        self.num_timesteps = len(betas)
        self.timestep_map = (
            torch.arange(self.num_timesteps) if timestep_map is None else timestep_map
        )
        alphas = 1.0 - self.betas
        self.alphas_cumprod = ac = torch.cumprod(alphas, dim=0)
        self.alphas_cumprod_prev = ac_prev = torch.cat([torch.ones(1, dtype=ac.dtype), ac[:-1]])
        self.sqrt_recip_ac, self.sqrt_recipm1_ac = (1 / ac).sqrt(), (1 / ac - 1).sqrt()
        self.posterior_variance = pv = self.betas * (1 - ac_prev) / (1 - ac)
        # pv[0] = 0; DDPM clips the log at t = 0 to the t = 1 value.
        self.posterior_log_variance_clipped = torch.log(torch.cat([pv[1:2], pv[1:]]))
        self.posterior_mean_coef1 = self.betas * ac_prev.sqrt() / (1 - ac)
        self.posterior_mean_coef2 = (1 - ac_prev) * alphas.sqrt() / (1 - ac)

    @staticmethod
    def _at(arr: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """`arr[t]` as `like`'s dtype, shaped `(B, 1, 1, ...)` to broadcast against it."""
        out = arr.to(like.device)[t].to(like.dtype)
        return out.view(-1, *([1] * (like.ndim - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
        ac = self.alphas_cumprod
        return self._at(ac.sqrt(), t, x0) * x0 + self._at((1 - ac).sqrt(), t, x0) * noise

    def q_posterior(
        self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0)."""
        mean = (
            self._at(self.posterior_mean_coef1, t, xt) * x0
            + self._at(self.posterior_mean_coef2, t, xt) * xt
        )
        return (
            mean,
            self._at(self.posterior_variance, t, xt),
            self._at(self.posterior_log_variance_clipped, t, xt),
        )

    def p_mean_variance(
        self, out: torch.Tensor, xt: torch.Tensor, t: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """p(x_{t-1} | x_t) from the model output: learned-range variance if it has 2C channels."""
        c = xt.shape[1]
        eps = out[:, :c]
        if out.shape[1] == 2 * c:
            # v in [-1, 1] interpolates log-variance between the posterior's and beta_t (log space).
            frac = (out[:, c:] + 1) / 2
            min_log = self._at(self.posterior_log_variance_clipped, t, xt)
            max_log = self._at(torch.log(self.betas), t, xt)
            logvar = frac * max_log + (1 - frac) * min_log
        else:  # DDPM's "fixed large" variance, DiT's choice without learn_sigma
            large = torch.cat([self.posterior_variance[1:2], self.betas[1:]])
            logvar = self._at(torch.log(large), t, xt).expand_as(xt)
        pred_x0 = (
            self._at(self.sqrt_recip_ac, t, xt) * xt - self._at(self.sqrt_recipm1_ac, t, xt) * eps
        )
        mean, _, _ = self.q_posterior(pred_x0, xt, t)
        return {"mean": mean, "logvar": logvar, "pred_x0": pred_x0, "eps": eps}

    def vb_terms(
        self, out: torch.Tensor, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        """Per-example VLB term in bits/dim: KL(q || p) for t > 0, decoder NLL at t = 0."""
        true_mean, _, true_logvar = self.q_posterior(x0, xt, t)
        p = self.p_mean_variance(out, xt, t)
        kl = _mean_flat(normal_kl(true_mean, true_logvar, p["mean"], p["logvar"])) / math.log(2.0)
        nll = -_mean_flat(
            discretized_gaussian_log_likelihood(x0, p["mean"], 0.5 * p["logvar"])
        ) / math.log(2.0)
        return torch.where(t == 0, nll, kl)

    def training_losses(
        self,
        model: ModelFn,
        x0: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        lambda_vlb: float = 1.0,
    ) -> dict[str, torch.Tensor]:
        """Per-example hybrid loss `mse(eps) + lambda * vb`; the vb term trains only the variance."""
        xt = self.q_sample(x0, t, noise)
        out = model(xt, self.timestep_map.to(t.device)[t])
        c = x0.shape[1]
        terms = {"mse": _mean_flat((noise - out[:, :c]) ** 2)}
        if out.shape[1] == 2 * c:
            # Stop the gradient through the mean: L_vlb shapes the variance, L_simple the mean.
            frozen = torch.cat([out[:, :c].detach(), out[:, c:]], dim=1)
            terms["vb"] = self.vb_terms(frozen, x0, xt, t)
            terms["loss"] = terms["mse"] + lambda_vlb * terms["vb"]
        else:
            terms["loss"] = terms["mse"]
        return terms

    def respace(self, steps: int | list[int]) -> GaussianDiffusion:
        """A schedule over `steps` (a count, evenly strided, or the steps) with the same abar there."""
        keep = (
            space_timesteps(self.num_timesteps, steps) if isinstance(steps, int) else sorted(steps)
        )
        kept = self.alphas_cumprod[keep]
        prev = torch.cat([torch.ones(1, dtype=kept.dtype), kept[:-1]])
        return GaussianDiffusion(1 - kept / prev, self.timestep_map[keep])

    # -- samplers ---------------------------------------------------------------------------------
    def _noise(self, shape: tuple[int, ...], gen: torch.Generator | None, device) -> torch.Tensor:
        return torch.randn(shape, generator=gen, device=device)

    @torch.no_grad()
    def p_sample_loop(
        self,
        model: ModelFn,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Ancestral (DDPM) sampling from pure noise through every step of this schedule."""
        x = self._noise(shape, generator, device)
        tmap = self.timestep_map.to(device)
        for i in reversed(range(self.num_timesteps)):
            t = torch.full((shape[0],), i, device=device, dtype=torch.long)
            p = self.p_mean_variance(model(x, tmap[t]), x, t)
            noise = self._noise(shape, generator, device) if i > 0 else torch.zeros_like(x)
            x = p["mean"] + torch.exp(0.5 * p["logvar"]) * noise
        return x

    @torch.no_grad()
    def ddim_sample_loop(
        self,
        model: ModelFn,
        shape: tuple[int, ...],
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """DDIM sampling (eta = 0: deterministic) through every step of this schedule."""
        x = self._noise(shape, generator, device)
        tmap = self.timestep_map.to(device)
        for i in reversed(range(self.num_timesteps)):
            t = torch.full((shape[0],), i, device=device, dtype=torch.long)
            x = self.ddim_step(model(x, tmap[t]), x, t, eta, generator)
        return x

    def ddim_step(
        self,
        out: torch.Tensor,
        x: torch.Tensor,
        t: torch.Tensor,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """x_{t-1} from x_t and the predicted noise (Song et al. 2021, eq. 12)."""
        eps = out[:, : x.shape[1]]
        pred_x0 = (
            self._at(self.sqrt_recip_ac, t, x) * x - self._at(self.sqrt_recipm1_ac, t, x) * eps
        )
        ab, ab_prev = self._at(self.alphas_cumprod, t, x), self._at(self.alphas_cumprod_prev, t, x)
        sigma = eta * ((1 - ab_prev) / (1 - ab)).sqrt() * (1 - ab / ab_prev).sqrt()
        x_prev = pred_x0 * ab_prev.sqrt() + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0:
            nonzero = (t != 0).to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
            x_prev = x_prev + nonzero * sigma * self._noise(x.shape, generator, x.device)
        return x_prev


def classifier_free_guidance(
    model: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    labels: torch.Tensor,
    null_label: int,
    scale: float,
    latent_channels: int,
    guided_channels: int | None = None,
) -> ModelFn:
    """A ModelFn giving `uncond + scale * (cond - uncond)` on the predicted noise.

    All latent channels are guided by default; `guided_channels=3` reproduces DiT's sample.py,
    which guides only the first three of the four SD-VAE channels. The variance comes from the
    conditional half.
    """
    k = guided_channels or latent_channels
    null = torch.full_like(labels, null_label)

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]))
        cond, uncond = out.chunk(2)
        eps = uncond[:, :k] + scale * (cond[:, :k] - uncond[:, :k])
        return torch.cat([eps, cond[:, k:]], dim=1)

    return guided
