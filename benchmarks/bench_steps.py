"""What `bench.py` times: each preset family's real training step, its sampler, the evaluators.

Every model comes from the project's own builders and presets, and every step is the one training
runs: `Trainer._train_step` (loss, backward, each optimiser, EMA) of an autoencoder or a prior
task, on random data of the preset's shape.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from dae.config import replace
from dae.data.images import LabelledImages
from dae.experiments import load_experiment_config
from dae.priors.cache import LatentCache
from dae.priors.task import PriorTask
from dae.schedule import DAESchedule
from dae.train.logger import MetricsLogger
from dae.train.precision import resolve_precision
from dae.train.trainer import Trainer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Long enough that no timed step reaches a stage switch or a log row; nothing is checkpointed.
TRAIN_OVERRIDES = [
    "train.steps=100000",
    "train.log_every=100000",
    "train.progress=false",
    "train.tensorboard=false",
]


@dataclass
class StepBench:
    """One family's training step, ready to time."""

    step: Callable[[], None]
    batch_size: int
    nets: list[nn.Module]  # what channels_last and torch.compile apply to
    images: bool  # 4-D activations: channels_last means something
    prior: nn.Module | None = None  # for the sampling benchmark
    prior_cfg: object = None


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock time is the work's time."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], n: int, device: torch.device) -> list[float]:
    """Seconds of each of `n` calls of `fn`."""
    times = []
    for _ in range(n):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def _trainer_step(task, cfg, schedule="dae") -> Callable[[], None]:
    """The trainer's own step, with a logger and progress bar that write nothing."""
    plan = DAESchedule(cfg.schedule, cfg.train.steps) if schedule == "dae" else None
    trainer = Trainer(task, plan, cfg.train, cfg.optim)
    logger, bar = MetricsLogger(None, 0, tensorboard=False), tqdm(disable=True)
    return lambda: trainer._train_step(logger, bar)


def toy_bench(precision: str, device: torch.device) -> StepBench:
    """The toy VAE (configs/toy_vae.yaml) on its own synthetic clusters."""
    kind, cfg = load_experiment_config(
        CONFIGS / "toy_vae.yaml",
        [*TRAIN_OVERRIDES, f"train.precision={precision}", f"train.device={device}"],
    )
    task = kind.task(cfg)
    task.model.to(device)
    task.data.x_train = task.data.x_train.to(device)
    return StepBench(_trainer_step(task, cfg), cfg.train.batch_size, [task.model], images=False)


def image_bench(preset: str, precision: str, device: torch.device) -> StepBench:
    """VQGAN / KL-AE with GAN terms on (`disc.start=0`: most of a run's steps) on random images."""
    kind, cfg = load_experiment_config(
        CONFIGS / preset,
        [
            *TRAIN_OVERRIDES,
            "disc.start=0",
            "log.image_every=0",
            f"train.precision={precision}",
            f"train.device={device}",
        ],
    )
    m, b = cfg.model, cfg.train.batch_size
    pixels = torch.randint(
        0, 256, (2 * b, m.in_channels, m.resolution, m.resolution), dtype=torch.uint8
    )
    task = kind.task(cfg, LabelledImages(pixels, torch.zeros(2 * b, dtype=torch.long), ["x"]))
    nets = list(task.modules().values())
    return StepBench(_trainer_step(task, cfg), b, nets, images=True)


def _random_cache(prior_kind: str, ae_preset: str, n: int) -> LatentCache:
    """Random latents of the shape the paired autoencoder preset produces: codes or KL latents."""
    ae = load_experiment_config(CONFIGS / ae_preset)[1].model
    side = ae.resolution // 2 ** (len(ae.ch_mult) - 1)  # one 2x downsampling per extra level
    labels = torch.randint(10, (n,))
    meta = {"classes": [str(i) for i in range(10)]}
    if prior_kind == "prior_gpt":
        codes = torch.randint(ae.n_embed, (n, side, side), dtype=torch.int32)
        meta.update(kind="vq", latent_shape=[side, side], codebook_size=ae.n_embed)
        return LatentCache({"codes": codes, "labels": labels}, meta)
    shape = (n, ae.z_channels, side, side)
    meta.update(kind="kl", latent_shape=list(shape[1:]), scaling_factor=1.0)
    tensors = {"mean": torch.randn(shape), "logvar": torch.full(shape, -2.0), "labels": labels}
    return LatentCache(tensors, meta)


def prior_bench(preset: str, ae_preset: str, precision: str, device: torch.device) -> StepBench:
    """A prior preset's model and step on random latents/codes from `_random_cache`."""
    kind, cfg = load_experiment_config(
        CONFIGS / preset,
        [*TRAIN_OVERRIDES, f"train.precision={precision}", f"train.device={device}"],
    )
    cache = _random_cache(cfg.kind, ae_preset, 2 * cfg.train.batch_size)
    prior = kind.model(cfg, cache.meta)
    step = _trainer_step(PriorTask(cfg, cache, prior), cfg, schedule=None)
    net = prior.gpt if cfg.kind == "prior_gpt" else prior.dit
    return StepBench(step, cfg.train.batch_size, [net], cfg.kind == "prior_dit", prior, cfg)


