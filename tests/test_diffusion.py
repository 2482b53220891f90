import math

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from dae.priors.diffusion import (
    GaussianDiffusion,
    classifier_free_guidance,
    linear_betas,
    space_timesteps,
)

D = GaussianDiffusion(linear_betas(1000))


def test_linear_schedule_matches_diffusers():
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    torch.testing.assert_close(D.betas.float(), ref.betas, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(D.alphas_cumprod.float(), ref.alphas_cumprod, rtol=1e-4, atol=1e-6)


def test_q_sample_closed_form():
    x0, noise = (
        torch.randn(3, 2, 4, 4, dtype=torch.float64),
        torch.randn(3, 2, 4, 4, dtype=torch.float64),
    )
    t = torch.tensor([0, 250, 999])
    expect = []
    for i, ti in enumerate(t.tolist()):
        abar = math.prod(1 - b for b in D.betas[: ti + 1].tolist())
        expect.append(math.sqrt(abar) * x0[i] + math.sqrt(1 - abar) * noise[i])
    torch.testing.assert_close(D.q_sample(x0, t, noise), torch.stack(expect))


def test_q_posterior_is_the_bayes_product_of_two_gaussians():
    x0, xt = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    t = torch.tensor([1, 600])
    mean, var, logvar = D.q_posterior(x0, xt, t)
    for i, ti in enumerate(t.tolist()):
        beta, abar_prev = D.betas[ti].item(), D.alphas_cumprod[ti - 1].item()
        # q(x_t | x_{t-1}) = N(sqrt(1-beta) x_{t-1}, beta), q(x_{t-1} | x0) = N(sqrt(abar') x0, 1-abar')
        precision = (1 - beta) / beta + 1 / (1 - abar_prev)
        m = math.sqrt(1 - beta) * xt[i] / beta + math.sqrt(abar_prev) * x0[i] / (1 - abar_prev)
        torch.testing.assert_close(mean[i], m / precision)
        assert math.isclose(var[i].item(), 1 / precision, rel_tol=1e-9)
        assert math.isclose(logvar[i].item(), math.log(1 / precision), rel_tol=1e-9)


def test_learned_range_ends_and_true_noise_gives_zero_kl():
    x0, noise = (
        torch.randn(2, 3, 4, 4, dtype=torch.float64),
        torch.randn(2, 3, 4, 4, dtype=torch.float64),
    )
    t = torch.tensor([5, 700])
    xt = D.q_sample(x0, t, noise)
    lo = D.p_mean_variance(torch.cat([noise, -torch.ones_like(noise)], 1), xt, t)
    hi = D.p_mean_variance(torch.cat([noise, torch.ones_like(noise)], 1), xt, t)
    torch.testing.assert_close(lo["logvar"][:, 0, 0, 0], D.posterior_log_variance_clipped[t])
    torch.testing.assert_close(hi["logvar"][:, 0, 0, 0], D.betas[t].log())
    torch.testing.assert_close(lo["pred_x0"], x0)
    vb = D.vb_terms(torch.cat([noise, -torch.ones_like(noise)], 1), x0, xt, t)
    torch.testing.assert_close(vb, torch.zeros(2, dtype=torch.float64), atol=1e-9, rtol=0)
    assert (D.vb_terms(torch.cat([noise, torch.ones_like(noise)], 1), x0, xt, t) > 0).all()


def test_hybrid_loss_trains_the_mean_only_through_mse():
    out = torch.randn(2, 4, 4, 4, requires_grad=True)
    x0, noise = torch.randn(2, 2, 4, 4), torch.randn(2, 2, 4, 4)
    terms = D.training_losses(lambda x, t: out, x0, torch.tensor([3, 400]), noise)
    terms["vb"].sum().backward()
    assert out.grad[:, :2].abs().sum() == 0 and out.grad[:, 2:].abs().sum() > 0
    torch.testing.assert_close(terms["mse"], ((noise - out[:, :2]) ** 2).mean((1, 2, 3)))


def test_respacing_keeps_abar_and_maps_steps():
    steps = space_timesteps(1000, 250)
    assert len(steps) == 250 and steps[0] == 0 and steps[-1] == 999
    r = D.respace(250)
    torch.testing.assert_close(r.alphas_cumprod, D.alphas_cumprod[steps])
    assert r.timestep_map.tolist() == steps
    torch.testing.assert_close(D.respace(1000).betas, D.betas)


def test_respaced_learned_range_ddpm_step_matches_diffusers():
    keep = list(range(0, 1000, 37))  # 0, 37, ..., 999
    r = D.respace(keep)
    ref = DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        variance_type="learned_range",
        clip_sample=False,
    )
    ref.set_timesteps(timesteps=keep[::-1])
    x, out = torch.randn(2, 3, 4, 4), torch.randn(2, 6, 4, 4).clamp(-1, 1)
    i = 10
    t = torch.full((2,), i)
    p = r.p_mean_variance(out, x, t)
    mine = p["mean"] + torch.exp(0.5 * p["logvar"]) * torch.randn(
        x.shape, generator=torch.Generator().manual_seed(0)
    )
    theirs = ref.step(out, keep[i], x, generator=torch.Generator().manual_seed(0)).prev_sample
    torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-4)


def test_ddim_step_matches_diffusers():
    keep = list(range(0, 1000, 20))
    r = D.respace(keep)
    ref = DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", clip_sample=False, set_alpha_to_one=True
    )
    ref.set_timesteps(50)
    assert ref.timesteps.tolist() == keep[::-1]
    x, eps = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    for i in (0, 30):
        mine = r.ddim_step(eps, x, torch.full((2,), i))
        theirs = ref.step(eps, keep[i], x, eta=0.0).prev_sample
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-4)


def test_guidance_scale_one_equals_the_conditional_model():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(4, 8, 1)
    emb = torch.nn.Embedding(11, 8)

    def model(x, t, y):
        return torch.tanh(net(x) * (1 + t.view(-1, 1, 1, 1) / 1000) + emb(y)[:, :, None, None])

    x, t, y = torch.randn(3, 4, 2, 2), torch.tensor([5, 5, 5]), torch.tensor([1, 2, 3])
    g1 = classifier_free_guidance(model, y, null_label=10, scale=1.0, latent_channels=4)
    torch.testing.assert_close(g1(x, t), model(x, t, y), rtol=1e-6, atol=1e-6)
    g4 = classifier_free_guidance(model, y, null_label=10, scale=4.0, latent_channels=4)
    uncond = model(x, t, torch.full_like(y, 10))
    torch.testing.assert_close(
        g4(x, t)[:, :4], uncond[:, :4] + 4 * (model(x, t, y) - uncond)[:, :4]
    )
    torch.testing.assert_close(g4(x, t)[:, 4:], model(x, t, y)[:, 4:])  # variance: conditional
    quirk = classifier_free_guidance(model, y, 10, 4.0, latent_channels=4, guided_channels=3)
    torch.testing.assert_close(quirk(x, t)[:, 3:], model(x, t, y)[:, 3:])
    # Sampling with scale 1 reproduces conditional sampling.
    r = D.respace(5)
    a = r.p_sample_loop(g1, (3, 4, 2, 2), torch.Generator().manual_seed(1))
    b = r.p_sample_loop(lambda x, t: model(x, t, y), (3, 4, 2, 2), torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
