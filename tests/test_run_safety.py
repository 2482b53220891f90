"""Run-folder safety: `--overwrite` deletes only what dae wrote, special and input folders are
refused as `--out`, and a live run is locked against a second writer."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dae.cli import main
from dae.runsafety import RunFolderError, RunLock, check_out_path

REPO = Path(__file__).resolve().parents[1]
TOY = [
    "train",
    str(REPO / "configs/toy_vae.yaml"),
    "--set",
    "train.progress=false",
    "--set",
    "train.steps=4",
    "--set",
    "train.tensorboard=false",
]


def _project(folder: Path) -> dict[Path, str]:
    """A user's project folder that merely happens to have a `checkpoints/` folder."""
    files = {
        folder / "src" / "model.py": "print('mine')\n",
        folder / "notes.md": "my notes\n",
        folder / "checkpoints" / "mine.pt": "weights I trained elsewhere\n",
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return files


def test_overwrite_refuses_a_folder_that_is_not_a_dae_run(tmp_path, capsys):
    files = _project(tmp_path / "proj")
    assert main([*TOY, "--out", str(tmp_path / "proj"), "--overwrite"]) == 1
    assert "not a dae run" in capsys.readouterr().err
    assert all(path.read_text() == text for path, text in files.items())
    assert not (tmp_path / "proj" / "config.yaml").exists()


def test_overwrite_deletes_only_dae_files(tmp_path):
    run = tmp_path / "run"
    assert main([*TOY, "--out", str(run)]) == 0
    before = (run / "model.safetensors").read_bytes()
    mine = {run / "notes.md": "notes\n", run / "checkpoints" / "mine.pt": "kept\n"}
    for path, text in mine.items():
        path.write_text(text)
    (run / "metrics.jsonl").write_text('{"step": 99, "stale": 1}\n')
    assert main([*TOY, "--out", str(run), "--overwrite", "--set", "train.seed=1"]) == 0
    assert all(path.read_text() == text for path, text in mine.items())
    assert "stale" not in (run / "metrics.jsonl").read_text()
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["seed"] == 1
    assert (run / "model.safetensors").read_bytes() != before


@pytest.mark.parametrize("out", ["", ".", "/", "~", "..", "~/"])
def test_special_out_folders_are_refused(tmp_path, monkeypatch, capsys, out):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("x")
    monkeypatch.chdir(work)
    assert main([*TOY, "--out", out, "--overwrite"]) == 1
    assert "--out" in capsys.readouterr().err
    assert sorted(p.name for p in work.iterdir()) == ["keep.txt"]


def _fake_ae_run(folder: Path) -> Path:
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"kind": "vqgan", "train": {}}))
    (folder / "model.safetensors").write_bytes(b"the trained autoencoder")
    return folder


def test_train_prior_refuses_out_that_is_or_contains_its_ae_run(tmp_path, capsys):
    ae = _fake_ae_run(tmp_path / "runs" / "ae")
    preset = str(REPO / "configs/prior_gpt_cifar10.yaml")
    for out in (ae, tmp_path / "runs", tmp_path):
        assert main(["train-prior", str(ae), preset, "--out", str(out), "--overwrite"]) == 1
        assert "is or contains the input run" in capsys.readouterr().err
    assert (ae / "model.safetensors").read_bytes() == b"the trained autoencoder"


def test_compare_priors_refuses_out_that_contains_an_input_run(tmp_path, capsys):
    base, dae = _fake_ae_run(tmp_path / "base"), _fake_ae_run(tmp_path / "dae")
    preset = str(REPO / "configs/prior_gpt_cifar10.yaml")
    args = ["compare-priors", str(base), str(dae), preset, "--out", str(tmp_path)]
    assert main(args) == 1
    assert "is or contains the input run" in capsys.readouterr().err
    with pytest.raises(RunFolderError):
        check_out_path(tmp_path / "dae", [dae])


