"""`dae sweep`: the plan of runs, the paired table from run folders, and kill -> resume end to end."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import save_file

from dae.cli import main
from dae.config import ConfigError
from dae.errors import CorruptFileError, RunFolderError
from dae.metrics.stats import paired_test
from dae.sweep.plan import dae_total_steps, parse_grid, plan_runs
from dae.sweep.report import run_record, summarize_sweep
from dae.sweep.runner import (
    RunnerOptions,
    _measured_as_planned,
    check_runs_match_plan,
    job_commands,
    run_state,
)

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "configs/toy_vae.yaml"
TINY = ("train.tensorboard=false", "data.n_train=512", "data.n_test=128")


def test_plan_rows_seeds_and_budgets(tmp_path):
    grid = parse_grid(["schedule.aux_width=0.25,0.5", "schedule.dropout_p=0.5"])
    runs = plan_runs(TOY, tmp_path, seeds=2, grid=grid, steps=100, overrides=TINY)
    names = [r.variant.name for r in runs[::2]]
    assert names == ["baseline", "dae-aux_width-0.25", "dae-aux_width-0.5", "dae-dropout_p-0.5"]
    assert [r.seed for r in runs[:2]] == [0, 1]
    assert runs[1].dir == tmp_path / "baseline" / "seed1"
    assert "schedule.weak_decoder=dropout2d" in runs[-1].overrides
    assert all(r.steps == 100 for r in runs)  # equal-total: everyone S steps
    # equal-decoder: the DAE stage 2 gets exactly S steps, stage 1 on top
    grid = parse_grid(["schedule.stage1_fraction=0.3,0.5"])
    runs = plan_runs(TOY, tmp_path, 1, grid, "equal-decoder", steps=101, overrides=TINY)
    # 201 for 0.5: round(100.5) == 100 (round half to even), so stage 2 has 101 steps
    assert [r.steps for r in runs] == [101, dae_total_steps_of(0.3, 101), 201]
    for run in runs[1:]:
        from dae.experiments import load_experiment_config
        from dae.schedule import DAESchedule

        cfg = load_experiment_config(TOY, list(run.overrides))[1]
        assert cfg.train.steps - DAESchedule(cfg.schedule, cfg.train.steps).boundary == 101


def dae_total_steps_of(fraction: float, stage2: int) -> int:
    from dae.schedule import ScheduleConfig

    return dae_total_steps(ScheduleConfig(mode="dae", stage1_fraction=fraction), stage2)


def test_bad_grid_fails_before_training(tmp_path):
    with pytest.raises(ConfigError, match="schedule.aux_widht"):
        plan_runs(TOY, tmp_path, 1, parse_grid(["schedule.aux_widht=0.5"]))
    with pytest.raises(ConfigError, match="aux_width"):
        plan_runs(TOY, tmp_path, 1, parse_grid(["schedule.aux_width=1.5"]))
    with pytest.raises(ConfigError, match="KEY=v1,v2"):
        parse_grid(["schedule.aux_width="])


def _fake_run(run, mse: float, psnr: float, nll: float | None) -> None:
    run.dir.mkdir(parents=True)
    (run.dir / "eval.json").write_text(json.dumps({"metrics": {"mse": mse, "psnr": psnr}}))
    if nll is not None:
        (run.dir / "probe").mkdir()
        entry = {
            "run": {"name": run.dir.name},
            "decoders": [{"width": 0.5, "test": {"psnr": psnr - 1}}],
            "prior": {"test_nll_per_token": nll},
        }
        probe = {"version": 1, "config": {"steps": 4}, "runs": [entry]}  # `dae probe`'s layout
        (run.dir / "probe" / "probe.json").write_text(json.dumps(probe))


def test_table_rows_and_paired_stats_come_from_the_run_folders(tmp_path):
    grid = parse_grid(["schedule.aux_width=0.25,0.75"])
    runs = plan_runs(TOY, tmp_path, seeds=4, grid=grid, overrides=TINY)
    mse = {}
    for i, run in enumerate(runs):
        mse[run.label] = 0.1 + 0.01 * ((7 * i) % 5) + 0.001 * run.seed
        _fake_run(run, mse[run.label], 20 - 10 * mse[run.label], 3.0 + run.seed)
    summary = summarize_sweep([run_record(r) for r in runs], {"config": "toy", "seeds": 4})
    assert list(summary["table"]) == ["baseline", "dae-aux_width-0.25", "dae-aux_width-0.75"]
    assert summary["proxy_sources"] == ["probe:prior/test_nll_per_token"]
    base = [mse[f"baseline/seed{s}"] for s in range(4)]
    for variant in ("dae-aux_width-0.25", "dae-aux_width-0.75"):
        other = [mse[f"{variant}/seed{s}"] for s in range(4)]
        got = summary["paired_vs_baseline"][variant]["mse"]
        want = paired_test(base, other)
        assert got["mean_diff"] == pytest.approx(want.mean_diff)
        assert got["t_p"] == pytest.approx(want.t_p)
        assert got["sign_p"] == pytest.approx(want.sign_p)
        assert (got["wins"], got["losses"]) == (want.wins, want.losses)
    assert summary["table"]["baseline"]["metrics"]["mse"]["n"] == 4
    # The proxy is the same per seed for every variant here: a zero difference, no test.
    proxy = summary["paired_vs_baseline"]["dae-aux_width-0.25"]["proxy"]
    assert proxy["mean_diff"] == 0.0 and proxy["ties"] == 4
    # Holm over every defined t-test of the paired table (both variants): the smallest p is
    # multiplied by their number, and no adjusted p is below its own
    tests = [t for v in summary["paired_vs_baseline"].values() for t in v.values()]
    defined = [t for t in tests if not math.isnan(t["t_p"])]
    smallest = min(defined, key=lambda t: t["t_p"])
    assert smallest["t_p_holm"] == pytest.approx(min(1.0, len(defined) * smallest["t_p"]))
    assert all(t["t_p_holm"] >= t["t_p"] for t in defined) and math.isnan(proxy["t_p_holm"])
    # "variant better" counts the seeds by the metric's direction: lower MSE, higher PSNR
    from dae.sweep.report import markdown

    md = markdown({**summary, "protocol": "p", "budget": "b"})
    got = summary["paired_vs_baseline"]["dae-aux_width-0.75"]
    better_mse, better_psnr = got["mse"]["losses"], got["psnr"]["wins"]
    assert better_mse == better_psnr  # PSNR falls as MSE rises here
    assert f"| {got['mse']['wins']} / 0 / {better_mse} | {better_mse}/4 |" in md
    assert f"| {better_psnr}/4 |" in md.split("| dae-aux_width-0.75 | psnr ↑ |")[1].split("\n")[0]
    assert "| variant better | t-test p | sign-test p | t-test p, Holm |" in md


def test_a_corrupt_eval_or_probe_file_is_named_with_the_fix(tmp_path):
    runs = plan_runs(TOY, tmp_path, seeds=1, grid={}, overrides=TINY)
    _fake_run(runs[0], 0.1, 20.0, 3.0)
    assert run_record(runs[0])["metrics"]["psnr"] == 20.0
    for name in ("eval.json", "probe/probe.json"):
        good = (runs[0].dir / name).read_text()
        (runs[0].dir / name).write_text(good[: len(good) // 2])  # cut short
        with pytest.raises(CorruptFileError, match=f"{name}: corrupt .*run `dae sweep` again"):
            run_record(runs[0])
        (runs[0].dir / name).write_text(good)


def test_run_state_and_commands(tmp_path):
    run = plan_runs(TOY, tmp_path, 1, {}, overrides=TINY)[0]
    opts = RunnerOptions(config=TOY, eval_metrics="recon")
    assert run_state(run.dir) == "new"
    commands, _ = job_commands(run, opts, probe=True)
    assert [c[0] for c in commands] == ["train", "evaluate", "probe"]
    assert commands[0][-1] == "--overwrite"
    (run.dir / "checkpoints").mkdir(parents=True)
    (run.dir / "checkpoints" / "last.pt").write_bytes(b"")
    assert run_state(run.dir) == "partial"
    assert job_commands(run, opts, probe=False)[0][0][-1] == "--resume"
    save_file({}, run.dir / "model.safetensors")
    (run.dir / "eval.json").write_text("{}")
    assert run_state(run.dir) == "done"
    assert job_commands(run, opts, probe=False)[0] == []  # nothing left to do


def test_a_folder_of_another_plan_is_refused_not_reused(tmp_path, capsys):
    """A finished run is never retrained, so a rerun with another budget must not adopt it."""
    plan = {"schedule.aux_width": (0.5,)}
    run = plan_runs(TOY, tmp_path, 1, plan, steps=8, overrides=TINY)[0]
    train = ["train", str(TOY), "--out", str(run.dir)]
    assert main([*train, *[a for o in run.overrides for a in ("--set", o)]]) == 0
    check_runs_match_plan([run], TOY)  # the plan that made it
    other = plan_runs(TOY, tmp_path, 1, plan, steps=16, overrides=TINY)[0]
    assert other.dir == run.dir
    with pytest.raises(RunFolderError, match="a run of another sweep plan .train.steps: 8 in"):
        check_runs_match_plan([other], TOY)
    args = ["sweep", str(TOY), "--out", str(tmp_path), "--seeds", "1", "--report-only"]
    args += ["--grid", "schedule.aux_width=0.5", "--steps", "16"]
    assert main([*args, *[a for o in TINY for a in ("--set", o)]]) == 1
    assert "a run of another sweep plan" in capsys.readouterr().err
    # A value training measured (planned None) is not a difference.
    assert _measured_as_planned(
        {"model": {"scaling_factor": 0.3, "ch": 8}}, {"model": {"scaling_factor": None, "ch": 8}}
    ) == {"model": {"scaling_factor": None, "ch": 8}}


def _sweep_args(out: Path) -> list[str]:
    args = ["sweep", str(TOY), "--out", str(out), "--seeds", "2", "--jobs", "2", "--steps", "600"]
    args += ["--grid", "schedule.aux_width=0.5", "--eval-metrics", "recon", "--no-probe"]
    for override in (*TINY, "train.ckpt_every=50", "train.log_every=50"):
        args += ["--set", override]
    return args


@pytest.mark.slow  # ~40 s on 2 idle cores (6 processes); minutes on a loaded machine
def test_killed_sweep_resumes_without_redoing_finished_runs(tmp_path):
    out = tmp_path / "sweep"
    # Slow every atomic write down (the robustness suite's fault-injection knob) so that the
    # sweep is surely caught with one run finished and another one between checkpoints.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DAE_FAULT_SAVE_DELAY": "0.1"}
    cmd = [sys.executable, "-m", "dae.cli", *_sweep_args(out)]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    runs = [out / v / f"seed{s}" for v in ("baseline", "dae-aux_width-0.5") for s in (0, 1)]
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        states = [run_state(r) for r in runs]
        if "done" in states and "partial" in states:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert "done" in states and "partial" in states, proc.stdout.read().decode()[-2000:]
    finished = {
        r: (r / "model.safetensors").stat().st_mtime_ns for r, s in zip(runs, states) if s == "done"
    }
    half = [r for r, s in zip(runs, states) if s == "partial"]

    assert main(_sweep_args(out)) == 0
    for run, mtime in finished.items():
        assert (run / "model.safetensors").stat().st_mtime_ns == mtime  # not retrained
    for run in half:
        assert "--resume" in (run / "sweep.log").read_text().split("$ dae train")[-1]
    summary = json.loads((out / "sweep.json").read_text())
    assert list(summary["table"]) == ["baseline", "dae-aux_width-0.5"]
    assert [r["seed"] for r in summary["runs"]] == [0, 1, 0, 1]
    evals = [json.loads((r / "eval.json").read_text())["metrics"]["mse"] for r in runs]
    want = paired_test(evals[:2], evals[2:])
    assert summary["paired_vs_baseline"]["dae-aux_width-0.5"]["mse"]["mean_diff"] == pytest.approx(
        want.mean_diff
    )
    assert "| dae-aux_width-0.5 | mse ↓ |" in (out / "sweep.md").read_text()


def test_report_states_the_overrides_and_the_baselines_own(tmp_path):
    from dae.sweep.report import markdown

    runs = plan_runs(TOY, tmp_path, seeds=1, grid=parse_grid(["schedule.aux_width=0.5"]))
    for run in runs:
        _fake_run(run, 0.1, 20.0, None)
    records = [run_record(r) for r in runs]
    head = {"config": "toy", "seeds": 1, "protocol": "p", "budget": "b"}
    sets = {"overrides": ["disc.max_weight=0.05"], "baseline_overrides": ["disc.max_weight=1e4"]}
    md = markdown(summarize_sweep(records, {**head, **sets}))
    want = (
        "Every run: `disc.max_weight=0.05`.\n\n"
        "The baseline only, applied last: `disc.max_weight=1e4`."
    )
    assert f"\n{want}\n" in md
    # an older sweep.json without the keys, or a sweep without overrides, says nothing of them
    plain = markdown(summarize_sweep(records, {**head, "baseline_overrides": []}))
    assert "Every run" not in plain and "baseline only" not in plain


def test_runs_whose_discriminator_gave_no_signal_are_named_under_the_table(tmp_path):
    from dae.sweep.report import markdown

    runs = plan_runs(TOY, tmp_path, seeds=1, grid=parse_grid(["schedule.aux_width=0.5"]))
    for run, (d_loss, gap) in zip(runs, [(0.4, 2.0), (1.0, 0.0)], strict=True):
        _fake_run(run, 0.1, 20.0, None)
        rows = [
            {"step": s, "stage": "stage2", "d_loss": d_loss, "logits_real": gap, "logits_fake": 0.0}
            for s in (50, 100)
        ]
        (run.dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = [run_record(r) for r in runs]
    assert records[0]["discriminator"][0]["verdict"] == "learning"
    assert records[1]["discriminator"] == [
        {"stage": "stage2", "verdict": "at chance", "d_loss": 1.0, "chance": 1.0,
         "logit_gap": 0.0, "tail_from": 100, "last_step": 100}
    ]  # fmt: skip
    md = markdown(summarize_sweep(records, {"config": "toy", "seeds": 1, "protocol": "p",
                                            "budget": "b"}))  # fmt: skip
    assert md.endswith(
        "tables and plots them):\n\n- dae-aux_width-0.5 seed 0: stage2 at chance over steps "
        "100–100 (d_loss 1, chance 1; logit real − fake 0)\n"
    )


def test_report_says_which_runs_have_not_flattened(tmp_path):
    from dae.sweep.report import markdown

    runs = plan_runs(TOY, tmp_path, seeds=1, grid=parse_grid(["schedule.aux_width=0.5"]))
    head = {"config": "toy", "seeds": 1, "protocol": "p", "budget": "b"}
    for run in runs:
        _fake_run(run, 0.1, 20.0, None)
    md = markdown(summarize_sweep([run_record(r) for r in runs], head))
    assert "Convergence not measured: no run logged held-out test rows" in md
    assert "| baseline | 1000 | 1 | – |" in md

    # held-out rows at steps 100..1000; the windows (600, 800] and (800, 1000] of the run
    curves = {
        "baseline": [1.0] * 6 + [0.5, 0.5, 0.5, 0.495],  # gain 0.5 %: flat
        "dae-aux_width-0.5": [1.0] * 6 + [0.5, 0.5, 0.4, 0.4],  # gain 20 %: not flat
    }
    for run in runs:
        rows = [
            {"step": 100 * (i + 1), "stage": "joint", "test_rec": v, "test_psnr": 20.0}
            for i, v in enumerate(curves[run.variant.name])
        ]
        (run.dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = [run_record(r) for r in runs]
    assert records[0]["flatness"] == pytest.approx(0.0025 / 0.5)
    assert records[0]["test_curve"] == [
        [100 * (i + 1), v] for i, v in enumerate(curves["baseline"])
    ]
    assert records[1]["flatness"] == pytest.approx(0.2)
    summary = summarize_sweep(records, head)
    assert summary["table"]["dae-aux_width-0.5"]["max_flatness"] == pytest.approx(0.2)
    md = markdown(summary)
    assert "| baseline | 1000 | 1 | 0.5 % |" in md
    assert "| dae-aux_width-0.5 | 1000 | 1 | 20.0 % |" in md
    assert "Not flat: dae-aux_width-0.5 seed 0 (20.0 %);" in md
    assert "baseline seed 0" not in md.split("Not flat:")[1].split("\n")[0]


def test_curves_figure_averages_the_seeds_held_out_rows(tmp_path):
    from dae.sweep.figures import mean_curve, plot_test_curves

    # a run cut short (seed 2) ends the mean at the last step every seed logged
    steps, mean, (lo, hi) = mean_curve([[[100, 0.4], [200, 0.2]], [[100, 0.6], [200, 0.4]],
                                        [[100, 0.5]]])  # fmt: skip
    assert steps == [100] and mean == pytest.approx([0.5])
    assert (lo.tolist(), hi.tolist()) == ([0.4], [0.6])
    steps, mean, _ = mean_curve([[[100, 0.4], [200, 0.2]], [[100, 0.6], [200, 0.4]]])
    assert steps == [100, 200] and mean == pytest.approx([0.5, 0.3])

    summary = {"config": "toy", "runs": [{"variant": "baseline", "test_curve": []}]}
    assert plot_test_curves(summary, tmp_path / "none.png") is False
    assert not (tmp_path / "none.png").exists()
    summary["runs"] += [
        {"variant": v, "test_curve": [[100, 0.5 + s / 10], [200, 0.3]]}
        for v in ("baseline", "dae-aux_width-0.5")
        for s in range(2)
    ]
    assert plot_test_curves(summary, tmp_path / "curves.png") is True
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
