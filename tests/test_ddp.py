"""Two CPU processes under `torchrun` (gloo): replicas stay identical through a DAE run that
re-wraps DDP at the stage change and trains a discriminator; only rank 0 writes the run. Runs
cover every quantizer and the streaming data path (DataLoader workers, one slice per rank)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dae.data.images import float_batch
from dae.data.sampler import EpochSampler
from image_utils import QUANTIZER_MODELS, synthetic_images, write_image_folder

WORKER = """
import sys, torch
torch.set_num_threads(1)
from dae.schedule import DAESchedule
from dae.train.distributed import barrier, dist_info, init_distributed, shutdown
from dae.train.image_task import {task}
from dae.train.trainer import Trainer, prepare_run_dir
from image_utils import synthetic_images, tiny_config

out = sys.argv[1]
info = init_distributed("cpu")
for name, sections in {runs!r}.items():  # one run per entry (config sections), each in out/name
    cfg = tiny_config(
        "{kind}", schedule={{"mode": "dae"}}, train={{"steps": 4, "batch_size": 2}}, **sections
    )
    run = f"{{out}}/{{name}}"
    if info.is_main:
        prepare_run_dir(__import__("pathlib").Path(run) / "run", resume=False, overwrite=False)
    # As `dae train` does: no rank writes into the folder before rank 0 has claimed it (without
    # this, rank 1 could reach the next run first and rank 0 found it "already holds a run").
    barrier()
    streamed = cfg.data.source == "stream"
    task = {task}(cfg, None if streamed else synthetic_images(16))
    init = {{k: v.clone() for k, v in task.model.state_dict().items()}}
    trainer = Trainer(task, DAESchedule(cfg.schedule, 4), cfg.train, cfg.optim, run_dir=run + "/run")
    trainer.fit()
    state = {{n: m.state_dict() for n, m in task.modules().items()}}
    state["init"] = init
    state["first_batch"] = task.batch(0)
    torch.save(state, f"{{run}}/rank{{info.rank}}.pt")
