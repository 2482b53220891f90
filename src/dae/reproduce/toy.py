"""Paper Section 6.1 / Table 2 (left): the 8-cluster toy, joint VAE vs DAE, as `dae reproduce toy`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from dae.autoencoder.toy_vae import ToyVAE, ToyVAEConfig
from dae.config import check
from dae.data.sampler import EpochSampler
from dae.data.toy import ToyData, ToyDataConfig, make_toy_data
from dae.metrics.knn import knn_accuracy
from dae.schedule import DAESchedule, ScheduleConfig
from dae.train.optim import OptimConfig
from dae.train.task import StepContext, Task, TrainConfig


@dataclass
class ToyEvalConfig:
    k: int = field(default=1, metadata={"help": "neighbours in the k-NN label classifier"})

    def __post_init__(self) -> None:
        check(self.k >= 1, "k", f"must be >= 1, got {self.k}")


@dataclass
class ToyExperimentConfig:
    kind: Literal["toy_vae"] = "toy_vae"
    data: ToyDataConfig = field(default_factory=ToyDataConfig)
    model: ToyVAEConfig = field(default_factory=ToyVAEConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    # fp32 as in configs/toy_vae.yaml: a 27-MFLOP step is overhead-bound, so `auto`'s bf16 on a
    # bf16 CPU costs time and would make `make demo`'s table depend on the machine.
    train: TrainConfig = field(default_factory=lambda: TrainConfig(precision="fp32"))
    eval: ToyEvalConfig = field(default_factory=ToyEvalConfig)

    def __post_init__(self) -> None:
        check(
            self.model.data_dim == self.data.dim,
            "model.data_dim",
            f"must equal data.dim ({self.data.dim}), got {self.model.data_dim}",
        )


class ToyTask(Task):
    """Mini-batches of the toy training set; the loss is the VAE's negative ELBO."""

    def __init__(self, cfg: ToyExperimentConfig):
        self.cfg = cfg
        # The data set depends on the seed too: each seed is an independent replicate.
        self.data: ToyData = make_toy_data(cfg.data, seed=cfg.train.seed)
        torch.manual_seed(cfg.train.seed)
        self.model = ToyVAE(cfg.model)
        self.sampler = EpochSampler(
            len(self.data.x_train), cfg.train.batch_size, cfg.train.batch_seed
        )

    def batch(self, step: int) -> torch.Tensor:
        return self.data.x_train[self.sampler.indices(step)]

    def loss(self, name: str, batch: torch.Tensor, ctx: StepContext):
        return self.model.loss(batch)


@torch.no_grad()
def toy_accuracies(task: ToyTask) -> dict[str, float]:
    """k-NN label accuracy on held-out points of (a) the latent mean, (b) the reconstruction.

    The classifier's reference set is the training points' representation (latent means or
    reconstructions through the full decoder, in eval mode); queries are the test points'.
    """
    model, data, k = task.model, task.data, task.cfg.eval.k
    model.eval()
    mu_tr, mu_te = model.latent(data.x_train), model.latent(data.x_test)
    rec_tr, rec_te = model.decode(mu_tr), model.decode(mu_te)
    return {
        "latent_acc": knn_accuracy(mu_tr, data.y_train, mu_te, data.y_test, k),
        "recon_acc": knn_accuracy(rec_tr, data.y_train, rec_te, data.y_test, k),
        "data_acc": knn_accuracy(data.x_train, data.y_train, data.x_test, data.y_test, k),
    }


def train_toy(cfg: ToyExperimentConfig) -> ToyTask:
    """Train one toy VAE in memory (no run folder) and return the task holding it."""
    from dae.train.trainer import Trainer

    task = ToyTask(cfg)
    schedule = DAESchedule(cfg.schedule, cfg.train.steps)
    Trainer(task, schedule, cfg.train, cfg.optim).fit()
    return task
