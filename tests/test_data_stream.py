"""The streaming image source: same batches as the memory path, tar shards, bad-image policy,
exact resume with DataLoader workers."""

from __future__ import annotations

import json
import logging
import os
import signal

import pytest
import torch

from dae.cli import main
from dae.data.images import ImageDataConfig, load_from_config
from dae.data.stream import StreamImages
from dae.errors import ConfigError, DataFormatError
from dae.schedule import DAESchedule
from dae.train.image_task import VQGANTask
from dae.train.trainer import Trainer, prepare_run_dir
from image_utils import synthetic_images, tiny_config, write_image_folder


def stream_data(root, **extra) -> dict:
    return {
        "name": "folder",
        "root": str(root),
        "image_size": 16,
        "source": "stream",
        "workers": 2,
        **extra,
    }


@pytest.fixture
def folder(tmp_path):
    return write_image_folder(tmp_path / "images", synthetic_images(24))


def test_stream_batches_equal_memory_batches_in_any_order(folder):
    """Same files, order, split, resize and seeded flips as `source: memory`, with workers."""
    common = {"hflip": True, "val_fraction": 0.25}
    memory = VQGANTask(tiny_config("vqgan", data={**stream_data(folder), "source": "memory",
                                                  "cache": False, **common}))  # fmt: skip
    stream = VQGANTask(tiny_config("vqgan", data={**stream_data(folder), **common}))
    assert isinstance(stream.data, StreamImages) and len(stream.data) == len(memory.data) == 18
    for step in [0, 1, 2, 3, 7, 2, 3]:  # a jump back restarts the workers at that step
        assert torch.equal(stream.batch(step), memory.batch(step)), step


def test_stream_subset_keeps_the_images_of_the_memory_subset(folder):
    """`subset` (used by `log.test_every`) picks the same images on both sources."""
    memory = load_from_config(
        ImageDataConfig(**{**stream_data(folder), "source": "memory", "cache": False})
    )
    stream = load_from_config(ImageDataConfig(**stream_data(folder)))
    index = torch.tensor([23, 4, 11])
    part = stream.subset(index)
    assert len(part) == 3 and isinstance(part, StreamImages)
    assert torch.equal(part.pixels(torch.arange(3)), memory.subset(index).images)


def test_shards_from_the_cli_stream_the_same_images(folder, tmp_path, capsys):
    out = tmp_path / "shards"
    assert main(["data", "shard", str(folder), str(out), "--per-shard", "10"]) == 0
    assert sorted(p.name for p in out.glob("*.tar")) == [f"shard-00000{i}.tar" for i in range(3)]
    from_folder = load_from_config(ImageDataConfig(**stream_data(folder)))
    from_shards = load_from_config(ImageDataConfig(**stream_data(out)))
    index = torch.tensor([0, 9, 10, 23, 5])
    assert torch.equal(from_shards.pixels(index), from_folder.pixels(index))
    assert from_shards.name(10).endswith("shard-000001.tar:000000010.png")
    # shards are never overwritten
    assert main(["data", "shard", str(folder), str(out)]) == 1
    assert "already holds .tar shards" in capsys.readouterr().err


def test_config_rejects_stream_without_size_or_folder_and_skip_without_stream():
    with pytest.raises(ConfigError, match="^image_size: source: stream needs"):
        ImageDataConfig(name="folder", source="stream")
    with pytest.raises(ConfigError, match="^source: stream reads image folders"):
        ImageDataConfig(name="mnist", source="stream", image_size=28)
    with pytest.raises(ConfigError, match="^on_bad_image: skip needs source: stream"):
        ImageDataConfig(name="folder", on_bad_image="skip")


def corrupt(folder, index: int):
    bad = folder / "x" / f"{index:04d}.png"
    bad.write_bytes(b"not a png at all")
    return bad


def test_bad_image_error_names_the_file(folder):
    bad = corrupt(folder, 5)
    task = VQGANTask(tiny_config("vqgan", data=stream_data(folder)))
    steps = [s for s in range(6) if 5 in task.sampler.indices(s).tolist()]
    with pytest.raises(DataFormatError, match=f"^{bad}: cannot decode image"):
        for step in range(steps[0] + 1):
            task.batch(step)


def train(cfg, run_dir, resume=False, stop_at=None):
    """Train in `run_dir`; `stop_at`: Ctrl-C (a real SIGINT) while the workers decode that step's
    batch: the step finishes, a checkpoint is saved and the run stops."""
    prepare_run_dir(run_dir, resume=resume, overwrite=False)
    task = VQGANTask(cfg)
    batch = task.batch

    def interruptible(step):
        if step == stop_at:
            os.kill(os.getpid(), signal.SIGINT)
        return batch(step)

    task.batch = interruptible
    schedule = DAESchedule(cfg.schedule, cfg.train.steps)
    Trainer(task, schedule, cfg.train, cfg.optim, run_dir=run_dir, resume=resume).fit()
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return task, rows


def test_stream_resume_with_workers_and_skipped_images_equals_uninterrupted(
    folder, tmp_path, caplog
):
    """Interrupted in stage 1 and resumed: weights and metrics (the running count of skipped
    files included) equal an uninterrupted run's."""
    bad = [corrupt(folder, 3), corrupt(folder, 17)]
    cfg = tiny_config(
        "vqgan",
        data=stream_data(folder, hflip=True, on_bad_image="skip"),
        schedule={"mode": "dae", "weak_decoder": "dropout2d"},
        train={"steps": 6, "batch_size": 8, "ema_decay": 0.9},  # 3 steps per epoch
    )

    with caplog.at_level(logging.WARNING, logger="dae.data.stream"):
        full, rows_full = train(cfg, tmp_path / "full")
    assert {str(p) for p in bad} <= {r.args[0] for r in caplog.records}
    assert rows_full[-1]["skipped_images"] == 4  # each bad file once per epoch, 2 epochs
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", stop_at=2)  # in stage 1: dropout draws from the RNG
    resumed, rows_cut = train(cfg, tmp_path / "cut", resume=True)
    assert rows_cut == rows_full
    for name in ("model", "disc"):
        a, b = full.modules()[name].state_dict(), resumed.modules()[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
