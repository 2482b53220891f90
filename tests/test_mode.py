"""dae.metrics.mode: the commitment-loss jump that marks a VQ run's better codebook mode, and the
table `dae report` writes from it."""

from __future__ import annotations

import json

import pytest

from dae.metrics.mode import commitment_series, jump_step, mode_series, run_mode, settled_since
from dae.metrics.report import write_report

# falls from its initial value (no jump on the way down), rises early and falls back (not the
# jump), settles on a plateau, drifts up 1.6x, then jumps for good
STEPS = list(range(100, 1400, 100))
VALUES = [16.0, 0.02, 0.055, 0.03, 0.02, 0.016, 0.02, 0.021, 0.025, 0.032, 0.039, 0.041, 0.09]


def test_mode_series_averages_stage1_commitment_and_keeps_test_curve():
    rows = [
        {"step": 50, "stage": "stage1", "commitment": 1.0},
        {"step": 100, "stage": "stage1", "commitment": 3.0, "test_rec": 0.5},
        {"step": 150, "stage": "stage1", "commitment": 5.0},
        {"step": 200, "stage": "stage2", "commitment": 100.0, "test_rec": 0.4},  # frozen encoder
    ]
    got = mode_series(rows, start=100, window=2)
    assert got["test_steps"] == [100, 200] and got["test_l1"] == [0.5, 0.4]
    # trailing means over two rows, stage 2 left out, rows before `start` only feed the mean
    assert got["commit_steps"] == [100, 150]
    assert got["commitment"] == [2.0, 4.0]
    assert commitment_series(rows, start=0, window=3) == ([50, 100, 150], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="not a VQ run"):
        mode_series([{"step": 50, "rec": 0.1, "test_rec": 0.2}])
    with pytest.raises(ValueError, match="zero throughout"):
        mode_series([{"step": 50, "commitment": 0.0, "test_rec": 0.2}])
    with pytest.raises(ValueError, match="no held-out test L1 from step 300"):
        mode_series(rows, start=300)


def test_jump_step_is_the_first_rise_off_the_lowest_value():
    assert jump_step(STEPS, VALUES, factor=2.5) == 1200
    assert jump_step(STEPS, VALUES, factor=1.5) == 900
    assert jump_step(STEPS[:11], VALUES[:11], factor=2.5) is None
    with pytest.raises(ValueError, match="factor must be > 1"):
        jump_step(STEPS, VALUES, factor=1.0)
    with pytest.raises(ValueError, match="13 steps but 2 values"):
        jump_step(STEPS, VALUES[:2])


def rows_of(values, stage="joint"):
    steps = range(100, 100 * len(values) + 1, 100)
    return [
        {"step": s, "stage": stage, "commitment": v} for s, v in zip(steps, values, strict=True)
    ]


def test_run_mode_names_the_jump_and_the_plateau_before_it():
    got = run_mode(rows_of(VALUES), window=1)
    assert got["jump_step"] == 1200 and got["lowest"] == 0.016
    assert got["last"] == 0.09 and got["last_step"] == 1300
    # no jump yet: the lowest value is the run's lowest
    got = run_mode(rows_of(VALUES[:11]), window=1)
    assert got["jump_step"] is None and got["lowest"] == 0.016 and got["last"] == 0.039
    # a DAE run's stage-2 rows (frozen encoder) neither make nor hide a jump
    stage2 = [{"step": 1400 + 100 * i, "stage": "stage2", "commitment": 1.0} for i in range(3)]
    got = run_mode(rows_of(VALUES[:11], "stage1") + stage2, window=1)
    assert got["jump_step"] is None and got["last_step"] == 1100
    assert run_mode([{"step": 50, "rec": 0.1}]) is None  # KL-AE, toy: no commitment term
    assert run_mode([{"step": 50, "commitment": 0.0}]) is None  # FSQ logs zeros


def write_run(path, rows):
    path.mkdir(parents=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_report_tables_the_vq_runs_jump(tmp_path):
    jumped, flat, kl = tmp_path / "jumped", tmp_path / "flat", tmp_path / "kl"
    # the default window averages 8 log rows: 0.02 for nine rows, then 0.11 (5.5x): the mean
    # passes 2.5 x 0.02 at the third row of the rise, (5 x 0.02 + 3 x 0.11) / 8 = 0.054
    rows = rows_of([1.0] + [0.02] * 9 + [0.11] * 10)
    # the last logged count, and the first held-out step from which it stayed: 3 since 1700
    for i, dims in ((5, 3), (9, 2), (16, 3), (19, 3)):
        rows[i]["test_latent_dims"] = dims
    # the codes of the last held-out row that logged them
    rows[16] |= {"test_codebook_used": 90, "test_codebook_perplexity": 50.2}
    rows[19] |= {"test_codebook_used": 120, "test_codebook_perplexity": 71.6}
    write_run(jumped, rows)
    write_run(flat, rows_of([1.0] + [0.02] * 19))  # logged without held-out rows
    write_run(kl, [{"step": s, "rec": 0.1} for s in STEPS])
    md = write_report([jumped, flat, kl], tmp_path / "out").read_text()
    assert "## VQ codebook mode" in md
    table = [line for line in md.splitlines() if line.startswith(("| jumped", "| flat", "| kl"))]
    assert table == [
        "| jumped | 1300 | 0.02 | 0.11 (2000) | 3 | 1700 | 120 (72) |",
        "| flat | none | 0.02 | 0.02 (2000) | – | – | – |",
    ]
    md = write_report([kl], tmp_path / "out_kl").read_text()
    assert "codebook mode" not in md


def test_settled_since_is_where_the_last_value_began_to_hold():
    assert settled_since([(200, 2), (400, 3), (600, 2), (800, 3), (1000, 3)]) == 800
    assert settled_since([(200, 4), (400, 4)]) == 200  # held from the first row
    assert settled_since([(200, 2), (400, 5)]) == 400  # reached at the last row
    assert settled_since([]) is None
