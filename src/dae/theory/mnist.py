"""MNIST for `dae complexity`: flattened digits in [0, 1] and the toy's MLP VAE trained on them."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dae.autoencoder.toy_vae import ToyVAE, ToyVAEConfig
from dae.config import check, replace
from dae.data.images import load_images
from dae.data.sampler import EpochSampler
from dae.schedule import DAESchedule, ScheduleConfig
from dae.train.optim import OptimConfig
from dae.train.task import StepContext, Task, TrainConfig
from dae.train.trainer import Trainer


def load_mnist_flat(split: str, root: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`(N, 784)` floats in [0, 1] and `(N,)` labels, through the shared loader (`dae.data`)."""
    data = load_images("mnist", "train" if split == "train" else "test", root=root)
    return data.images.flatten(1).float() / 255.0, data.labels


@dataclass
class MnistVAEConfig:
    root: str | None = field(default=None, metadata={"help": "data root holding mnist/"})
    latent_dim: int = field(default=4, metadata={"help": "latent dimension"})
    hidden: int = field(default=256, metadata={"help": "encoder/decoder hidden width"})
    recon_std: float = field(default=0.2, metadata={"help": "pixel std of p(x|z)"})
    n_train: int = field(default=20000, metadata={"help": "training digits for the VAE"})
    steps: int = field(default=3000, metadata={"help": "VAE training steps (both stages)"})
    batch_size: int = field(default=128, metadata={"help": "VAE batch size"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def __post_init__(self) -> None:
        for key in ("latent_dim", "hidden", "n_train", "steps", "batch_size"):
            check(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        check(self.recon_std > 0, "recon_std", f"must be > 0, got {self.recon_std}")


class MnistVAETask(Task):
    """Mini-batches of flattened digits; the loss is the MLP VAE's negative ELBO."""

    def __init__(self, cfg: MnistVAEConfig, x: torch.Tensor, seed: int):
        self.x = x
        torch.manual_seed(seed)
        self.model = ToyVAE(
            ToyVAEConfig(
                data_dim=x.shape[1],
                latent_dim=cfg.latent_dim,
                enc_hidden=cfg.hidden,
                dec_hidden=cfg.hidden,
                recon_std=cfg.recon_std,
            )
        )
        self.sampler = EpochSampler(len(x), cfg.batch_size, seed)

    def batch(self, step: int) -> torch.Tensor:
        return self.x[self.sampler.indices(step)]

    def loss(self, name: str, batch: torch.Tensor, ctx: StepContext):
        return self.model.loss(batch)


def train_mnist_vae(cfg: MnistVAEConfig, x: torch.Tensor, mode: str, seed: int) -> ToyVAE:
    """Train the MLP VAE on `x` with the `baseline` or `dae` schedule; returns it in eval mode."""
    schedule_cfg = replace(cfg.schedule, [f"mode={mode}"])
    task = MnistVAETask(cfg, x, seed)
    train = TrainConfig(
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        seed=seed,
        progress=False,
        tensorboard=False,
        ckpt_every=0,
    )
    Trainer(task, DAESchedule(schedule_cfg, cfg.steps), train, OptimConfig(lr=cfg.lr)).fit()
    task.model.use_aux_decoder = False
    return task.model.eval()