TRAIN_FAMILIES: dict[str, Callable[[str, torch.device], StepBench]] = {
    "toy": toy_bench,
    "vqgan": lambda p, d: image_bench("cifar10_vqgan.yaml", p, d),
    "kl": lambda p, d: image_bench("cifar10_kl.yaml", p, d),
    "dit": lambda p, d: prior_bench("prior_dit_cifar10.yaml", "cifar10_kl.yaml", p, d),
    "gpt": lambda p, d: prior_bench("prior_gpt_cifar10.yaml", "cifar10_vqgan.yaml", p, d),
}


def build(family: str, precision: str, device: torch.device) -> StepBench:
    """The family's `StepBench`, seeded, with the bf16-on-CPU warning silenced (we measure it)."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="train.precision=bf16")
        return TRAIN_FAMILIES[family](precision, device)


def autocast_to(precision: str, device: torch.device):
    """Autocast to bf16 for "bf16", nothing for "fp32": how the timed call runs (as training)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="train.precision=bf16")  # measured, as in build
        return resolve_precision(precision, device).autocast()


def counted_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of `fn` (matmuls, convolutions, attention), by `FlopCounterMode`."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def sampling_rows(
    bench: StepBench, device: torch.device, precision: str = "fp32", batch: int = 2
) -> list[dict]:
    """DiT: ancestral sampling with 250 and 50 respaced steps; GPT: with and without KV cache.

    FLOPs: GPT's are counted on the warm-up call; DiT's on a 2-step call and scaled by steps/2
    (every step is one forward of the same size), so no 250-step run happens under the counter.
    """
    prior, cfg = bench.prior, bench.prior_cfg
    prior.eval()
    labels = torch.zeros(batch, dtype=torch.long)
    dit = cfg.kind == "prior_dit"
    if dit:
        settings = {f"ddpm {s} steps": (s, [f"sample.steps={s}"]) for s in (250, 50)}
    else:
        settings = {
            f"kv_cache={kv}": (1, [f"sample.kv_cache={str(kv).lower()}"]) for kv in (True, False)
        }
    rows = []
    for name, (steps, overrides) in settings.items():
        # Warm-up (first calls allocate and pick kernels: several times slower); DiT: 2 steps.
        prior.cfg = replace(cfg, overrides + (["sample.steps=2"] if dit else []))
        with autocast_to(precision, device):
            flops = counted_flops(
                lambda: prior.sample(labels, torch.Generator().manual_seed(0), device)
            )
            flops = flops * steps // 2 if dit else flops
            prior.cfg = replace(cfg, overrides)
            gen = torch.Generator().manual_seed(0)
            (seconds,) = time_calls(lambda g=gen: prior.sample(labels, g, device), 1, device)
        rows.append(
            {
                "family": cfg.kind.removeprefix("prior_"),
                "sampler": name,
                "precision": precision,
                "batch": batch,
                "seconds": seconds,
                "images_per_s": batch / seconds,
                "flops": flops,
            }
        )
    prior.cfg = cfg
    return rows


def eval_rows(device: torch.device, n: int, steps: int) -> list[dict]:
    """Features/s of the `classifier:cifar10` and `pixels` extractors on random uint8 images, in
    fp32 and bf16 autocast, and one k-NN query (`knn_predict`, fp64 distances as in evaluation).

    An untrained classifier is timed if none is cached: its cost does not depend on its weights.
    """
    from dae.metrics.classifier import PRESETS, build_classifier, classifier_path, load_classifier
    from dae.metrics.features import FeatureExtractor, _names, build_features
    from dae.metrics.knn import knn_predict

    path = classifier_path(PRESETS["cifar10"])
    net = load_classifier(path)[0] if path.is_file() else build_classifier(PRESETS["cifar10"])
    extractors = {
        "classifier:cifar10": FeatureExtractor(
            "classifier:cifar10", net.to(device).eval(), "bench", _names("classifier", False), 3, 32
        ),
        "pixels": build_features("pixels"),
    }
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, device=device)
    rows = []
    for precision in ("fp32", "bf16"):
        for name, ext in extractors.items():
            with autocast_to(precision, device):
                ext.extract(images[:8])  # warm-up
                flops = counted_flops(lambda e=ext: e.extract(images))
                times = time_calls(lambda e=ext: e.extract(images), steps, device)
            seconds = statistics.median(times)
            weights = "trained" if path.is_file() else "untrained"
            rows.append(
                {
                    "extractor": name,
                    "precision": precision,
                    "images": n,
                    "seconds": seconds,
                    "images_per_s": n / seconds,
                    "flops": flops,
                    "flops_per_image": flops / n,
                    "weights": "-" if ext.net is None else weights,
                }
            )
    # k-NN as in `dae evaluate`: n queries against 4n references of 256-d features.
    gen = torch.Generator().manual_seed(0)
    ref, query = torch.randn(4 * n, 256, generator=gen), torch.randn(n, 256, generator=gen)
    ref_labels = torch.randint(10, (4 * n,), generator=gen)
    knn_predict(ref[:64], ref_labels[:64], query[:8])  # warm-up
    # `cdist` is invisible to FlopCounterMode: count its inner product query @ ref.T by hand
    flops = 2 * len(query) * len(ref) * ref.shape[1]
    seconds = statistics.median(
        time_calls(lambda: knn_predict(ref, ref_labels, query), steps, device)
    )
    rows.append(
        {
            "extractor": f"k-NN, {n} x {4 * n} x 256",
            "precision": "fp64",
            "images": n,
            "seconds": seconds,
            "images_per_s": n / seconds,
            "flops": flops,
            "flops_per_image": flops / n,
            "weights": "-",
        }
    )
    return rows
