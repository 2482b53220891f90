"""`classifier:<dataset>` feature networks: trained by dae itself on the dataset, cached by config hash.

On machines without the Inception weights, sample quality is measured in the feature space of a
classifier trained on the same dataset (as e.g. the "FD" of TTUR's MNIST experiments). The numbers
are reported as `FD-classifier`, `IS-classifier`, ..., never as FID/IS: they are comparable between
models measured with the *same* cached network (same config hash), not with the literature.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from dae.config import check, from_dict, to_dict
from dae.data.images import load_images, to_float
from dae.errors import MissingFileError
from dae.files import atomic_write
from dae.paths import cache_root


@dataclass
class ClassifierConfig:
    dataset: Literal["mnist", "cifar10"] = field(
        default="cifar10", metadata={"help": "training set"}
    )
    width: int = field(
        default=32, metadata={"help": "channels of the first stage (doubles per stage)"}
    )
    epochs: float = field(default=8.0, metadata={"help": "passes over the training split"})
    batch_size: int = field(default=256, metadata={"help": "batch size"})
    lr: float = field(default=0.2, metadata={"help": "peak SGD learning rate (one-cycle schedule)"})
    weight_decay: float = field(default=5e-4, metadata={"help": "SGD weight decay"})
    label_smoothing: float = field(default=0.1, metadata={"help": "cross-entropy label smoothing"})
    augment: bool = field(default=True, metadata={"help": "random flips (CIFAR) and 2-4 px shifts"})
    seed: int = field(default=0, metadata={"help": "init and batch-order seed"})
    limit: int = field(default=0, metadata={"help": "use only the first N training images (tests)"})
    threads: int = field(
        default=0,
        metadata={
            "help": "torch threads while training; 0, or OMP_NUM_THREADS set, keeps the default"
        },
    )

    def __post_init__(self) -> None:
        check(self.width >= 4, "width", f"must be >= 4, got {self.width}")
        check(self.epochs > 0, "epochs", f"must be > 0, got {self.epochs}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.limit >= 0, "limit", f"must be >= 0, got {self.limit}")

    def key(self) -> str:
        """Hash of everything that changes the trained weights (not `threads`)."""
        # Integral floats hash as ints, so `epochs: 2` and `epochs: 2.0` name the same network.
        data = {
            k: int(v) if isinstance(v, float) and v.is_integer() else v
            for k, v in to_dict(self).items()
            if k != "threads"
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU()
    )


class Residual(nn.Module):
    """x + f(x), with f two conv-bn-gelu layers at constant width."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ClassifierNet(nn.Module):
    """A small ResNet (in the style of the fast CIFAR-10 "ResNet-9" nets), 3 stages, each halving.

    `features(x)` returns what the metrics use: the pooled penultimate vector `pool` (B, 4w) for
    FD/KID/precision-recall, the stage-2 map flattened over a 4x4 grid `spatial` (B, 2w*16) for the
    sFID analogue, and the class `logits` (B, K) for the IS analogue.
    """

    def __init__(
        self, in_channels: int, n_classes: int, width: int, residual_stages: tuple[bool, ...]
    ):
        super().__init__()
        self.stem = conv_bn(in_channels, width)
        stages, c_in = [], width
        for i, residual in enumerate(residual_stages):  # widths w, 2w, 4w; each halves H and W
            c_out = width * 2**i
            layers = [
                conv_bn(c_in, c_out),
                nn.MaxPool2d(2),
                *([Residual(c_out)] if residual else []),
            ]
            stages.append(nn.Sequential(*layers))
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(c_in, n_classes, bias=False)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.stem(x)
        maps = []
        for stage in self.stages:
            h = stage(h)
            maps.append(h)
        spatial = F.adaptive_avg_pool2d(maps[-2] if len(maps) > 1 else maps[-1], 4).flatten(1)
        pool = F.adaptive_max_pool2d(h, 1).flatten(1)  # (B, C, h, w) -> (B, C)
        # The fixed 1/8 logit scale (as in the fast CIFAR-10 nets) keeps early training stable.
        return {"pool": pool, "spatial": spatial, "logits": self.head(pool) * 0.125}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)["logits"]


