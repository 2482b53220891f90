"""dae.metrics.curves: has a run's held-out test curve flattened (issue 13's criterion)."""

from __future__ import annotations

import json
import math

import pytest

from dae.metrics.curves import (
    convergence,
    final_stage_flatness,
    flatness,
    held_out_curve,
    point_flatness,
)
from dae.metrics.report import write_report
from dae.run_folder import RunFolder


def test_held_out_curve_keeps_only_rows_with_a_test_measurement():
    rows = [
        {"step": 50, "stage": "stage1", "rec": 0.3},
        {"step": 100, "stage": "stage1", "test_rec": 0.2, "test_psnr": 20.0},
        {"step": 150, "stage": "stage1", "rec": 0.25},
        {"step": 200, "stage": "stage2", "test_rec": 0.1, "test_psnr": 23.0, "test_latent_dims": 3},
    ]
    curve = held_out_curve(rows)
    assert curve.steps == [100, 200]
    assert curve.l1 == [0.2, 0.1]
    assert curve.psnr == [20.0, 23.0]
    assert curve.stages == ["stage1", "stage2"]
    assert curve.dims == [(200, 3)]


def test_flatness_known_value():
    steps = [100 * i for i in range(1, 11)]
    l1 = [1, 1, 1, 1, 1, 1, 0.5, 0.5, 0.4, 0.4]
    # windows (600, 800] -> steps 700, 800 (mean 0.5); (800, 1000] -> 900, 1000 (mean 0.4)
    assert flatness(steps, l1) == pytest.approx(0.2)


def test_point_flatness_reads_the_last_20_percent_point_to_point():
    steps = [100 * i for i in range(1, 11)]
    # a drop before 80 % (step 800) is the windows' gain, not the points'
    l1 = [1, 1, 1, 1, 1, 1, 0.5, 0.4, 0.4, 0.4]
    assert flatness(steps, l1) == pytest.approx(0.05 / 0.45)
    # the 3 points nearest step 800 (700, 800, 900: mean 0.4333) against 800-1000 (mean 0.4)
    assert point_flatness(steps, l1) == pytest.approx(1 - 0.4 / (1.3 / 3))
    l1 = [1, 1, 1, 1, 1, 1, 1, 1, 0.5, 0.5]  # the drop after 80 % counts
    assert point_flatness(steps, l1) == pytest.approx(1 - (2 / 3) / (2.5 / 3))
    assert math.isnan(point_flatness(steps[:5], l1[:5]))  # too few points


def test_final_stage_flatness_measures_the_last_stage_alone():
    steps = [100 * i for i in range(1, 21)]
    stages = ["stage1"] * 10 + ["stage2"] * 10
    l1 = [0.5] * 10 + [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.3, 0.2, 0.2]
    # whole run: (1200, 1600] -> 0.7, 0.6, 0.5, 0.4 (mean 0.55); (1600, 2000] -> mean 0.25
    assert flatness(steps, l1) == pytest.approx(0.3 / 0.55)
    # stage 2 spans (1000, 2000]: (1600, 1800] -> 0.3, 0.3; (1800, 2000] -> 0.2, 0.2
    assert final_stage_flatness(steps, l1, stages) == pytest.approx(1 / 3)
    # a one-stage run: the same as the whole run's
    joint = ["joint"] * 20
    assert final_stage_flatness(steps, l1, joint) == flatness(steps, l1)


def test_flatness_is_nan_without_enough_rows():
    assert math.isnan(flatness([], []))
    assert math.isnan(final_stage_flatness([], [], []))
    assert math.isnan(flatness([100, 1000], [0.5, 0.4]))  # no row in (600, 800]