def test_second_live_resume_is_refused_and_a_stale_lock_is_not(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TOY, "--set", "train.ckpt_every=2", "--out", str(run)]) == 0
    # A live holder in another process: its flock makes `--resume` refuse, naming its pid.
    hold = (
        "import pathlib, sys; from dae.runsafety import RunLock; RunLock(pathlib.Path(sys.argv[1]))"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold + "; print('held', flush=True); input()", str(run)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    try:
        assert holder.stdout.readline() == b"held\n"
        rows = (run / "metrics.jsonl").read_text()
        assert main([*TOY, "--set", "train.ckpt_every=2", "--out", str(run), "--resume"]) == 1
        err = capsys.readouterr().err
        assert "in use by another dae process" in err and f"pid {holder.pid}" in err
        assert (run / "metrics.jsonl").read_text() == rows  # nothing touched
    finally:
        holder.kill()
        holder.wait()
    # The holder died (SIGKILL): its lock file stays but the lock is gone, so resume works.
    assert (run / ".dae.lock").exists()
    assert main([*TOY, "--set", "train.ckpt_every=2", "--out", str(run), "--resume"]) == 0
    with RunLock(run):  # and the resumed run released it
        pass


def test_resume_says_where_and_removes_a_killed_writers_temporaries(tmp_path, capsys):
    run = tmp_path / "run"
    args = [*TOY, "--set", "train.ckpt_every=2", "--out", str(run)]
    assert main(args) == 0
    stale = run / ".model.safetensors.k1ll3d.tmp"  # what a kill during the final save leaves
    stale.write_bytes(b"half")
    capsys.readouterr()
    assert main([*args, "--resume"]) == 0
    assert "resuming " + str(run) + " from step 4 of 4" in capsys.readouterr().out
    assert not stale.exists()


def test_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        assert main([*TOY, "--out", str(tmp_path / "run")]) == 0
    finally:
        os.umask(old)
    for name in ("model.safetensors", "config.yaml", "checkpoints/last.pt"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name


def test_reproduce_toy_never_overwrites_silently(tmp_path, capsys):
    out = tmp_path / "toy"
    args = ["reproduce", "toy", "--seeds", "2", "--workers", "1", "--out", str(out)]
    for item in ("train.steps=4", "data.n_train=256", "data.n_test=64", "train.batch_size=32"):
        args += ["--set", item]
    assert main(args) == 0
    (out / "results.json").write_text("my earlier results")
    assert main(args) == 1
    assert "already holds results" in capsys.readouterr().err
    assert (out / "results.json").read_text() == "my earlier results"
    assert main([*args, "--overwrite"]) == 0
    assert (out / "results.json").read_text() != "my earlier results"


def test_results_of_one_command_are_never_replaced_by_another(tmp_path, capsys):
    """`reproduce toy / gan / theory`, `complexity` and `compare-priors` share file names
    (results.json, results.md): each refuses another's folder, even with --overwrite."""
    out = tmp_path / "toy"
    args = ["reproduce", "toy", "--seeds", "2", "--workers", "1", "--out", str(out)]
    for item in ("train.steps=4", "data.n_train=256", "data.n_test=64", "train.batch_size=32"):
        args += ["--set", item]
    assert main(args) == 0
    table = (out / "results.json").read_bytes()
    for other in (
        ["reproduce", "theory", "--out", str(out), "--overwrite"],
        ["complexity", "--out", str(out), "--overwrite"],
        ["reproduce", "gan", "--out", str(out), "--overwrite"],
        ["compare-priors", "a", "b", "configs/prior_gpt_cifar10.yaml", "--out", str(out)],
    ):
        assert main(other) == 1, other
        err = capsys.readouterr().err
        assert "holds the results of `dae reproduce toy`; choose another folder" in err, other
    assert main(["reproduce", "gan", "--rescore", "--out", str(out)]) == 1
    assert "--rescore: no table of `dae reproduce gan`" in capsys.readouterr().err
    assert (out / "results.json").read_bytes() == table
    # A folder from before the commands were recorded: its own command replaces it when asked.
    (out / ".dae-results").unlink()
    assert main(args) == 1 and main([*args, "--overwrite"]) == 0


def test_a_forked_child_does_not_keep_the_run_lock(tmp_path):
    """DataLoader workers are forked while the lock is held: once the owner lets go (or is
    killed), a new run takes the lock although the child still lives."""
    import os
    import signal

    from dae.runsafety import RunLock

    lock = RunLock(tmp_path)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child (its fork hooks have run): say so, then outlive the owner's lock
        import time

        os.write(ready_w, b"1")
        time.sleep(30)
        os._exit(0)
    try:
        os.read(ready_r, 1)
        lock.release()
        RunLock(tmp_path).release()  # refused before: the child's copy held the flock
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