def build_classifier(cfg: ClassifierConfig) -> ClassifierNet:
    """The network for `cfg.dataset`: 1-channel, plain CNN for MNIST; 3-channel small ResNet for CIFAR."""
    if cfg.dataset == "mnist":
        return ClassifierNet(1, 10, cfg.width, (False, False, False))
    return ClassifierNet(3, 10, cfg.width, (True, False, True))


def _augment(x: torch.Tensor, flip: bool, shift: int, gen: torch.Generator) -> torch.Tensor:
    """Random translations by up to `shift` px (reflect-padded) and, if `flip`, left-right flips."""
    b, _, h, w = x.shape
    padded = F.pad(x, (shift,) * 4, mode="reflect")
    dy, dx = torch.randint(
        0, 2 * shift + 1, (2,), generator=gen
    ).tolist()  # one shift per batch: fast
    x = padded[:, :, dy : dy + h, dx : dx + w]
    if flip:
        mask = torch.rand(b, generator=gen) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x


@torch.no_grad()
def accuracy(
    net: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000
) -> float:
    """Top-1 accuracy on uint8 images (with left-right flip test-time averaging for colour sets)."""
    net.eval()
    correct = 0
    for i in range(0, len(images), batch):
        x = to_float(images[i : i + batch])
        logits = net(x)
        if x.shape[1] == 3:
            logits = logits + net(x.flip(-1))
        correct += int((logits.argmax(1) == labels[i : i + batch]).sum())
    return correct / len(images)


def train_classifier(
    cfg: ClassifierConfig, root: str | Path | None = None, log=print
) -> tuple[ClassifierNet, dict]:
    """Train on the dataset's train split; returns the net and `{"test_accuracy", "seconds", ...}`.
    Trains with `cfg.threads` torch threads unless OMP_NUM_THREADS is set: a user who gave each of
    several jobs one thread should not find this one taking two cores. The caller's thread count
    is restored afterwards (an evaluation that trained it goes on as it was)."""
    threads = 0 if os.environ.get("OMP_NUM_THREADS") else cfg.threads
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _train_classifier(cfg, root, log)
    finally:
        torch.set_num_threads(previous)


