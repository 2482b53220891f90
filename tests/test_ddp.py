"""Two CPU processes under `torchrun` (gloo): replicas stay identical through a DAE run that
re-wraps DDP at the stage change and trains a discriminator; only rank 0 writes the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dae.data.images import float_batch
from dae.data.sampler import EpochSampler
from image_utils import synthetic_images, write_image_folder

WORKER = """
import sys, torch
torch.set_num_threads(1)
from dae.schedule import DAESchedule
from dae.train.distributed import dist_info, init_distributed, shutdown
from dae.train.image_task import {task}
from dae.train.trainer import Trainer, prepare_run_dir
from image_utils import synthetic_images, tiny_config

out = sys.argv[1]
info = init_distributed("cpu")
sections = {{"model": {{"restart_dead_codes": 1}}}} if "{kind}" == "vqgan" else {{}}
stream = {stream!r}  # an image folder to stream with DataLoader workers, or None: in memory
if stream:
    sections["data"] = {{"name": "folder", "root": stream, "image_size": 16, "source": "stream",
                        "workers": 2, "hflip": True}}
cfg = tiny_config(
    "{kind}", schedule={{"mode": "dae"}}, train={{"steps": 4, "batch_size": 2}}, **sections
)
if info.is_main:
    prepare_run_dir(__import__("pathlib").Path(out) / "run", resume=False, overwrite=False)
task = {task}(cfg, None if stream else synthetic_images(16))
init = {{k: v.clone() for k, v in task.model.state_dict().items()}}
trainer = Trainer(task, DAESchedule(cfg.schedule, 4), cfg.train, cfg.optim, run_dir=out + "/run")
trainer.fit()
state = {{n: m.state_dict() for n, m in task.modules().items()}}
state["init"] = init
state["first_batch"] = task.batch(0)
torch.save(state, f"{{out}}/rank{{info.rank}}.pt")
shutdown()
"""


def run_torchrun(tmp_path: Path, kind: str, task: str, stream: str | None = None) -> list[dict]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(kind=kind, task=task, stream=stream))
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root / 'tests'}",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(tmp_path),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


@pytest.mark.parametrize("source", ["memory", "stream"])
def test_two_process_gloo_replicas_stay_identical(tmp_path, source):
    stream = None
    if source == "stream":
        stream = str(write_image_folder(tmp_path / "images", synthetic_images(16)))
    rank0, rank1 = run_torchrun(tmp_path, "vqgan", "VQGANTask", stream)
    assert not torch.equal(rank0["first_batch"], rank1["first_batch"])  # each rank its own slice
    if stream:  # each rank decoded exactly its slice of the global batch the memory path makes
        memory = synthetic_images(16)
        for rank, state in enumerate((rank0, rank1)):
            index = EpochSampler(16, 2, 0, rank, 2).indices(0)
            expected = float_batch(memory, index, hflip=True, seed=0)
            assert torch.equal(state["first_batch"], expected)
    for name in ("model", "disc"):
        for key, value in rank0[name].items():
            if "running_" in key or "num_batches" in key:
                continue  # BatchNorm statistics are per-process (unused: D always trains)
            assert torch.equal(value, rank1[name][key]), f"{name}.{key} differs between ranks"
    init = rank0["init"]
    changed = [k for k, v in rank0["model"].items() if k in init and not torch.equal(v, init[k])]
    assert any(k.startswith("encoder.") for k in changed) and any(
        k.startswith("decoder.") for k in changed
    )
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 4  # one writer
