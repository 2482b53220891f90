"""`dae evaluate RUN`: every metric that applies to a trained run, written to `RUN/eval.json`.

A run folder holds `config.yaml` (with `kind:`), `model.safetensors` (or `checkpoints/last.pt`).
The model is rebuilt from its experiment kind, its weights loaded, and measured on the held-out
split of its own data: reconstructions (PSNR/SSIM, reconstruction FD family against the real test
set), k-NN label accuracy of latents and reconstructions, encoder/decoder Lipschitz complexity,
for VQ models the codebook, and the latent diagnostics of `dae.metrics.diagnostics`. Metrics that
do not apply (e.g. SSIM for vector data) are skipped with a note in `eval.json["skipped"]`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dae.data.images import ImageDataConfig, load_images, load_in_memory
from dae.data.toy import ToyDataConfig, make_toy_data
from dae.data.transforms import save_grid, to_float, to_uint8
from dae.errors import ConfigError, DataFormatError, MissingFileError, UnknownNameError
from dae.metrics import METRIC_GROUPS
from dae.metrics.codebook import codebook_report
from dae.metrics.diagnostics import latent_diagnostics
from dae.metrics.features import build_features, default_features, reference_features
from dae.metrics.fid import distribution_metrics
from dae.metrics.knn import knn_accuracy
from dae.metrics.lipschitz import encoder_decoder_lipschitz
from dae.metrics.reconstruction import psnr, reconstruct, ssim
from dae.run import Run


@dataclass
class EvalOptions:
    metrics: list[str] = field(default_factory=lambda: list(METRIC_GROUPS))
    features: str | None = None  # default: classifier:<dataset> for MNIST/CIFAR-10, else pixels
    n: int = 10000  # held-out examples measured
    knn_train: int = 10000  # reference examples of the k-NN classifier
    lipschitz_n: int = 256
    probe_train: int = 5000  # training examples of the linear probe (of the k-NN reference set)
    batch_size: int = 250
    train_features: bool = True  # train the classifier feature net if it is not cached
    samples: str | None = None  # .npz of generated uint8 images to measure against the train split
    device: str = "cpu"  # where the autoencoder runs; data and metrics stay on the CPU

    def __post_init__(self) -> None:
        # named as `dae evaluate`'s flags; checked before any data or model is loaded
        for key, value, least in (("-n", self.n, 2), ("--knn-train", self.knn_train, 1)):
            if value < least:
                raise ConfigError(key, f"must be >= {least}, got {value}")


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
        return to_float(x) if x.dtype == torch.uint8 else x


def load_run(run_dir: str | Path) -> tuple[Any, Any]:
    """(config, model) of a run: its final (else checkpoint) weights, full decoder, eval mode."""
    loaded = Run(run_dir).autoencoder("auto")
    return loaded.cfg, loaded.model


def eval_data(cfg: Any, opts: EvalOptions) -> EvalData:
    """The data a run was trained on: its test split and a seeded subset of its train split."""
    gen = torch.Generator().manual_seed(0)
    if isinstance(cfg.data, ImageDataConfig):
        d = cfg.data
        test = load_images(d.name, "test", d.root, d.image_size)
        train = load_images(d.name, "train", d.root, d.image_size)
        kind, dataset, root = "image", d.name, d.root
        test_x, test_y, train_x, train_y = test.images, test.labels, train.images, train.labels
    elif isinstance(cfg.data, ToyDataConfig):
        toy = make_toy_data(cfg.data, seed=cfg.train.seed)  # the toy's data depends on the seed
        kind, dataset, root = "vector", "toy", None
        test_x, test_y, train_x, train_y = toy.x_test, toy.y_test, toy.x_train, toy.y_train
    else:
        raise ConfigError("kind", f"dae evaluate does not know the data of a {cfg.kind} run")
    idx = torch.randperm(len(train_x), generator=gen)[: opts.knn_train]
    # A seeded random subset, not the first n: folder layouts are sorted by class.
    t_idx = torch.randperm(len(test_x), generator=gen)[: opts.n].sort().values
    return EvalData(kind, dataset, test_x[t_idx], test_y[t_idx], train_x[idx], train_y[idx], root)


class OnDevice:
    """The autoencoder moved to `device`, behind the interface the metrics call with CPU tensors:
    inputs go to the device and outputs come back, so every metric runs unchanged on a GPU (only
    the network's passes move; the statistics stay in float64-friendly CPU code)."""

    _PASSES = ("encode", "decode", "latent", "encode_to_indices")

    def __init__(self, model: Any, device: str):
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device", f"{device!r} asked for, but this torch sees no CUDA GPU")
        self._model, self._device = model.to(dev), dev

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._model, name)
        if name in self._PASSES:
            return lambda x: _to_cpu(attr(x.to(self._device)))
        return _to_cpu(attr)