@torch.enable_grad()  # also when called from inside an evaluation's no_grad
def _train_classifier(
    cfg: ClassifierConfig, root: str | Path | None, log
) -> tuple[ClassifierNet, dict]:
    torch.manual_seed(cfg.seed)
    train, test = load_images(cfg.dataset, "train", root), load_images(cfg.dataset, "test", root)
    if cfg.limit:
        train = train.subset(torch.arange(min(cfg.limit, len(train))))
    # channels_last: oneDNN's convolutions are ~1.4x faster in it on CPU (measured here).
    net = build_classifier(cfg).to(memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = max(1, round(cfg.epochs * steps_per_epoch))
    opt = torch.optim.SGD(
        net.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=total, pct_start=0.25)
    gen = torch.Generator().manual_seed(cfg.seed)
    flip, shift = cfg.dataset == "cifar10", 4 if cfg.dataset == "cifar10" else 2
    start, step = time.time(), 0
    net.train()
    while step < total:
        perm = torch.randperm(len(train), generator=gen)
        for i in range(
            0, len(perm) - cfg.batch_size + 1 if len(perm) > cfg.batch_size else 1, cfg.batch_size
        ):
            idx = perm[i : i + cfg.batch_size]
            x = to_float(train.images[idx])
            if cfg.augment:
                x = _augment(x, flip, shift, gen)
            x = x.contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(net(x), train.labels[idx], label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 50 == 0 or step == total:
                log(
                    f"classifier:{cfg.dataset} step {step}/{total} loss {loss.item():.3f} ({time.time() - start:.0f}s)"
                )
            if step >= total:
                break
    info = {
        "test_accuracy": accuracy(net, test.images, test.labels),
        "seconds": round(time.time() - start, 1),
        "steps": total,
        "train_images": len(train),
    }
    log(f"classifier:{cfg.dataset} test accuracy {info['test_accuracy']:.4f}")
    return net.to(memory_format=torch.contiguous_format).eval(), info


def classifier_path(cfg: ClassifierConfig) -> Path:
    """Where the trained weights of `cfg` are cached: `<DAE_CACHE>/features/<hash>.safetensors`."""
    return cache_root() / "features" / f"classifier-{cfg.dataset}-{cfg.key()}.safetensors"


def save_classifier(path: Path, net: ClassifierNet, cfg: ClassifierConfig, info: dict) -> None:
    metadata = {"config": json.dumps(to_dict(cfg)), "info": json.dumps(info)}
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def load_classifier(path: Path) -> tuple[ClassifierNet, ClassifierConfig, dict]:
    """A cached classifier, its config and its training info (test accuracy)."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    cfg = from_dict(ClassifierConfig, json.loads(meta["config"]))
    net = build_classifier(cfg)
    net.load_state_dict(load_file(str(path)))
    return net.eval(), cfg, json.loads(meta.get("info", "{}"))


def get_classifier(
    cfg: ClassifierConfig, root: str | Path | None = None, train_if_missing: bool = True, log=print
) -> tuple[ClassifierNet, dict]:
    """The cached classifier of `cfg`, trained first if there is none (and allowed)."""
    path = classifier_path(cfg)
    if path.is_file():
        net, _, info = load_classifier(path)
        return net, info
    if train_if_missing:  # say so up front: this can take a quarter of an hour
        log(
            f"no cached classifier:{preset_name(cfg)} feature network at {path}; training it now "
            f"(~{estimated_minutes(cfg):.0f} min of training on an idle 2-core CPU, longer under "
            "load; once, then it is cached)"
        )
    else:
        raise MissingFileError(
            f"no trained classifier at {path}; train it with `python -m dae.metrics.classifier "
            f"{cfg.dataset}` (plus the same key=value overrides), or drop --no-train-features"
        )
    net, info = train_classifier(cfg, root, log)
    save_classifier(path, net, cfg, info)
    return net, info


# Presets that reach the accuracies in docs/metrics.md on this 2-core CPU: MNIST in ~2 minutes,
# CIFAR-10 in ~16 minutes (12 epochs; 2 epochs gave 77.4%, short of the 85% aim).
# "cifar10-quick" (estimated ~1 min of training, scaled, not measured) is for `dae reproduce gan --quick` on a fresh machine: its scores are
# named FD-classifier:cifar10-quick and are comparable only with each other.
PRESETS = {
    "mnist": ClassifierConfig(
        dataset="mnist", width=16, epochs=2, batch_size=128, lr=0.1, threads=1
    ),
    "cifar10": ClassifierConfig(
        dataset="cifar10", width=32, epochs=12, batch_size=256, lr=0.2, threads=2
    ),
    "cifar10-quick": ClassifierConfig(
        dataset="cifar10", width=16, epochs=2, batch_size=256, lr=0.2, threads=2
    ),
}
# Measured minutes per epoch of the full-width presets (widths 16 and 32) on an idle 2-core CPU.
_MINUTES_PER_EPOCH = {"mnist": (1.0, 16, 60000), "cifar10": (16 / 12, 32, 50000)}


def estimated_minutes(cfg: ClassifierConfig) -> float:
    """Rough training time, scaled from the presets' (cost ~ width^2 x images x epochs)."""
    per_epoch, width, images = _MINUTES_PER_EPOCH[cfg.dataset]
    used = min(cfg.limit, images) / images if cfg.limit else 1.0
    return per_epoch * cfg.epochs * (cfg.width / width) ** 2 * used


def preset_name(cfg: ClassifierConfig) -> str:
    """The preset `cfg` is (e.g. "cifar10-quick"), else its dataset: what its scores are named."""
    return next((name for name, preset in PRESETS.items() if preset == cfg), cfg.dataset)


def main(argv: list[str] | None = None) -> int:
    """`python -m dae.metrics.classifier PRESET [key=value ...]`: train (or find) and cache one."""
    import argparse
    import sys

    from dae.config import explain, replace
    from dae.errors import UserError

    parser = argparse.ArgumentParser(
        prog="python -m dae.metrics.classifier",
        description="Train dae's feature classifier for FD-classifier once and cache it (a cached "
        "one is found, not retrained). Prints its path and test accuracy as JSON.",
        epilog="config keys and the cifar10 preset's values:\n" + explain(PRESETS["cifar10"]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("preset", choices=sorted(PRESETS), help="the starting config")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. epochs=24"
    )
    args = parser.parse_args(argv)
    try:
        cfg = replace(PRESETS[args.preset], args.overrides)
        _, info = get_classifier(cfg)
    except UserError as err:  # a wrong key or value, a missing dataset: one line, no traceback
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return err.exit_code
    print(json.dumps({"path": str(classifier_path(cfg)), **info}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
