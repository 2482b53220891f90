"""Training-loop defects from the hostile walk-through (issue 17): gradient accumulation, NaN
stops and skips. Each test failed before its fix."""

import pytest

from dae.config import ConfigError, replace
from dae.reproduce.toy import ToyExperimentConfig, ToyTask
from dae.schedule import DAESchedule
from dae.train.trainer import TrainConfig, Trainer

TINY = [
    "data.n_train=64",
    "model.enc_hidden=8",
    "model.dec_hidden=8",
    "train.progress=false",
    "train.tensorboard=false",
    "train.log_every=1",
    "optim.grad_clip=1e9",  # never clips; logs the gradient norm before the step
]


def _encoder_energy_run(grad_accum: int, batch_size: int) -> list[dict]:
    """One step on a deterministic per-sample-mean loss; returns the logged rows."""
    cfg = replace(
        ToyExperimentConfig(),
        [
            *TINY,
            "train.steps=1",
            f"train.batch_size={batch_size}",
            f"train.grad_accum={grad_accum}",
        ],
    )
    task = ToyTask(cfg)

    def loss(name, batch, ctx):
        value = task.model.encoder(batch).pow(2).mean()
        return value, {"energy": value.item()}

    task.loss = loss
    return Trainer(task, DAESchedule(cfg.schedule, 1), cfg.train, cfg.optim).fit()


@pytest.mark.parametrize("grad_accum", [2, 3, 4])
def test_grad_accum_weights_micro_batches_by_size(grad_accum):
    # batch 5 splits unevenly (3+2, 2+2+1, 2+2+1 in only 3 chunks): the accumulated gradient
    # and logged loss must equal one batch's, not a uniform 1/grad_accum average.
    whole = _encoder_energy_run(1, 5)[0]
    split = _encoder_energy_run(grad_accum, 5)[0]
    assert split["energy"] == pytest.approx(whole["energy"], rel=1e-5)
    assert split["grad_norm/ae"] == pytest.approx(whole["grad_norm/ae"], rel=1e-5)


def test_grad_accum_larger_than_batch_is_refused():
    with pytest.raises(ConfigError, match="grad_accum: must be <= batch_size"):
        TrainConfig(batch_size=4, grad_accum=8)