def _write_run(path, l1, stages):
    path.mkdir(parents=True)
    rows = [
        {"step": 100 * (i + 1), "stage": g, "test_rec": v, "test_psnr": 30 - 10 * v}
        for i, (v, g) in enumerate(zip(l1, stages, strict=True))
    ]
    rows.insert(0, {"step": 50, "stage": stages[0], "rec": 1.0})  # a training row only
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_convergence_and_the_table_dae_report_writes(tmp_path):
    joint, dae, short, none = (tmp_path / n for n in ("joint", "dae", "short", "none"))
    _write_run(joint, [1.0] * 6 + [0.5, 0.5, 0.5, 0.495], ["joint"] * 10)
    # stage 2 spans (1000, 2000]: its windows are flat though the whole run is not
    _write_run(dae, [0.9] * 10 + [0.8, 0.6, 0.5, 0.45, 0.4, 0.4, 0.3, 0.3, 0.3, 0.3],
               ["stage1"] * 10 + ["stage2"] * 10)  # fmt: skip
    _write_run(short, [0.5, 0.4], ["joint", "joint"])
    none.mkdir()
    (none / "metrics.jsonl").write_text(json.dumps({"step": 50, "rec": 0.1}) + "\n")

    got = convergence(RunFolder(dae).read_metrics())
    assert (got["step"], got["stage"], got["rows"], got["test_l1"]) == (2000, "stage2", 20, 0.3)
    assert got["stage_flatness"] == pytest.approx(0.0) and got["flat"] is True
    assert got["flatness"] == pytest.approx(1 - 0.3 / 0.4375)  # (1200, 1600] mean 0.4375
    assert convergence(RunFolder(joint).read_metrics())["flat"] is True  # 0.5 % gain
    assert convergence(RunFolder(short).read_metrics())["flat"] is None  # too few rows
    assert convergence(RunFolder(none).read_metrics()) is None

    md = write_report([joint, dae, short, none], tmp_path / "out").read_text()
    table = [line for line in md.splitlines() if line.startswith(("| joint", "| dae", "| short"))]
    assert table == [
        "| joint | 1000 (joint) | 0.495 | 25.05 | 0.50 % | 0.50 % | 0.33 % | yes |",
        "| dae | 2000 (stage2) | 0.3 | 27.00 | 0.00 % | 31.43 % | 18.18 % | yes |",
        "| short | 200 (joint) | 0.4 | 26.00 | – | – | – | too few rows |",
    ]
    assert "| none |" not in md
    _write_run(tmp_path / "steep", [1.0] * 6 + [0.5, 0.5, 0.4, 0.4], ["joint"] * 10)
    md = write_report([tmp_path / "steep"], tmp_path / "out2").read_text()
    assert "| steep | 1000 (joint) | 0.4 | 26.00 | 20.00 % | 20.00 % | 7.14 % | **no** |" in md
    assert "## Convergence" not in write_report([none], tmp_path / "out3").read_text()


def test_convergence_notes_say_flat_or_not_as_dae_train_prints_them(tmp_path):
    from dae.metrics.report import convergence_notes

    _write_run(tmp_path / "flat", [1.0] * 6 + [0.5, 0.5, 0.5, 0.495], ["joint"] * 10)
    _write_run(tmp_path / "steep", [1.0] * 6 + [0.5, 0.5, 0.4, 0.4], ["stage2"] * 10)
    _write_run(tmp_path / "short", [0.5, 0.4], ["joint", "joint"])
    (tmp_path / "none").mkdir()
    runs = [tmp_path / n for n in ("flat", "steep", "short", "none")]
    assert [convergence_notes([r]) for r in runs] == [
        [
            "flat: held-out test L1 0.495 (PSNR 25.05) at step 1000; the last 20 % of its joint "
            "steps gained 0.50 %: flat (under 2 %)"
        ],
        [
            "steep: held-out test L1 0.4 (PSNR 26.00) at step 1000; the last 20 % of its stage2 "
            "steps gained 20.00 %: not flat (2 % or more), more steps may still help"
        ],
        [
            "short: held-out test L1 0.4 (PSNR 26.00) at step 200; too few held-out rows in its "
            "final stage to tell whether it has converged"
        ],
        [],
    ]