def _to_cpu(value: Any) -> Any:
    return value.cpu() if isinstance(value, torch.Tensor) else value


def _flat_latents(model, x: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([model.latent(x[i : i + batch]).flatten(1) for i in range(0, len(x), batch)])


@torch.no_grad()
def evaluate_run(run_dir: str | Path, opts: EvalOptions | None = None, log=print) -> dict[str, Any]:
    """Measure a run and write `RUN/eval.json` (and `RUN/eval_recon.png` for images)."""
    opts = opts or EvalOptions()
    unknown = set(opts.metrics) - set(METRIC_GROUPS)
    if unknown:
        raise UnknownNameError(f"unknown metrics {sorted(unknown)}; known: {list(METRIC_GROUPS)}")
    run = Run(run_dir)
    # Read the samples first: a bad file is reported before minutes of other metrics, not after.
    samples = load_samples(opts.samples) if opts.samples else None
    loaded = run.autoencoder("auto")
    cfg = loaded.cfg
    model = OnDevice(loaded.model, opts.device) if opts.device != "cpu" else loaded.model
    which = _which_weights(run, loaded)
    if which["weights"] != "final":
        log(f"{run.path} is unfinished: measuring {which['file']} at step {which['step']}")
    data = eval_data(cfg, opts)
    if samples is not None and data.kind != "image":
        raise ConfigError("samples", "generated samples can only be measured for image runs")
    torch.manual_seed(0)
    result: dict[str, Any] = {
        "run": str(run.path),
        **which,
        "data": data.dataset,
        "n": len(data.test_x),
        "metrics": {},
        "skipped": {},
        "seconds": {},
    }
    result = _merge_with_earlier(run, result, log)
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
            # top row: real test images; bottom row: their reconstructions
            grid = torch.cat([data.test_x[pick], to_uint8(recon[pick])])
            save_grid(run.eval_grid_path, grid, nrow=len(pick), upscale=2)
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
        if model.kind == "vq":
            idx = torch.cat(
                [
                    model.encode_to_indices(x_test[i : i + opts.batch_size])
                    for i in range(0, len(x_test), opts.batch_size)
                ]
            )
            result["codebook"] = codebook_report(model.codebook.detach(), idx)
            metrics["codebook_perplexity"] = result["codebook"]["usage"]["perplexity"]
            metrics["codebook_dead"] = result["codebook"]["usage"]["dead_codes"]
        else:
            skipped["codebook"] = f"{type(model).__name__} has no codebook"
    if "diagnostics" in opts.metrics:  # spectrum, equivariance, linear probe, GMM modes
        t0 = time.time()
        train = (data.as_input(data.train_x)[: opts.probe_train], data.train_y[: opts.probe_train])
        found, result["diagnostics"], notes = latent_diagnostics(
            model, train, (x_test, data.test_y), opts.batch_size
        )
        metrics.update(found)
        skipped.update(notes)
        seconds["diagnostics"] = round(time.time() - t0, 2)
    if samples is not None:
        t0 = time.time()
        values, info = score_samples(
            samples, cfg.data, opts.features, train_features=opts.train_features
        )
        metrics.update({f"sample_{k}": v for k, v in values.items()})
        result["samples"] = {"path": str(opts.samples), **info}
        seconds["samples"] = round(time.time() - t0, 2)
    run.write_eval(result)
    return result


def _which_weights(run: Run, loaded: Any) -> dict[str, Any]:
    """What `eval.json` records of the measured weights: `final` (the trained model, not its
    EMA) or an unfinished run's `checkpoint`, with the step (and stage) they hold."""
    if loaded.source == "final":
        return {"weights": "final", "file": run.weights_path.name, "step": loaded.step}
    return {
        "weights": "checkpoint",
        "file": str(run.checkpoint_path.relative_to(run.path)),
        "step": loaded.step,
        "stage": loaded.stage,
    }


def _merge_with_earlier(run: Run, result: dict[str, Any], log) -> dict[str, Any]:
    """Start from the earlier `eval.json` of the same weights, so that measuring one group
    (`--metrics recon`) keeps the others; an evaluation of other weights is replaced whole."""
    earlier = run.read_eval()
    same = earlier and all(
        earlier.get(k) == result[k] for k in ("weights", "step", "data", "n") if k in result
    )
    if not same:
        if earlier:
            log(f"{run.eval_path}: measured other weights or data; starting it afresh")
        return result
    for key in ("metrics", "skipped", "seconds"):
        result[key] = {**earlier.get(key, {}), **result[key]}
    return {**earlier, **result}


def _fd_metrics(data: EvalData, recon: torch.Tensor, opts: EvalOptions, metrics: dict, log):
    """Reconstruction-FD family: features of reconstructions vs the (cached) real test features."""
    spec = opts.features or default_features(data.dataset)
    ext = build_features(spec, root=data.root, train_if_missing=opts.train_features)
    real = reference_features(ext, data.test_x, f"{data.dataset}-test")
    fake = ext.extract(to_uint8(recon) if data.kind == "image" else recon, opts.batch_size)
    for key, value in distribution_metrics(real, fake, ext.names, kid_subsets=20).items():
        metrics[f"recon_{key}"] = value
    log(f"features {ext.spec}: {ext.info}")
    return ext


def score_samples(
    samples: str | Path | torch.Tensor,
    data: ImageDataConfig,
    features: str | None = None,
    split: str = "train",
    train_features: bool = True,
) -> tuple[dict[str, float], dict]:
    """Generation metrics (FD, IS, KD, precision/recall) of uint8 samples `(N, C, H, W)` (or their
    `.npz`) against a split of `data` (FID-style: the training split by default, features cached)."""
    images = samples if isinstance(samples, torch.Tensor) else load_samples(samples)
    ref = load_in_memory(dataclasses.replace(data, split=split))
    spec = features or default_features(data.name)
    ext = build_features(spec, root=data.root, train_if_missing=train_features)
    real = reference_features(ext, ref.images, f"{data.name}-{split}")
    values = distribution_metrics(real, ext.extract(images), ext.names)
    return values, {"features": ext.spec, "feature_info": ext.info}


def load_samples(path: str | Path) -> torch.Tensor:
    """uint8 `(N, C, H, W)` samples from an `.npz`/`.npy` (key `images` or the first array)."""
    import numpy as np

    from dae.data.formats import NUMPY_LOAD_ERRORS, numpy_load_reason

    if not Path(path).is_file():
        raise MissingFileError(f"samples file not found: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except NUMPY_LOAD_ERRORS as err:
        raise DataFormatError(f"{path}: unreadable samples ({numpy_load_reason(err)})") from None
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


def read_eval(run_dir: str | Path) -> dict[str, Any] | None:
    """A run's `eval.json`, or None if it has not been evaluated."""
    return Run(run_dir).read_eval()


__all__ = ["EvalOptions", "evaluate_run", "load_run", "read_eval", "score_samples"]
