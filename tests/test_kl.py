"""KL autoencoder: posterior, the learned-variance objective, the measured scaling factor."""

from __future__ import annotations

import math

import pytest
import torch

from dae.autoencoder.kl import KLAutoencoder, KLAutoencoderConfig
from dae.config import ConfigError
from dae.losses.kl import KLLossConfig, KLObjective
from dae.schedule import DAESchedule
from dae.train.image_task import KLTask
from dae.train.trainer import Trainer
from image_utils import TINY_MODEL, synthetic_images, tiny_config

torch.set_num_threads(1)


def test_posterior_shapes_and_kl():
    torch.manual_seed(0)
    model = KLAutoencoder(KLAutoencoderConfig(**TINY_MODEL))
    x = torch.randn(2, 3, 16, 16)
    posterior = model.encode(x)
    assert posterior.mean.shape == (2, 4, 8, 8)
    out = model(x, sample_posterior=False)
    torch.testing.assert_close(out.sample, model.decode(posterior.mean))
    expected = 0.5 * (posterior.mean**2 + posterior.var - 1 - posterior.logvar).sum((1, 2, 3))
    torch.testing.assert_close(out.kl, expected)


def test_objective_known_values():
    rec = torch.full((2, 3, 4, 4), 0.5)  # per-pixel L1
    kl = torch.tensor([10.0, 30.0])
    obj = KLObjective(KLLossConfig(kl_weight=0.1, logvar_init=math.log(2.0)))
    terms = obj(rec, kl)
    pixels = 3 * 4 * 4
    # sum over pixels of rec / exp(logvar) + logvar, averaged over the batch
    assert terms.nll.item() == pytest.approx(pixels * (0.5 / 2.0 + math.log(2.0)))
    assert terms.kl.item() == pytest.approx(20.0)
    assert terms.total.item() == pytest.approx(terms.nll.item() + 0.1 * 20.0)
    terms.total.backward()
    # d nll / d logvar = sum(1 - rec * exp(-logvar)) / B
    assert obj.logvar.grad.item() == pytest.approx(pixels * (1 - 0.5 / 2.0))


def test_scaling_factor_is_measured_after_training_and_stored_in_the_config():
    cfg = tiny_config("kl", train={"steps": 2})
    assert cfg.model.scaling_factor is None
    task = KLTask(cfg, synthetic_images(16))
    Trainer(task, DAESchedule(cfg.schedule, cfg.train.steps), cfg.train, cfg.optim).fit()
    task.finish()
    factor = cfg.model.scaling_factor
    torch.manual_seed(0)
    x = torch.cat([task.batch(0), task.batch(1), task.batch(2), task.batch(3)])  # all 16 images
    task.model.eval()
    std = torch.cat([task.model.encode(x).sample() for _ in range(20)]).std()
    assert factor == pytest.approx(1.0 / std.item(), rel=0.05)
    assert task.model.diffusers_config()["scaling_factor"] == factor
    with pytest.raises(ConfigError, match="scaling_factor"):
        KLAutoencoderConfig(**TINY_MODEL, scaling_factor=-1.0)
