"""`dae report RUNS --against RUNS [--probes DIR ...]`: two arms paired run by run, with the
probe's scores, known values and the errors that keep a comparison fair."""

from __future__ import annotations

import json
import math

import pytest

from dae.cli import main
from dae.metrics.paired import higher_is_better
from dae.metrics.stats import paired_test


def write_run(path, psnr, fd, extra=None):
    path.mkdir(parents=True)
    metrics = {"psnr": psnr, "recon_FD-classifier:cifar10": fd, "recon_IS-classifier:c_std": 0.1}
    evaluation = {"metrics": metrics | (extra or {}), "n": 100, "data": "cifar10", "skipped": {}}
    (path / "eval.json").write_text(json.dumps(evaluation))
    return path


def write_probe(folder, run, psnr, decoder_hash="d1", prior=False):
    folder.mkdir(parents=True, exist_ok=True)
    entry = {
        "run": {"path": str(run.resolve()), "name": run.name},
        "decoders": [{"width": 1.0, "test": {"psnr": psnr, "l1": 0.1}, "seconds": 9.0}],
        "prior": {"test_nll_per_token": 3.0} if prior else None,
    }
    probe = {
        "recipe_hash": {"decoder": decoder_hash, "prior": "p1"},
        "config": {"prior": prior},
        "runs": [entry],
    }
    (folder / "probe.json").write_text(json.dumps(probe))
    return folder


@pytest.fixture
def arms(tmp_path):
    # DAE − joint: PSNR +1, +2, +3; FD-classifier −1, −1, +2; probe PSNR +0.5 on each
    dae = [write_run(tmp_path / f"dae-s{s}", 20.0 + 2 * s, 10.0 + s * s) for s in (1, 2, 3)]
    joint = [
        write_run(tmp_path / f"joint-s{s}", 20.0 + s, 11.0 + s * s - (s == 3) * 3)
        for s in (1, 2, 3)
    ]
    probes = [write_probe(tmp_path / f"probe-{r.name}", r, 24.5 + i) for i, r in enumerate(dae)]
    probes += [write_probe(tmp_path / f"probe-{r.name}", r, 24.0 + i) for i, r in enumerate(joint)]
    return dae, joint, probes


def _args(dae, joint, probes, out):
    return ["report", *map(str, dae), "--against", *map(str, joint), "--probes",
            *map(str, probes), "--out", str(out)]  # fmt: skip


def test_paired_table_known_values(arms, tmp_path):
    dae, joint, probes = arms
    assert main(_args(dae, joint, probes, tmp_path / "out")) == 0
    paired = json.loads((tmp_path / "out" / "paired.json").read_text())
    got = paired["metrics"]
    assert got["psnr"]["differences"] == [1.0, 2.0, 3.0]
    # mean 2, std 1: t = 2 / (1 / sqrt 3) on 2 degrees of freedom, two-sided p = 0.0742
    assert got["psnr"]["t"] == pytest.approx(2 * math.sqrt(3))
    assert got["psnr"]["t_p"] == pytest.approx(0.0742, abs=1e-4)
    assert got["psnr"]["sign_p"] == 0.25  # three of three: the least a sign test gives
    fd = got["recon_FD-classifier:cifar10"]
    assert fd["differences"] == [-1.0, -1.0, 2.0]
    expected = paired_test([12.0, 15.0, 17.0], [11.0, 14.0, 19.0])
    assert fd["t_p"] == pytest.approx(expected.t_p)
    assert got["probe w1 psnr"]["differences"] == pytest.approx([0.5, 0.5, 0.5])
    assert got["probe w1 psnr"]["t_p"] == 0.0  # identical differences: certain
    assert "recon_IS-classifier:c_std" not in got  # spreads are not compared
    # Holm over the three defined t-tests (probe l1's differences are all 0: no test): sorted
    # 0 x 3, 0.0742 x 2, then FD's p = 1 (mean difference 0) x 1
    assert got["psnr"]["t_p_holm"] == pytest.approx(2 * got["psnr"]["t_p"])
    assert fd["t_p"] == pytest.approx(1.0) and fd["t_p_holm"] == pytest.approx(1.0)
    assert got["probe w1 psnr"]["t_p_holm"] == 0.0
    assert got["probe w1 l1"]["t_p"] is None and got["probe w1 l1"]["t_p_holm"] is None
    assert not any("seconds" in key for key in got)  # nor timings
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| psnr ↑ | +1, +2, +3 | +2 ± 1 | 3 / 0 / 0 | 3/3 | 0.0742 | 0.25 | 0.148 |" in md
    # lower is better for FD: DAE is better on the two pairs where it is lower
    assert "| recon_FD-classifier:cifar10 ↓ | -1, -1, +2 | +0 ± 1.7 | 1 / 0 / 2 | 2/3 |" in md
    assert "dae-s1 − joint-s1; dae-s2 − joint-s2; dae-s3 − joint-s3" in md
    assert "![Paired differences, runs − against, pair by pair](paired.png)" in md
    assert (tmp_path / "out" / "paired.png").read_bytes()[:4] == b"\x89PNG"


