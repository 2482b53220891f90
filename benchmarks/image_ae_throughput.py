"""Training throughput (images/s) of an image-autoencoder preset, fp32 vs bf16, in one run.

    PYTHONPATH=src python benchmarks/image_ae_throughput.py configs/cifar10_vqgan.yaml \
        --threads 2 --steps 8 --warmup 2

Times full training steps (autoencoder + discriminator, GAN terms on) of the preset's model and
batch size on random images of the preset's shape, so no data set is needed; prints each
precision's images/s and the bf16 / fp32 ratio.
"""

from __future__ import annotations

import argparse
import time

import torch

from dae.data.images import LabelledImages
from dae.experiments import load_experiment_config
from dae.schedule import DAESchedule
from dae.train.trainer import Trainer


def images_per_second(preset: str, precision: str, steps: int, warmup: int, overrides: list[str]) -> float:
    """Mean images/s over `steps` timed steps after `warmup` untimed ones."""
    total = steps + warmup
    kind, cfg = load_experiment_config(
        preset,
        [*overrides, f"train.precision={precision}", f"train.steps={total}", "disc.start=0",
         "train.progress=false", "train.tensorboard=false", "log.image_every=0", "train.ema_decay=0"],
    )
    m = cfg.model
    n = max(4 * cfg.train.batch_size, 256)
    pixels = torch.randint(0, 256, (n, m.in_channels, m.resolution, m.resolution), dtype=torch.uint8)
    task = kind.build_task(cfg, LabelledImages(pixels, torch.zeros(n, dtype=torch.long), ["x"]))
    stamps: list[float] = []
    trainer = Trainer(
        task, DAESchedule(cfg.schedule, total), cfg.train, cfg.optim,
        hooks=[lambda trainer, logs: stamps.append(time.perf_counter())],
    )
    trainer.fit()
    seconds = stamps[-1] - stamps[warmup - 1]
    return steps * cfg.train.batch_size / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.preset}  threads={args.threads}  cpu={torch.backends.cpu.get_cpu_capability()}")
    rates = {}
    for precision in ("fp32", "bf16"):
        rates[precision] = images_per_second(args.preset, precision, args.steps, args.warmup, args.overrides)
        print(f"{precision}: {rates[precision]:.1f} images/s")
    print(f"bf16 / fp32: {rates['bf16'] / rates['fp32']:.2f}x")


if __name__ == "__main__":
    main()
