"""The seeded study's scripts end to end at a tiny size, on a packed MNIST subset:
scripts/study_all.sh trains (a), (b) and (e), probes, trains the priors, evaluates and reports; a second
invocation finishes a probe that was killed and redoes nothing else."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from dae.data.packed import pack_images

REPO = Path(__file__).resolve().parents[1]


def test_study_all_tiny_and_resumes(tmp_path, data_root):
    data = tmp_path / "mnist_tiny.npz"
    pack_images("mnist", data, n_train=256, n_test=64, root=str(data_root), seed=0)
    study, probes, priors = tmp_path / "study", tmp_path / "probe", tmp_path / "priors"
    env = {
        **os.environ,
        "DAE_DATA": str(data),
        "DAE": str(REPO / ".venv/bin/dae") if (REPO / ".venv/bin/dae").exists() else "dae",
        "FAMILIES": "mnist-vq",
        "STUDY": str(study),
        "PROBES": str(probes),
        "PRIORS": str(priors),
        "SEEDS": "2",
        "S": "8",
        "TEST_EVERY": "4",
        "LOG_EVERY": "2",
        "TEST_IMAGES": "32",
        "PROBE_ARGS": "--steps 3 -n 32 --curve-n 16 --curve-points 2 --prior-steps 2 --prior-images 64"
        " --prior-n 32 --no-fd",
        "STEPS": "2",
        "N": "8",
        "SCORE": "none",
        "N_EVAL": "64",
        "EXTRA": "--lipschitz-every 4",  # study_cpu.sh passes it to every training
    }
    script = str(REPO / "scripts/study_all.sh")
    proc = subprocess.run(["bash", script], env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "FAILED" not in log, log[-4000:]
    report = json.loads((study / "report" / "study.json").read_text())["summary"]["mnist-vq"]
    assert (
        report["dae-a"]["seeds"] == report["dae-b"]["seeds"] == report["dae-e"]["seeds"] == [0, 1]
    )
    assert report["dae-a"]["paired_l1"]["n"] == 2
    # (b) trains S/2 + S: its log ends at 12 steps, (a) at 8
    rows = (study / "mnist-vq-dae-b-s1" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(rows[-1])["step"] == 12
    # (e) trains S + S, and its probe pairs it with the baseline in a table of its own
    rows = (study / "mnist-vq-dae-e-s0" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(rows[-1])["step"] == 16
    lipschitz = [json.loads(r)["step"] for r in rows if "lipschitz/encoder" in r]
    assert lipschitz == [4, 8, 12, 16]
    assert (tmp_path / "probe-e" / "mnist-vq" / "s1" / "probe.json").is_file()
    text = (study / "report" / "study.md").read_text()
    assert "probe w=1: test psnr" in text and "Lipschitz estimate, encoder" in text
    assert "baseline vs DAE (equal encoder steps)" in text
    assert (study / "mnist-vq-dae-e-s1" / "eval.json").is_file()  # (e)'s latent statistics too
    e_table = text.split("baseline vs DAE (equal encoder steps)")[1]
    assert "Lipschitz estimate, encoder" in e_table
    assert "GPT prior, 8 samples: train_loss" in text
    assert (study / "report-mnist-vq" / "report.md").is_file()
    assert (study / "report" / "probe_widths.png").is_file()
    # Everything is finished but one probe, left as a killed `dae probe` leaves it (one run in,
    # "complete": false): a second invocation finishes that probe and redoes nothing else.
    killed = probes / "mnist-vq" / "s0" / "probe.json"
    summary = json.loads(killed.read_text())
    killed.write_text(json.dumps({**summary, "complete": False, "runs": summary["runs"][:1]}))
    again = subprocess.run(["bash", script], env=env, capture_output=True, text=True)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert again.stdout.count("start:") == 1 and f"start: {killed.parent}" in again.stdout
    assert "evaluate:" not in again.stdout
    assert json.loads(killed.read_text()) == summary
    # runs (a), (b), (e), probes (but the killed one), probes of (e), priors
    assert again.stdout.count("done: ") == 4 + 2 + 2 + 1 + 2 + 2


@pytest.mark.parametrize(
    ("only", "arm"), [("baseline", "baseline"), ("dae", "dae-a")], ids=["baseline", "dae"]
)
def test_study_cpu_trains_one_arm_alone(tmp_path, data_root, only, arm):
    """ONLY=baseline (a baseline lr sweep) trains the seeds' baselines and no DAE run; ONLY=dae
    trains (a)'s DAE runs and no baseline (theirs train elsewhere, with other arguments)."""
    data = tmp_path / "mnist_tiny.npz"
    pack_images("mnist", data, n_train=128, n_test=32, root=str(data_root), seed=0)
    env = {
        **os.environ,
        "DAE_DATA": str(data),
        "DAE": str(REPO / ".venv/bin/dae") if (REPO / ".venv/bin/dae").exists() else "dae",
        "OUT": str(tmp_path / "study"),
        "ONLY": only,
        "SEEDS": "2",
        "S": "4",
        "TEST_EVERY": "2",
        "LOG_EVERY": "2",
        "TEST_IMAGES": "16",
    }
    proc = subprocess.run(
        ["bash", str(REPO / "scripts/study_cpu.sh"), "mnist-vq"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "FAILED" not in proc.stdout, (proc.stdout + proc.stderr)[-4000:]
    trained = sorted(p.name for p in (tmp_path / "study").iterdir() if p.is_dir())
    assert trained == [f"mnist-vq-{arm}-s0", f"mnist-vq-{arm}-s1"]
    assert all((tmp_path / "study" / name / "model.safetensors").is_file() for name in trained)
    # PRECISION defaults to auto: bf16 only where the CPU has it natively (fp32 in the suite)
    for name in trained:
        chosen = json.loads((tmp_path / "study" / name / "precision.json").read_text())
        assert (chosen["requested"], chosen["name"]) == ("auto", "fp32")


def test_study_cpu_until_stops_runs_and_a_rerun_without_it_finishes_them(tmp_path, data_root):
    """UNTIL=2 of S=4: a checkpoint at step 2 and no final weights; the same command again leaves
    the run as it is; without UNTIL the run resumes to its end."""
    data = tmp_path / "mnist_tiny.npz"
    pack_images("mnist", data, n_train=128, n_test=32, root=str(data_root), seed=0)
    run = tmp_path / "study" / "mnist-vq-baseline-s0"
    env = {
        **os.environ,
        "DAE_DATA": str(data),
        "DAE": str(REPO / ".venv/bin/dae") if (REPO / ".venv/bin/dae").exists() else "dae",
        "OUT": str(tmp_path / "study"),
        "ONLY": "baseline",
        "SEEDS": "1",
        "S": "4",
        "TEST_EVERY": "2",
        "LOG_EVERY": "2",
        "TEST_IMAGES": "16",
    }

    def study(**more):
        proc = subprocess.run(
            ["bash", str(REPO / "scripts/study_cpu.sh"), "mnist-vq"],
            env={**env, **more},
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0 and "FAILED" not in proc.stdout, proc.stdout + proc.stderr
        return [
            json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
        ]

    assert study(UNTIL="2") == [2]
    assert not (run / "model.safetensors").exists()
    checkpoint = (run / "checkpoints/last.pt").read_bytes()
    assert study(UNTIL="2") == [2] and (run / "checkpoints/last.pt").read_bytes() == checkpoint
    assert study() == [2, 4] and (run / "model.safetensors").is_file()
    # one log a run, appended: each attempt's header and output, the stops' lines kept
    log = (run.parent / f"{run.name}.log").read_text()
    assert log.count("\n== ") + log.startswith("== ") == 3
    assert log.count("stopped after step 2 of 4") == 2


@pytest.mark.parametrize(("prior_seed", "expected"), [(None, "7"), ("101", "101")])
def test_study_priors_prior_seed(tmp_path, prior_seed, expected):
    """PRIOR_SEED retrains the priors on the same latents with another seed (the prior's own
    noise); unset, the priors take the autoencoders' seed. A stand-in for `dae` records the
    compare-priors call, so no prior trains."""
    runs = tmp_path / "runs"
    for arm in ("baseline", "dae-a"):
        (runs / f"cifar10-vq-{arm}-s7").mkdir(parents=True)
        (runs / f"cifar10-vq-{arm}-s7" / "model.safetensors").write_bytes(b"")
    fake = tmp_path / "dae"
    fake.write_text(
        '#!/usr/bin/env bash\nwhile [[ $1 != --out ]]; do shift; done\nmkdir -p "$2"\n'
        'printf "%s\\n" "$@" > "$2/args.txt"\necho "{}" > "$2/results.json"\n'
    )
    fake.chmod(0o755)
    env = {**os.environ, "DAE": str(fake), "RUNS": str(runs), "OUT": str(tmp_path / "priors")}
    env.update({"SEED0": "7", "SEEDS": "1", "JOBS": "1"})
    env.pop("PRIOR_SEED", None)
    if prior_seed is not None:
        env["PRIOR_SEED"] = prior_seed
    proc = subprocess.run(
        ["bash", str(REPO / "scripts/study_priors.sh"), "cifar10-vq"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "FAILED" not in proc.stdout, proc.stdout + proc.stderr
    args = (tmp_path / "priors" / "cifar10-vq" / "s7" / "args.txt").read_text().split()
    assert args[args.index("--seed") + 1] == expected
    assert f"train.seed={expected}" in args


# study_lib.sh is sourced, never run: its caller's braces hold it
RUN_SCRIPTS = sorted(p.name for p in (REPO / "scripts").glob("*.sh") if p.name != "study_lib.sh")


@pytest.mark.parametrize("script", RUN_SCRIPTS)
def test_scripts_are_read_whole_before_they_run(script):
    """bash reads a script as it runs it, so an edit in place (an editor's save, a `git pull`)
    made while a study trains would be read from the old offset: session 55's studies died with
    `unexpected EOF` after their trainings ended. Each script's body is one `{ ...; exit; }`."""
    text = (REPO / "scripts" / script).read_text()
    _, _, body = text.partition("set -euo pipefail\n")
    assert body.startswith("{") and body.rstrip().endswith("exit\n}"), script


def test_study_cpu_survives_an_edit_to_itself_mid_run(tmp_path):
    """A stand-in for `dae train` rewrites the running script in place, shifting every byte; the
    study still ends cleanly and runs nothing of the edited text."""
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "study_cpu.sh"
    script.write_text((REPO / "scripts/study_cpu.sh").read_text())
    fake = tmp_path / "fake_dae"
    # in place (same inode, as an editor's save): `sed -i` makes a new file and would not show it
    rewrite = (
        "p = sys.argv[1]; s = open(p).read(); "
        'open(p, "w").write("#" * 300 + "\\necho EDITED\\n" + s)'
    )
    fake.write_text(
        "#!/usr/bin/env bash\n"
        f"python3 -c 'import sys; {rewrite}' {script}\n"
        "while [[ $# -gt 0 ]]; do [[ $1 == --out ]] && out=$2; shift; done\n"
        'mkdir -p "$out" && : > "$out/model.safetensors"\n'
    )
    fake.chmod(0o755)
    env = {
        **os.environ,
        "DAE": str(fake),
        "OUT": str(tmp_path / "study"),
        "ONLY": "baseline",
        "SEEDS": "1",
        "S": "4",
    }
    proc = subprocess.run(
        ["bash", str(script), "mnist-vq"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "end: " in proc.stdout and "EDITED" not in proc.stdout, proc.stdout + proc.stderr
    assert (tmp_path / "study/mnist-vq-baseline-s0/model.safetensors").is_file()
