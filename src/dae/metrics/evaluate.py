"""`dae evaluate RUN`: every metric that applies to a trained run, written to `RUN/eval.json`.

A run folder holds `config.yaml` (with `kind:`), `model.safetensors` (or `checkpoints/last.pt`).
The model is rebuilt from its experiment kind, its weights loaded, and measured on the held-out
split of its own data: reconstructions (PSNR/SSIM, reconstruction FD family against the real test
set), k-NN label accuracy of latents and reconstructions, encoder/decoder Lipschitz complexity and,
for VQ models, the codebook. Metrics that do not apply (e.g. SSIM for vector data) are skipped
with a note in `eval.json["skipped"]`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dae.config import ConfigError
from dae.metrics.codebook import codebook_report
from dae.metrics.knn import knn_accuracy
from dae.metrics.lipschitz import encoder_decoder_lipschitz
from dae.metrics.reconstruction import is_vq, latent_of, psnr, reconstruct, ssim
from dae.train.checkpoint import atomic_write, last_checkpoint

METRIC_GROUPS = ("recon", "fd", "knn", "lipschitz", "codebook")


@dataclass
class EvalOptions:
    metrics: list[str] = field(default_factory=lambda: list(METRIC_GROUPS))
    features: str | None = None  # default: classifier:<dataset> for MNIST/CIFAR-10, else pixels
    n: int = 10000  # held-out examples measured
    knn_train: int = 10000  # reference examples of the k-NN classifier
    lipschitz_n: int = 256
    batch_size: int = 250
    train_features: bool = True  # train the classifier feature net if it is not cached
    samples: str | None = None  # .npz of generated uint8 images to measure against the train split


@dataclass
class EvalData:
    """Held-out inputs (uint8 images or float vectors), their labels, and k-NN reference data."""

    kind: str  # "image" | "vector"
    dataset: str
    test_x: torch.Tensor
    test_y: torch.Tensor
    train_x: torch.Tensor
    train_y: torch.Tensor
    root: str | None = None  # data root of image sets (None: DAE_DATA / default)

    def as_input(self, x: torch.Tensor) -> torch.Tensor:
        from dae.data.transforms import to_float

        return to_float(x) if x.dtype == torch.uint8 else x


def load_run(run_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
    """(config, task, which weights) of a run, the weights loaded into `task.model` (eval mode).

    Which weights: `{"weights": "final", "step": N}` from `model.safetensors` (the trained model,
    not its EMA), or `"checkpoint"` with the step and stage of an unfinished run's `last.pt`.
    """
    from dae.experiments import load_experiment_config
    from dae.schedule import DAESchedule
    from dae.train.checkpoint import load_checkpoint, load_state
    from dae.train.export import load_weights

    kind, cfg = load_experiment_config(run_dir / "config.yaml")
    task = kind.build_task(cfg)
    DAESchedule(cfg.schedule, cfg.train.steps).prepare(
        task.model
    )  # aux decoder, if the run had one
    weights = run_dir / "model.safetensors"
    if weights.is_file():
        state, _ = load_weights(weights)
        which = {"weights": "final", "file": weights.name, "step": cfg.train.steps}
    else:
        payload = load_checkpoint(last_checkpoint(run_dir))
        state = payload["modules"]["model"]
        which = {"weights": "checkpoint", "file": "checkpoints/last.pt", "step": payload["step"]}
        which["stage"] = payload.get("stage")
    load_state(task.model, state, f"model of {run_dir}")
    task.model.eval()
    task.model.use_aux_decoder = False  # measure the final (full) decoder
    return cfg, task, which


def eval_data(cfg: Any, task: Any, opts: EvalOptions) -> EvalData:
    """The data a run was trained on: its test split and a seeded subset of its train split."""
    from dae.data.images import ImageDataConfig, load_images

    gen = torch.Generator().manual_seed(0)
    data_cfg = getattr(cfg, "data", None)
    if isinstance(data_cfg, ImageDataConfig):
        test = load_images(data_cfg.name, "test", data_cfg.root, data_cfg.image_size)
        train = getattr(task, "data", None)
        if train is None or not hasattr(train, "images"):
            train = load_images(data_cfg.name, "train", data_cfg.root, data_cfg.image_size)
        idx = torch.randperm(len(train.images), generator=gen)[: opts.knn_train]
        # A seeded random subset, not the first n: folder layouts are sorted by class.
        t_idx = torch.randperm(len(test.images), generator=gen)[: opts.n].sort().values
        return EvalData(
            "image",
            data_cfg.name,
            test.images[t_idx],
            test.labels[t_idx],
            train.images[idx],
            train.labels[idx],
            data_cfg.root,
        )
    d = task.data  # vector data with x_train / x_test (the toy)
    idx = torch.randperm(len(d.x_train), generator=gen)[: opts.knn_train]
    t_idx = torch.randperm(len(d.x_test), generator=gen)[: opts.n].sort().values
    return EvalData(
        "vector", "toy", d.x_test[t_idx], d.y_test[t_idx], d.x_train[idx], d.y_train[idx]
    )


def _flat_latents(model, x: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat(
        [latent_of(model, x[i : i + batch]).flatten(1) for i in range(0, len(x), batch)]
    )


@torch.no_grad()
def evaluate_run(run_dir: str | Path, opts: EvalOptions | None = None, log=print) -> dict[str, Any]:
    """Measure a run and write `RUN/eval.json` (and `RUN/eval_recon.png` for images)."""
    opts = opts or EvalOptions()
    unknown = set(opts.metrics) - set(METRIC_GROUPS)
    if unknown:
        raise KeyError(f"unknown metrics {sorted(unknown)}; known: {list(METRIC_GROUPS)}")
    run_dir = Path(run_dir)
    cfg, task, which = load_run(run_dir)
    if which["weights"] != "final":
        log(f"{run_dir} is unfinished: measuring {which['file']} at step {which['step']}")
    model, data = task.model, eval_data(cfg, task, opts)
    torch.manual_seed(0)
    result: dict[str, Any] = {
        "run": str(run_dir),
        **which,
        "data": data.dataset,
        "n": len(data.test_x),
        "metrics": {},
        "skipped": {},
        "seconds": {},
    }
    result = _merge_with_earlier(run_dir, result, log)
    metrics, skipped, seconds = result["metrics"], result["skipped"], result["seconds"]
    t0 = time.time()
    x_test = data.as_input(data.test_x)
    recon = reconstruct(model, x_test, opts.batch_size)
    seconds["reconstruct"] = round(time.time() - t0, 2)
    metrics["mse"] = float(((recon - x_test) ** 2).mean())

    if "recon" in opts.metrics:
        if data.kind == "image":
            metrics["psnr"], metrics["ssim"] = psnr(recon, x_test), ssim(recon, x_test)
            pick = torch.linspace(0, len(recon) - 1, 8).long()  # spread over the (class-sorted) set
            _save_grid(run_dir / "eval_recon.png", data.test_x[pick], recon[pick])
        else:
            skipped["psnr/ssim"] = "not image data"

    ext = None
    if "fd" in opts.metrics:
        t0 = time.time()
        ext = _fd_metrics(data, recon, opts, metrics, log)
        result.update({"features": ext.spec, "feature_info": ext.info})
        seconds["fd"] = round(time.time() - t0, 2)

    if "knn" in opts.metrics:
        t0 = time.time()
        x_train = data.as_input(data.train_x)
        lat_tr, lat_te = (
            _flat_latents(model, x_train, opts.batch_size),
            _flat_latents(model, x_test, opts.batch_size),
        )
        metrics["knn_latent_acc"] = knn_accuracy(lat_tr, data.train_y, lat_te, data.test_y)
        rec_tr = reconstruct(model, x_train, opts.batch_size).flatten(1)
        metrics["knn_recon_acc"] = knn_accuracy(rec_tr, data.train_y, recon.flatten(1), data.test_y)
        metrics["knn_data_acc"] = knn_accuracy(
            x_train.flatten(1), data.train_y, x_test.flatten(1), data.test_y
        )
        seconds["knn"] = round(time.time() - t0, 2)

    if "lipschitz" in opts.metrics:
        # Perceptual variant for images: distances between the feature network's pool vectors.
        phi = (lambda v: ext(v)["pool"]) if ext is not None and data.kind == "image" else None
        metrics.update(encoder_decoder_lipschitz(model, x_test[: opts.lipschitz_n], phi=phi))

    if "codebook" in opts.metrics:
        if is_vq(model):
            idx = torch.cat(
                [
                    model.encode_to_indices(x_test[i : i + opts.batch_size])
                    for i in range(0, len(x_test), opts.batch_size)
                ]
            )
            result["codebook"] = codebook_report(model.quantize.embedding.weight.detach(), idx)
            metrics["codebook_perplexity"] = result["codebook"]["usage"]["perplexity"]
            metrics["codebook_dead"] = result["codebook"]["usage"]["dead_codes"]
        else:
            skipped["codebook"] = f"{type(model).__name__} has no codebook"
    if opts.samples:
        t0 = time.time()
        if data.kind != "image":
            raise ConfigError("samples", "generated samples can only be measured for image runs")
        values, info = sample_metrics(
            load_samples(opts.samples),
            data.dataset,
            opts.features,
            data.root,
            train_features=opts.train_features,
        )
        metrics.update({f"sample_{k}": v for k, v in values.items()})
        result["samples"] = {"path": str(opts.samples), **info}
        seconds["samples"] = round(time.time() - t0, 2)
    text = json.dumps(result, indent=1)
    atomic_write(run_dir / "eval.json", lambda tmp: tmp.write_text(text))
    return result


def _merge_with_earlier(run_dir: Path, result: dict[str, Any], log) -> dict[str, Any]:
    """Start from the earlier `eval.json` of the same weights, so that measuring one group
    (`--metrics recon`) keeps the others; an evaluation of other weights is replaced whole."""
    earlier = read_eval(run_dir)
    same = earlier and all(
        earlier.get(k) == result[k] for k in ("weights", "step", "data", "n") if k in result
    )
    if not same:
        if earlier:
            log(f"{run_dir / 'eval.json'}: measured other weights or data; starting it afresh")
        return result
    for key in ("metrics", "skipped", "seconds"):
        result[key] = {**earlier.get(key, {}), **result[key]}
    return {**earlier, **result}


def _fd_metrics(data: EvalData, recon: torch.Tensor, opts: EvalOptions, metrics: dict, log):
    """Reconstruction-FD family: features of reconstructions vs the (cached) real test features."""
    from dae.data.transforms import to_uint8
    from dae.metrics.features import build_features, default_features, reference_features
    from dae.metrics.fid import distribution_metrics

    spec = opts.features or default_features(data.dataset)
    ext = build_features(spec, root=data.root, train_if_missing=opts.train_features)
    real = reference_features(ext, data.test_x, f"{data.dataset}-test")
    fake = ext.extract(to_uint8(recon) if data.kind == "image" else recon, opts.batch_size)
    for key, value in distribution_metrics(real, fake, ext.names, kid_subsets=20).items():
        metrics[f"recon_{key}"] = value
    log(f"features {ext.spec}: {ext.info}")
    return ext


def sample_metrics(
    samples: torch.Tensor,
    dataset: str,
    features: str | None = None,
    root=None,
    split: str = "train",
    train_features: bool = True,
) -> tuple[dict[str, float], dict]:
    """Generation metrics of uint8 samples `(N, C, H, W)` against a dataset split (FID-style:
    the reference is the training split by default, its features cached)."""
    from dae.data.images import load_images
    from dae.metrics.features import build_features, default_features, reference_features
    from dae.metrics.fid import distribution_metrics

    ref = load_images(dataset, split, root)
    ext = build_features(
        features or default_features(dataset), root=root, train_if_missing=train_features
    )
    real = reference_features(ext, ref.images, f"{dataset}-{split}")
    fake = ext.extract(samples)
    return distribution_metrics(real, fake, ext.names), {
        "features": ext.spec,
        "feature_info": ext.info,
    }


def load_samples(path: str | Path) -> torch.Tensor:
    """uint8 `(N, C, H, W)` samples from an `.npz`/`.npy` (key `images` or the first array)."""
    import numpy as np

    loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.ndarray):
        arr = loaded
    else:
        with loaded:
            arr = loaded["images"] if "images" in loaded.files else loaded[loaded.files[0]]
    if arr.dtype != np.uint8 or arr.ndim != 4:
        raise ConfigError(
            "samples", f"{path}: expected uint8 (N, C, H, W) images, got {arr.dtype} {arr.shape}"
        )
    if arr.shape[1] not in (1, 3):
        hint = (
            "; it looks channel-last (N, H, W, C): save arr.transpose(0, 3, 1, 2)"
            if arr.shape[-1] in (1, 3)
            else ""
        )
        raise ConfigError(
            "samples", f"{path}: expected (N, C, H, W) with 1 or 3 channels, got {arr.shape}{hint}"
        )
    if len(arr) < 2:
        raise ConfigError("samples", f"{path}: {len(arr)} image(s); distribution metrics need >= 2")
    return torch.from_numpy(arr)


def _save_grid(path: Path, real: torch.Tensor, recon: torch.Tensor) -> None:
    """Top row: real test images; bottom row: their reconstructions."""
    from PIL import Image

    from dae.data.transforms import to_uint8

    rows = torch.cat([real, to_uint8(recon)])  # (2n, C, H, W)
    n, (c, h, w) = len(real), rows.shape[1:]
    grid = rows.view(2, n, c, h, w).permute(0, 3, 1, 4, 2).reshape(2 * h, n * w, c).numpy()
    img = Image.fromarray(grid[..., 0] if c == 1 else grid).resize(
        (n * w * 2, 2 * h * 2), Image.NEAREST
    )
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


def read_eval(run_dir: str | Path) -> dict[str, Any] | None:
    """A run's `eval.json`, or None if it has not been evaluated."""
    path = Path(run_dir) / "eval.json"
    return json.loads(path.read_text()) if path.is_file() else None


__all__ = ["EvalOptions", "evaluate_run", "load_run", "read_eval"]
