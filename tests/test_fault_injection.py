"""Kill `dae train` with SIGKILL at random moments in both DAE stages (and mid-checkpoint-write),
resume each time, and check the result equals an uninterrupted run bit for bit."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from dae.files import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
STEPS = 400
ARGS = [
    "train",
    str(REPO / "configs/toy_vae.yaml"),
    "--set",
    f"train.steps={STEPS}",
    "--set",
    "train.ckpt_every=25",
    "--set",
    "train.log_every=1",
    "--set",
    "schedule.mode=dae",
    "--set",
    "schedule.weak_decoder=dropout2d",
    "--set",
    "train.ema_decay=0.99",
    "--set",
    "train.progress=false",
    "--set",
    "data.n_train=2048",
    "--set",
    "train.tensorboard=false",
]


def launch(out: Path, *extra: str, save_delay: float = 0.0, args=ARGS) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DAE_FAULT_SAVE_DELAY": str(save_delay)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "dae.cli", *args, "--out", str(out), *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def last_step(out: Path) -> int:
    try:
        lines = (out / "metrics.jsonl").read_text().splitlines()
        return json.loads(lines[-1])["step"] if lines else 0
    except (FileNotFoundError, ValueError, IndexError):
        return 0


def kill_when(proc: subprocess.Popen, ready, timeout: float = 900.0) -> bool:
    """SIGKILL `proc` as soon as `ready()` holds; False if it finished first. The deadline is for
    a hung run only, so it is generous: on a loaded machine these runs take minutes, and giving
    up early would fail the test as if resume were broken."""
    deadline = time.time() + timeout
    while proc.poll() is None:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        if time.time() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"the run reached neither its kill point nor its end in {timeout:.0f} s")
        time.sleep(0.002)
    return False


def same_run(full: Path, cut: Path, steps: int) -> None:
    """Final weights, EMA and every metrics row equal; no row lost or repeated."""
    a, b = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    ema_a = load_checkpoint(full / "checkpoints/last.pt")["ema"]
    ema_b = load_checkpoint(cut / "checkpoints/last.pt")["ema"]
    assert all((ema_a[k] == ema_b[k]).all() for k in ema_a)
    rows_full = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    rows_cut = [json.loads(x) for x in (cut / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows_cut] == list(range(1, steps + 1))  # none lost, none twice
    assert rows_cut == rows_full
    assert not list((cut / "checkpoints").glob(".*.tmp"))


def check_checkpoint_whole(out: Path) -> None:
    ckpt = out / "checkpoints" / "last.pt"
    if ckpt.exists():
        load_checkpoint(ckpt)  # raises if half-written


@pytest.mark.slow
def test_sigkill_resume_equals_uninterrupted(tmp_path):
    full = tmp_path / "full"
    assert launch(full).wait() == 0
    rng = random.Random(1234)
    # Two kills in stage 1, three in stage 2 (the boundary is step 200), at random steps.
    targets = sorted(rng.sample(range(10, 190), 2) + rng.sample(range(205, 390), 3))
    cut = tmp_path / "cut"
    kills, mid_write = 0, False
    first = True
    for i, target in enumerate([*targets, None]):
        has_ckpt = (cut / "checkpoints" / "last.pt").exists()
        extra = ["--resume"] if has_ckpt else (["--overwrite"] if not first else [])
        first = False
        if target is None:
            assert launch(cut, *extra).wait() == 0
            break
        if i == 2:
            # Land one kill inside a checkpoint write: slow the write, kill when its temp appears.
            proc = launch(cut, *extra, save_delay=0.5)
            mid_write = kill_when(
                proc,
                lambda t=target: last_step(cut) >= t and any((cut / "checkpoints").glob(".*.tmp")),
            )
        else:
            proc = launch(cut, *extra)
            kill_when(proc, lambda t=target: last_step(cut) >= t)
        kills += 1
        check_checkpoint_whole(cut)
    assert kills == 5 and mid_write
    same_run(full, cut, STEPS)


@pytest.mark.slow
def test_sigkill_resume_on_the_streaming_path(tmp_path):
    """A tiny VQGAN streaming a PNG folder through 2 DataLoader workers (flips on), killed once
    per DAE stage: the resumed run equals the uninterrupted one."""
    from dae.config import to_dict
    from image_utils import synthetic_images, tiny_config, write_image_folder

    steps = 24  # 24 images, batch 4: 6 steps per epoch; stage 2 starts at step 12
    folder = write_image_folder(tmp_path / "images", synthetic_images(24))
    cfg = tiny_config(
        "vqgan",
        data={
            "name": "folder",
            "root": str(folder),
            "image_size": 16,
            "hflip": True,
            "source": "stream",
            "workers": 2,
        },  # fmt: skip
        schedule={"mode": "dae", "weak_decoder": "dropout2d"},
        train={"steps": steps, "ckpt_every": 3, "ema_decay": 0.9},
    )
    config = tmp_path / "stream.yaml"
    config.write_text(yaml.safe_dump(to_dict(cfg)))
    args = ["train", str(config)]
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert launch(full, args=args).wait() == 0
    for i, target in enumerate([5, 16]):
        proc = launch(cut, *(["--resume"] if i else []), args=args)
        assert kill_when(proc, lambda t=target: last_step(cut) >= t)
        check_checkpoint_whole(cut)
    assert launch(cut, "--resume", args=args).wait() == 0
    same_run(full, cut, steps)


# A tiny VQGAN on MNIST with dead-code restarts (their usage clock is a buffer advanced inside the
# step) and the discriminator on: a Ctrl-C saved mid-step would show up in these first.
VQ_STEPS = 60
VQ_ARGS = [
    "train",
    str(REPO / "configs/mnist_vqgan.yaml"),
    *("--set", f"train.steps={VQ_STEPS}", "--set", "train.ckpt_every=10"),
    *("--set", "train.log_every=1", "--set", "train.batch_size=8"),
    *("--set", "model.ch=8", "--set", "model.ch_mult=[1,2]", "--set", "model.attn_resolutions=[]"),
    *("--set", "model.norm_groups=4", "--set", "model.z_channels=8", "--set", "model.n_embed=64"),
    *("--set", "model.embed_dim=8", "--set", "model.restart_dead_codes=3"),
    *("--set", "disc.ndf=8", "--set", "disc.start=5", "--set", "schedule.mode=dae"),
    *("--set", "train.ema_decay=0.9", "--set", "log.image_every=0"),
    *("--set", "train.progress=false", "--set", "train.tensorboard=false"),
]


def launch_vq(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "dae.cli", *VQ_ARGS, "--out", str(out), *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def interrupt_when(proc: subprocess.Popen, ready, delay: float, twice: bool) -> int:
    """SIGINT `proc` `delay` s after `ready()` holds (twice: a second SIGINT right after)."""
    deadline = time.time() + 300
    while proc.poll() is None and not ready() and time.time() < deadline:
        time.sleep(0.002)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        if twice:
            time.sleep(0.01)
            proc.send_signal(signal.SIGINT)
    return proc.wait()


@pytest.mark.slow
def test_sigint_resume_equals_uninterrupted(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("DAE_DATA", str(data_root))  # the children read the data the fixture found
    full = tmp_path / "full"
    assert launch_vq(full).wait() == 0
    rng = random.Random(5)
    # Stage 1 is steps 1-30, stage 2 31-60; random steps and random moments within a step.
    targets = sorted(rng.sample(range(3, 28), 2) + rng.sample(range(32, 56), 2))
    cut = tmp_path / "cut"
    codes = []
    for i, target in enumerate(targets):
        extra = ["--resume"] if (cut / "checkpoints" / "last.pt").exists() else []
        proc = launch_vq(cut, *extra)
        # The third interrupt is a double Ctrl-C: abort at once, keep the last whole checkpoint.
        ready = lambda t=target: last_step(cut) >= t  # noqa: E731
        codes.append(interrupt_when(proc, ready, rng.uniform(0, 0.05), twice=i == 2))
        check_checkpoint_whole(cut)
    assert codes == [130] * len(targets)
    assert launch_vq(cut, "--resume").wait() == 0
    a, b = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert any("usage_clock" in k for k in a)
    full_ckpt, cut_ckpt = (
        load_checkpoint(full / "checkpoints/last.pt"),
        load_checkpoint(cut / "checkpoints/last.pt"),
    )
    for name, state in full_ckpt["modules"].items():
        assert all((state[k] == cut_ckpt["modules"][name][k]).all() for k in state), name
    assert all((full_ckpt["ema"][k] == cut_ckpt["ema"][k]).all() for k in full_ckpt["ema"])
    rows_full = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    rows_cut = [json.loads(x) for x in (cut / "metrics.jsonl").read_text().splitlines()]
    assert rows_cut == rows_full