shutdown()
"""


def failure(result: subprocess.CompletedProcess) -> str:
    """What a failed torchrun printed that says why: each rank's first traceback, then the tail
    (torchrun's own summary at the end would otherwise push the cause out of the message)."""
    err = result.stderr
    first = err.find("Traceback")
    head = err[first : first + 6000] if first >= 0 else ""
    # A rank killed by a signal (a C++ abort: "terminate called ... what(): ...") leaves no Python
    # traceback; what it printed comes before torchrun's own traceback.
    ranks = err[:first][-3000:] if first > 0 else ""
    return f"exit {result.returncode}\n{ranks}\n{head}\n...\n{err[-2000:]}"


def run_torchrun(tmp_path: Path, kind: str, task: str, runs: dict[str, dict]) -> dict:
    """Train one tiny DAE run per `runs` entry (config sections) under two gloo ranks;
    name -> [rank0 state, rank1 state]."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(kind=kind, task=task, runs=runs))
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
    assert result.returncode == 0, failure(result)
    return {
        name: [torch.load(tmp_path / name / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
        for name in runs
    }


def assert_replicas_identical(rank0: dict, rank1: dict) -> None:
    assert not torch.equal(rank0["first_batch"], rank1["first_batch"])  # each rank its own slice
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


@pytest.mark.parametrize("source", ["memory", "stream"])
def test_two_process_gloo_replicas_stay_identical(tmp_path, source):
    sections: dict = {"model": {"restart_dead_codes": 1}}  # restarts broadcast from rank 0
    if source == "stream":  # an image folder streamed by DataLoader workers
        root = str(write_image_folder(tmp_path / "images", synthetic_images(16)))
        sections["data"] = {
            "name": "folder",
            "root": root,
            "image_size": 16,
            "source": "stream",
            "workers": 2,
            "hflip": True,
        }
    rank0, rank1 = run_torchrun(tmp_path, "vqgan", "VQGANTask", {"vq": sections})["vq"]
    assert_replicas_identical(rank0, rank1)
    if source == "stream":  # each rank decoded exactly its slice of the memory path's batch
        memory = synthetic_images(16)
        for rank, state in enumerate((rank0, rank1)):
            index = EpochSampler(16, 2, 0, rank, 2).indices(0)
            expected = float_batch(memory, index, hflip=True, seed=0)
            assert torch.equal(state["first_batch"], expected)
    assert (tmp_path / "vq" / "run" / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "vq" / "run" / "metrics.jsonl").read_text().count("\n") == 4  # one writer


def test_every_quantizer_keeps_replicas_identical_under_ddp(tmp_path):
    # vq-l2 restarts codes, lfq averages its code distribution over ranks for the entropy loss
    runs = {
        name: {
            "model": {
                **QUANTIZER_MODELS[name],
                **({"restart_dead_codes": 1} if name == "vq-l2" else {}),
            }
        }
        for name in ("vq-l2", "fsq", "lfq")
    }
    # ActNorm sets its map from each rank's first batch, averaged over ranks
    runs["actnorm"] = {"disc": {"norm": "actnorm"}}
    for ranks in run_torchrun(tmp_path, "vqgan", "VQGANTask", runs).values():
        assert_replicas_identical(*ranks)


PRIOR_WORKER = """
import sys, torch
torch.set_num_threads(1)
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from dae.experiments import load_config
from dae.priors.cache import LatentCache
from dae.priors.task import PriorTask
from dae.train.distributed import barrier, dist_info, init_distributed, shutdown
from dae.train.trainer import Trainer

out, config = sys.argv[1], sys.argv[2]
info = init_distributed("cpu")
overrides = ["model.depth=1", "model.hidden_size=16", "model.num_heads=2",
             "diffusion.num_timesteps=50", "train.steps=3", "train.batch_size=4",
             "train.grad_accum=2", "train.progress=false", "train.tensorboard=false"]
kind, cfg = load_config(config, overrides)
gen = torch.Generator().manual_seed(0)
meta = {"kind": "kl", "latent_shape": [2, 4, 4], "classes": ["a", "b"], "scaling_factor": 1.0}
cache = LatentCache({"mean": torch.randn(16, 2, 4, 4, generator=gen),
                     "logvar": torch.full((16, 2, 4, 4), -2.0),
                     "labels": torch.arange(16) % 2}, meta)
torch.manual_seed(0)
calls = {"n": 0}


def counting(state, bucket):
    calls["n"] += 1
    return allreduce_hook(None, bucket)


class CountingTask(PriorTask):
    def enter_stage(self, plan):
        super().enter_stage(plan)
        self.prior_train.register_comm_hook(None, counting)


task = CountingTask(cfg, cache, kind.model(cfg, meta))
Trainer(task, None, cfg.train, cfg.optim).fit()
state = {"model": task.model.state_dict(), "allreduce": torch.tensor(calls["n"]),
         "first_batch": task.batch(0)[0]}
torch.save(state, f"{out}/prior_rank{info.rank}.pt")
shutdown()
"""


def test_two_process_prior_syncs_once_per_step(tmp_path):
    """A prior under DDP: replicas stay identical, and with grad_accum=2 the gradients are
    all-reduced once per step (the first micro-batch runs under no_sync)."""
    script = tmp_path / "prior_worker.py"
    script.write_text(PRIOR_WORKER)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "OMP_NUM_THREADS": "1"}
    config = root / "configs" / "prior_dit_cifar10.yaml"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(
        [*cmd, str(script), str(tmp_path), str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, failure(result)
    rank0, rank1 = (torch.load(tmp_path / f"prior_rank{r}.pt", weights_only=True) for r in (0, 1))
    assert not torch.equal(rank0["first_batch"], rank1["first_batch"])  # each rank its own slice
    for key, value in rank0["model"].items():
        assert torch.equal(value, rank1["model"][key]), f"{key} differs between ranks"
    # one bucket (a tiny DiT), 3 steps: 3 all-reduces, not 6
    assert int(rank0["allreduce"]) == int(rank1["allreduce"]) == 3


def test_shutdown_waits_for_every_rank_unless_this_one_failed(monkeypatch, tmp_path):
    """Ranks meet at a barrier before leaving the group (one leaving early can abort a peer's
    gloo connection), but `dae train` on a failed rank leaves at once: its peers may never come."""
    import dae.experiments.train as train_mod
    import dae.train.distributed as distributed

    calls: list[str] = []
    monkeypatch.setattr(distributed, "dist_info", lambda: distributed.DistInfo(0, 2, 0))
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append("leave"))
    distributed.shutdown()
    assert calls == ["barrier", "leave"]
    calls.clear()
    distributed.shutdown(wait=False)
    assert calls == ["leave"]

    waits: list[bool] = []
    monkeypatch.setattr(train_mod, "shutdown", lambda wait=True: waits.append(wait))

    def broken_task(run):
        raise RuntimeError("this rank failed")

    from image_utils import tiny_config

    with pytest.raises(RuntimeError, match="this rank failed"):
        train_mod.train(tiny_config(), tmp_path / "run", make_task=broken_task)
    assert waits == [False]
