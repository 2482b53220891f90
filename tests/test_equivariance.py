"""`loss.equivariance_weight` (EQ-VAE): the term's known values, and that it is added exactly in
the stages that train the encoder (not in DAE stage 2), for VQGAN and KL."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dae.losses.equivariance import equivariance_loss
from dae.schedule import DAESchedule
from dae.train.image_task import KLTask, VQGANTask
from dae.train.trainer import Trainer
from image_utils import synthetic_images, tiny_config


def test_equivariance_loss_is_zero_for_an_equivariant_decoder_only():
    x = torch.randn(2, 3, 8, 8)
    w = torch.randn(3, 3, 1, 1)
    assert equivariance_loss(lambda z: z, x, x) == 0
    # a pointwise decoder D = w commutes with both t: the loss is the reconstruction error
    # D(z) - x, transformed: mean of |pool(Dx - x)| (x0.5) and |Dx - x| (rotation)
    pointwise = equivariance_loss(lambda z: F.conv2d(z, w), x, x)
    error = F.conv2d(x, w) - x
    expected = (F.avg_pool2d(error, 2).abs().mean() + error.abs().mean()) / 2
    torch.testing.assert_close(pointwise, expected)

    def positional(z):  # knows where the top is: rotating its input does not rotate its output
        return z + torch.linspace(0, 1, z.shape[-2])[:, None]

    assert equivariance_loss(positional, x, x) > 0.05


@pytest.mark.parametrize(("kind", "task_cls"), [("vqgan", VQGANTask), ("kl", KLTask)])
def test_equivariance_weight_adds_the_term_only_while_the_encoder_trains(kind, task_cls):
    def fit(weight: float):
        cfg = tiny_config(kind, schedule={"mode": "dae"}, loss={"equivariance_weight": weight})
        task = task_cls(cfg, synthetic_images(16))
        rows = Trainer(task, DAESchedule(cfg.schedule, 4), cfg.train, cfg.optim).fit()
        return task, [r for r in rows if "loss" in r]

    plain, plain_rows = fit(0.0)
    eq, eq_rows = fit(0.5)
    assert not any("equivariance" in r for r in plain_rows)  # weight 0: no term at all
    # stage 1 (steps 1-2) trains the encoder and has the term; stage 2 freezes it and has none
    assert [("equivariance" in r) for r in eq_rows] == [True, True, False, False]
    # the first step starts from the same weights and batch: the loss differs by exactly w * term
    first, first_eq = plain_rows[0], eq_rows[0]
    assert first_eq["equivariance"] > 0
    assert first_eq["loss"] == pytest.approx(first["loss"] + 0.5 * first_eq["equivariance"])
    # ...and the term changes what the encoder learns
    encoder, encoder_eq = plain.model.encoder.state_dict(), eq.model.encoder.state_dict()
    assert any(not torch.equal(encoder[k], encoder_eq[k]) for k in encoder)
