"""Training throughput (images/s) of an image-autoencoder preset, fp32 vs bf16, in one run.

    PYTHONPATH=src python benchmarks/image_ae_throughput.py configs/cifar10_vqgan.yaml \
        --threads 2 --rounds 3

Times full training steps (autoencoder + discriminator, GAN terms on; `--no-gan`: the
autoencoder's terms alone, as before `disc.start`) of the preset's model and batch size on random
images of the preset's shape (no data set needed). The precisions alternate round by round on the
same model, so a busy machine slows both alike; prints the median images/s of each and the
bf16 / fp32 ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from dae.config import replace
from dae.data.images import LabelledImages
from dae.experiments import load_experiment_config
from dae.schedule import DAESchedule
from dae.train.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=3, help="timed steps per precision")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--no-gan", action="store_true", help="time steps before disc.start")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="train.precision=bf16")
    kind, cfg = load_experiment_config(
        args.preset,
        [
            *args.overrides,
            f"disc.start={10 if args.no_gan else 0}",  # 2 steps: all GAN or none
            "train.progress=false",
            "train.tensorboard=false",
            "log.image_every=0",
            "train.ema_decay=0",
            "train.steps=2",
        ],
    )
    m, batch = cfg.model, cfg.train.batch_size
    n = 4 * batch
    pixels = torch.randint(
        0, 256, (n, m.in_channels, m.resolution, m.resolution), dtype=torch.uint8
    )
    task = kind.task(cfg, LabelledImages(pixels, torch.zeros(n, dtype=torch.long), ["x"]))
    cpu = torch.backends.cpu.get_cpu_capability()
    print(
        f"{args.preset} {' '.join(args.overrides)}  batch={batch}  threads={args.threads}  "
        f"cpu={cpu}  GAN={'off' if args.no_gan else 'on'}"
    )

    def step_seconds(precision: str) -> float:
        """Seconds of the second of two steps (the first builds optimisers, warms kernels)."""
        stamps: list[float] = []
        train = replace(cfg.train, [f"precision={precision}"])
        Trainer(
            task,
            DAESchedule(cfg.schedule, 2),
            train,
            cfg.optim,
            hooks=[lambda trainer, logs: stamps.append(time.perf_counter())],
        ).fit()
        return stamps[1] - stamps[0]

    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(args.rounds):
        for precision in times:
            times[precision].append(step_seconds(precision))
    rates = {p: batch / statistics.median(t) for p, t in times.items()}
    for p, rate in rates.items():
        print(
            f"{p}: {rate:.2f} images/s  (step seconds: {', '.join(f'{t:.2f}' for t in times[p])})"
        )
    print(f"bf16 / fp32: {rates['bf16'] / rates['fp32']:.2f}x")


if __name__ == "__main__":
    main()