def test_paired_figure_needs_a_metric_with_a_direction(tmp_path):
    from dae.metrics.figures import plot_paired

    undirected = {"metrics": {"codebook_size": {"differences": [0.0], "mean_diff": 0.0}}}
    assert not plot_paired(undirected, tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()


def test_probe_in_a_sweeps_layout_is_read_without_probes(arms, tmp_path):
    dae, joint, _ = arms
    for i, run in enumerate([*dae, *joint]):
        write_probe(run / "probe", run, 20.0 + i)
    assert main(["report", *map(str, dae), "--against", *map(str, joint), "--out", str(tmp_path / "o")]) == 0  # fmt: skip
    got = json.loads((tmp_path / "o" / "paired.json").read_text())["metrics"]
    assert got["probe w1 psnr"]["differences"] == [-3.0, -3.0, -3.0]


def test_one_pair_has_no_t_test_and_the_json_stays_strict(arms, tmp_path):
    dae, joint, _ = arms
    assert main(["report", str(dae[0]), "--against", str(joint[0]), "--out", str(tmp_path / "o")]) == 0  # fmt: skip
    text = (tmp_path / "o" / "paired.json").read_text()
    assert "NaN" not in text
    assert json.loads(text)["metrics"]["psnr"]["t_p"] is None


def test_numbers_some_runs_lack_are_named_and_left_out(arms, tmp_path):
    dae, joint, _ = arms
    extra = write_run(tmp_path / "dae-s4", 30.0, 5.0, {"ssim": 0.9})
    other = write_run(tmp_path / "joint-s4", 29.0, 6.0)
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')  # trained, not evaluated
    out = tmp_path / "o"
    assert main(["report", *map(str, dae), str(extra), "--against", *map(str, joint), str(other), "--out", str(out)]) == 0  # fmt: skip
    paired = json.loads((out / "paired.json").read_text())
    assert paired["not_in_every_run"] == ["ssim"] and "ssim" not in paired["metrics"]
    assert "Left out, not measured by every run: `ssim`." in (out / "report.md").read_text()
    assert main(["report", str(dae[0]), "--against", str(bare), "--out", str(tmp_path / "b")]) == 0  # fmt: skip
    md = (tmp_path / "b" / "report.md").read_text()
    assert "No number was measured by every run: `dae evaluate` each run first." in md


def test_pairs_trained_with_different_seeds_are_flagged(arms, tmp_path, capsys):
    dae, joint, _ = arms
    for run, seed in zip([*dae, *joint], [1, 2, 3, 1, 3, 2]):  # the second arm out of order
        (run / "config.yaml").write_text(f"kind: toy_vae\ntrain:\n  seed: {seed}\n")
    out = tmp_path / "o"
    assert main(["report", *map(str, dae), "--against", *map(str, joint), "--out", str(out)]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("warning: paired runs with different train.seed") == 2
    assert f"{dae[1]} (seed 2) against {joint[1]} (seed 3)" in err
    assert "**Pairs trained with different seeds**" in (out / "report.md").read_text()
    assert json.loads((out / "paired.json").read_text())["seed_mismatches"][1].startswith(
        f"{dae[2]} (seed 3)"
    )


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_unequal_arms_are_refused(arms, tmp_path, capsys):
    dae, joint, _ = arms
    assert main(["report", *map(str, dae), "--against", *map(str, joint[:2]), "--out", str(tmp_path / "o")]) == 1  # fmt: skip
    assert "paired by position: got 3 runs and 2 to compare them against" in _error(capsys)


def test_probes_with_different_recipes_are_refused(arms, tmp_path, capsys):
    dae, joint, probes = arms
    write_probe(tmp_path / "other", joint[0], 24.0, decoder_hash="d2")
    probes = [p for p in probes if p.name != f"probe-{joint[0].name}"] + [tmp_path / "other"]
    assert main(_args(dae, joint, probes, tmp_path / "o")) == 1
    assert "different recipes" in _error(capsys)


def test_a_run_probed_twice_is_refused(arms, tmp_path, capsys):
    dae, joint, probes = arms
    write_probe(tmp_path / "again", dae[0], 30.0)
    assert main(_args(dae, joint, [*probes, tmp_path / "again"], tmp_path / "o")) == 1
    assert "is probed in both" in _error(capsys)


def test_probes_without_against_are_refused(arms, tmp_path, capsys):
    dae, _, probes = arms
    assert main(["report", str(dae[0]), "--probes", str(probes[0]), "--out", str(tmp_path / "o")]) == 1  # fmt: skip
    assert "give --against too" in _error(capsys)


def test_directions_by_name():
    assert higher_is_better("recon_FD-classifier:cifar10") is False
    assert higher_is_better("recon_KD-classifier:cifar10") is False
    assert higher_is_better("recon_IS-classifier:cifar10") is True
    assert higher_is_better("recon_precision") is True
    assert higher_is_better("probe w0.5 l1") is False
    assert higher_is_better("probe prior test_nll_per_token") is False
    assert higher_is_better("codebook_size") is None
