"""scripts/study_report.py, study_arms.py and plot_probe_gap.py on synthetic run folders:
flatness, paired tables, probe and priors, arms of one study against each other, the probe's gap
by decoder width."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def report(load_script):
    return load_script("study_report")


@pytest.fixture(scope="module")
def arms(load_script):
    return load_script("study_arms")


@pytest.fixture(scope="module")
def gap(load_script):
    return load_script("plot_probe_gap")


def write_run(root: Path, name: str, l1: list[float], stages: list[str] | None = None) -> Path:
    run = root / name
    run.mkdir(parents=True)
    rows = [
        {"step": 100 * (i + 1), "stage": g, "test_rec": v, "test_psnr": 20.0 + 10 * (0.1 - v)}
        for i, (v, g) in enumerate(zip(l1, stages or ["joint"] * len(l1)))
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "model.safetensors").write_bytes(b"")  # only its presence marks a finished run
    return run


def test_report_pairs_by_seed(report, tmp_path):
    runs = tmp_path / "study"
    finals = {"baseline": [0.05, 0.06, 0.07], "dae-a": [0.06, 0.08, 0.07]}
    for variant, values in finals.items():
        for seed, final in enumerate(values):
            write_run(runs, f"mnist-vq-{variant}-s{seed}", [0.2] * 5 + [final] * 5)
    write_run(runs, "mnist-vq-baseline-s9", [0.1] * 10)  # no DAE partner: not paired
    (runs / "mnist-vq-dae-a-s5").mkdir()  # unfinished (no weights): left out
    summary = report.summarise(report.collect(runs))["mnist-vq"]
    assert summary["baseline"]["seeds"] == [0, 1, 2, 9]
    dae = summary["dae-a"]
    assert dae["seeds"] == [0, 1, 2]
    assert dae["paired_l1"]["mean_diff"] == pytest.approx(0.01)  # +0.01, +0.02, 0.00
    assert dae["paired_l1"]["wins"] == 2 and dae["paired_l1"]["ties"] == 1
    assert dae["max_flatness"] == pytest.approx(0.0)  # flat over the last 40 %
    assert dae["max_point_flatness"] == pytest.approx(0.0)

    probe = tmp_path / "probe.json"
    probe.write_text(
        json.dumps(
            {
                "runs": [
                    {
                        "run": {"name": f"mnist-vq-{v}-s{s}"},
                        "decoders": [{"width": 0.5, "test": {"psnr": 20.0 + s + (v == "dae-a")}}],
                        "prior": {"test_nll_per_token": 3.0 - (v == "dae-a")},
                    }
                    for v in ("baseline", "dae-a")
                    for s in (0, 1)
                ]
            }
        )
    )
    priors = tmp_path / "results.json"
    priors.write_text(
        json.dumps(
            [
                {"run": v, "ae_run": str(runs / f"mnist-vq-{v}-s{s}"), "n": 100, "fd": fd + s}
                for v, fd in (("baseline", 10.0), ("dae-a", 7.0))
                for s in (0, 1)
            ]
        )
    )
    text = report.probe_and_eval(runs, [probe], [priors])
    assert "| probe w=0.5: test psnr | 20.5 ± 0.71 | 21.5 ± 0.71 | +1 " in text
    assert "| prior probe: test_nll_per_token | 3 ± 0 | 2 ± 0 | -1 " in text
    assert "| GPT prior, 100 samples: fd | 10.5 ± 0.71 | 7.5 ± 0.71 | -3 " in text


def test_priors_trained_again_are_averaged_per_seed(report, tmp_path):
    """Two results.json for the same seeds (a prior trained again with another PRIOR_SEED): the
    paired test takes each seed's mean, and the noise table pools the spread over the priors. A
    file named twice counts once."""
    runs = tmp_path / "study"
    for v in ("baseline", "dae-a"):
        for s in (0, 1):
            write_run(runs, f"cifar10-kl-{v}-s{s}", [0.1] * 10)
    files = []
    for i, base in enumerate((10.0, 12.0)):
        f = tmp_path / f"p{i}" / "results.json"
        f.parent.mkdir()
        rows = [
            {"run": v, "ae_run": str(runs / f"cifar10-kl-{v}-s{s}"), "n": 50, "fd": fd + s}
            for v, fd in (("baseline", base), ("dae-a", 7.0))
            for s in (0, 1)
        ]
        f.write_text(json.dumps(rows))
        files.append(f)
    text = report.probe_and_eval(runs, [], [files[0], files[1], files[0]])
    # baseline 11 and 12 (means of 10/12 and 11/13), DAE 7 and 8: -4 on both seeds
    assert "| DiT prior, 50 samples: fd | 11.5 ± 0.71 | 7.5 ± 0.71 | -4 " in text
    assert "(s0: 2, s1: 2 priors)" in text
    # one score: baseline groups {10, 12}, {11, 13}, DAE {7, 7}, {8, 8}: SS 4 over 4 df -> 1;
    # a difference: {-3, -5} on each seed: SS 4 over 2 df -> sqrt 2
    assert "| DiT prior, 50 samples: fd | 1 (4 df) | 1.41 (2 df) |" in text
    # one prior a seed: no noise table
    assert "trained again" not in report.probe_and_eval(runs, [], [files[0]])


def test_decoder_step_table_aligns_stage_two(report, tmp_path):
    runs = tmp_path / "study"
    for seed in (0, 1):
        write_run(runs, f"mnist-vq-baseline-s{seed}", [0.5, 0.4, 0.3, 0.2])  # steps 100..400
        dae = write_run(runs, f"mnist-vq-dae-b-s{seed}", [0.9, 0.8, 0.35, 0.3, 0.25, 0.21])
        rows = [json.loads(line) for line in (dae / "metrics.jsonl").read_text().splitlines()]
        for row in rows:
            row["stage"] = "stage1" if row["step"] <= 200 else "stage2"
        (dae / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = report.decoder_step_table(report.collect(runs), every=200)
    # decoder step 200: baseline step 200 (0.4) against DAE step 200 + 200 (0.3)
    assert "| 200 | 0.4000 | 0.3000 | -0.1000 (0/2) |" in text
    assert "| 400 | 0.2000 | 0.2100 | +0.0100 (2/2) |" in text


def test_sweep_layout_copy_is_read_through_links(report, tmp_path):
    """A `dae sweep` copy (the GPU study's): runs named seed<k> whose weights stayed elsewhere,
    linked into a study folder. eval.json of the final weights marks them finished, the probe in
    RUN/probe/probe.json is matched through the link, and the curve table uses the runs' own
    test interval (250) where every 200 steps would miss it."""
    sweep, study = tmp_path / "sweep", tmp_path / "study"
    study.mkdir()
    for variant, name, final in (
        ("baseline", "baseline", 0.1),
        ("dae-aux_width-0.5", "dae-a", 0.2),
    ):
        for seed in (0, 1):
            run = write_run(sweep / variant, f"seed{seed}", [0.3, final + seed / 100])
            rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            for row in rows:
                row["step"] = row["step"] * 5 // 2  # 250, 500
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            (run / "model.safetensors").unlink()
            (run / "eval.json").write_text(json.dumps({"weights": "final", "metrics": {}}))
            (run / "probe").mkdir()
            probe = {
                "runs": [
                    {
                        "run": {"name": f"seed{seed}"},
                        "decoders": [{"width": 1.0, "test": {"psnr": 22.0 - (name == "dae-a")}}],
                    }
                ]
            }
            (run / "probe" / "probe.json").write_text(json.dumps(probe))
            (study / f"c10-vq-{name}-s{seed}").symlink_to(run)
    (study / "c10-vq-dae-a-s7").symlink_to(sweep)  # neither weights nor eval.json: left out
    runs = report.collect(study)
    assert sorted(runs["c10-vq"]["dae-a"]) == [0, 1]
    assert "| 500 | 0.1050 | 0.2050 |" in report.curve_table(runs)
    probes = sorted(sweep.glob("*/seed*/probe/probe.json"))
    text = report.probe_and_eval(study, probes)
    assert "| probe w=1: test psnr | 22 ± 0 | 21 ± 0 | -1 " in text


def test_equal_encoder_steps_arm_gets_its_own_probe_table(report, tmp_path):
    runs = tmp_path / "study"
    for seed in (0, 1):
        write_run(runs, f"mnist-vq-baseline-s{seed}", [0.3, 0.1])
        write_run(runs, f"mnist-vq-dae-e-s{seed}", [0.3, 0.2, 0.1, 0.09 + seed / 100])
    summary = report.summarise(report.collect(runs))["mnist-vq"]
    assert summary["dae-e"]["seeds"] == [0, 1]
    probe = tmp_path / "probe.json"
    rows = [
        {"run": {"name": f"mnist-vq-{v}-s{s}"}, "decoders": [{"width": 1.0, "test": {"psnr": p}}]}
        for v, p in (("baseline", 20.0), ("dae-e", 20.5))
        for s in (0, 1)
    ]
    probe.write_text(json.dumps({"runs": rows}))
    text = report.probe_and_eval(runs, [probe])
    assert "baseline vs DAE (equal encoder steps)" in text and "equal total steps" not in text
    assert "| probe w=1: test psnr | 20 ± 0 | 20.5 ± 0 | +0.5 " in text


def test_seed_table_lists_each_run_and_its_probe(report, tmp_path):
    runs = tmp_path / "study"
    write_run(runs, "c10-vq-baseline-s0", [0.3, 0.1])  # final PSNR 20 + 10 * (0.1 - 0.1) = 20
    write_run(runs, "c10-vq-baseline-s1", [0.3, 0.05])  # 20.5
    # 19; stage 1 ends at test L1 0.25; seed 0 has no DAE run
    write_run(runs, "c10-vq-dae-e-s1", [0.3, 0.25, 0.2], ["stage1", "stage1", "stage2"])
    probe = tmp_path / "probe.json"
    rows = [
        {"run": {"name": name}, "decoders": [{"width": 1.0, "test": {"psnr": p}}]}
        for name, p in (("c10-vq-baseline-s1", 21.25), ("c10-vq-dae-e-s1", 18.5))
    ]
    probe.write_text(json.dumps({"runs": rows}))
    text = report.seed_table(report.collect(runs), report.probe_psnr([probe], runs))
    head = "| seed | baseline | dae-e | probe baseline | probe dae-e | stage-1 L1 dae-e |"
    assert head in text
    assert "| 0 | 20.00 | — | — | — | — |" in text
    assert "| 1 | 20.50 | 19.00 | 21.25 | 18.50 | 0.250 |" in text
    # a run that logs test_latent_dims: its last count and the held-out step it held from
    dae = runs / "c10-vq-dae-e-s1" / "metrics.jsonl"
    rows = [json.loads(line) for line in dae.read_text().splitlines()]
    for row, dims in zip(rows, (3, 2, 2), strict=True):
        row["test_latent_dims"] = dims
    dae.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = report.seed_table(report.collect(runs), report.probe_psnr([probe], runs))
    assert f"{head[:-1]}| dims dae-e |" in text
    assert "| 0 | 20.00 | — | — | — | — | — |" in text
    assert "| 1 | 20.50 | 19.00 | 21.25 | 18.50 | 0.250 | 2 from 200 |" in text


def test_mode_line_correlates_the_end_of_stage_1_with_the_gap(report, tmp_path):
    runs = tmp_path / "study"
    for seed, (weak, final) in enumerate(((0.2, 0.1), (0.3, 0.15), (0.4, 0.2))):
        write_run(runs, f"c10-vq-baseline-s{seed}", [0.3, 0.1])  # 20 dB
        # gaps 0, -0.5, -1 dB against stage-1 L1 0.2, 0.3, 0.4: a perfect negative correlation
        write_run(runs, f"c10-vq-dae-e-s{seed}", [0.5, weak, final], ["stage1"] * 2 + ["stage2"])
    variants = report.collect(runs)["c10-vq"]
    assert report.mode_line(variants, "dae-e").startswith(
        "dae-e: Pearson r(stage-1 L1, PSNR − baseline) = -1.00 over 3 seeds (p=0)"
    )
    for run in variants["dae-e"].values():
        run["stage1_l1"] = 0.3  # no spread: r is undefined, so no line rather than "nan"
    assert report.mode_line(variants, "dae-e") == ""
    del variants["baseline"][2]  # two paired seeds are too few for a correlation
    assert report.mode_line(variants, "dae-e") == ""


def write_arms(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    """Two arms against the same baselines (20 dB), three seeds, a probe of seed 0 each."""
    written = {}
    for label, finals in (("short", (0.2, 0.15, 0.1)), ("long", (0.15, 0.15, 0.05))):
        root = tmp_path / label
        for seed, final in enumerate(finals):
            write_run(root, f"c10-vq-baseline-s{seed}", [0.3, 0.1])  # 20 dB
            write_run(root, f"c10-vq-dae-a-s{seed}", [0.3, final])  # 20 + 10 * (0.1 - final)
        probe = tmp_path / f"{label}.json"
        rows = [
            {"run": {"name": name}, "decoders": [{"width": 1.0, "test": {"psnr": p}}]}
            for name, p in (("c10-vq-baseline-s0", 21.0), ("c10-vq-dae-a-s0", 20.0 + len(label)))
        ]
        probe.write_text(json.dumps({"runs": rows}))
        written[label] = root, probe
    return written


def test_arms_pair_the_gaps_by_seed(arms, tmp_path):
    """Each arm's gap per seed, and the arms' difference, paired by seed."""
    gaps = {
        label: arms.arm_gaps(root, [probe], "c10-vq", "dae-a")
        for label, (root, probe) in write_arms(tmp_path).items()
    }
    assert gaps["short"]["own"] == pytest.approx({0: -1.0, 1: -0.5, 2: 0.0})
    assert gaps["long"]["own"] == pytest.approx({0: -0.5, 1: -0.5, 2: 0.5})
    assert gaps["short"]["probe"] == pytest.approx({0: 4.0})  # 20 + 5 - 21
    table = arms.arms_table(gaps)
    assert "| short | 3 | -0.50 (p=0.225; 0/3 ahead) | +4.00 |" in table
    # long - short: +0.5, 0, +0.5 -> mean +0.33, higher on 2 of 3 (one tie); one probe seed only
    contrast = arms.contrast_table(gaps)
    assert "| long − short | +0.33 (t-test p=0.184; higher on 2/3, sign p=0.5) | — |" in contrast


def test_arms_cli_writes_its_report_and_names_a_missing_folder(arms, tmp_path, monkeypatch, capsys):
    argv = ["study_arms.py", "--family", "c10-vq", "--out", str(tmp_path / "out")]
    for label, (root, probe) in write_arms(tmp_path).items():
        argv += ["--arm", label, str(root), str(probe)]
    monkeypatch.setattr("sys.argv", argv)
    arms.main()
    out = tmp_path / "out"
    saved = json.loads((out / "arms.json").read_text())
    assert saved["long"]["own"] == pytest.approx({"0": -0.5, "1": -0.5, "2": 0.5})
    assert (out / "arms.png").stat().st_size > 0 and "| long − short |" in (
        out / "arms.md"
    ).read_text()
    monkeypatch.setattr("sys.argv", [*argv, "--arm", "gone", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit):
        arms.main()
    assert "--arm gone: no study folder" in capsys.readouterr().err


def test_probes_of_two_runs_under_one_name_are_an_error(report, tmp_path):
    """The same run probed twice counts once; two different runs (by weights hash) that share a
    study name, e.g. baselines of two lrs, are named rather than one silently overwriting."""
    runs = tmp_path / "study"
    write_run(runs, "c10-vq-baseline-s0", [0.3, 0.1])

    def probe(name: str, sha: str, psnr: float) -> Path:
        row = {"run": {"name": "c10-vq-baseline-s0", "weights_sha256": sha}}
        path = tmp_path / name
        path.write_text(
            json.dumps({"runs": [{**row, "decoders": [{"width": 1.0, "test": {"psnr": psnr}}]}]})
        )
        return path

    a, again, other = (
        probe("a.json", "aaaa", 21.0),
        probe("b.json", "aaaa", 21.0),
        probe("c.json", "bbbb", 22.0),
    )
    assert report.probe_psnr([a, again], runs)["c10-vq", "baseline"][1.0] == {0: 21.0}
    with pytest.raises(
        ValueError, match=r"c10-vq-baseline-s0: .*a\.json and .*c\.json probe different runs"
    ):
        report.probe_psnr([a, other], runs)


def test_arms_plot_leaves_out_an_empty_probe_panel(arms, tmp_path):
    """Arms without probe files (e.g. assembled from links) plot the own-decoder panel alone."""
    import matplotlib.image

    gaps = {
        "a": {"own": {0: -0.5, 1: -0.2}, "probe": {}},
        "b": {"own": {0: 0.1, 1: 0.0}, "probe": {}},
    }
    arms.plot(gaps, tmp_path / "own.png")
    probed = {k: {**g, "probe": {0: 0.3}} for k, g in gaps.items()}
    arms.plot(probed, tmp_path / "both.png")
    width = {n: matplotlib.image.imread(tmp_path / f"{n}.png").shape[1] for n in ("own", "both")}
    assert width["own"] * 2 == pytest.approx(width["both"], abs=2)


def test_a_dae_arm_is_labelled_with_the_schedule_its_runs_were_trained_with(report, tmp_path):
    # study_cpu.sh's EXTRA changes the schedule but not the folder names: the label must follow
    # each run's config.yaml, not the folder name's default "S/2 + S/2"
    curve, stages = [0.2, 0.1], ["stage1", "stage2"]
    for seed in (0, 1):
        write_run(tmp_path / "default", f"mnist-vq-baseline-s{seed}", [0.2, 0.1])
        write_run(tmp_path / "default", f"mnist-vq-dae-a-s{seed}", curve, stages)
        write_run(tmp_path / "tuned", f"mnist-vq-baseline-s{seed}", [0.2, 0.1])
        run = write_run(tmp_path / "tuned", f"mnist-vq-dae-a-s{seed}", curve, stages)
        (run / "config.yaml").write_text(
            "schedule:\n  mode: dae\n  weak_decoder: dropout2d\n  dropout_p: 0.25\n"
            "  stage1_fraction: 0.9\n  stage2:\n    decoder_init: continue\n"
        )
    default = report.markdown(report.summarise(report.collect(tmp_path / "default")))
    tuned = report.markdown(report.summarise(report.collect(tmp_path / "tuned")))
    assert "| DAE, S/2 + S/2 (equal total steps) | 2 |" in default
    label = "DAE, Dropout2d p 0.25, 90 % in stage 1, decoder continued (equal total steps)"
    assert f"| {label} | 2 |" in tuned and "S/2 + S/2" not in tuned
    assert "| baseline (joint), S steps | 2 |" in tuned


def test_quantisation_error_measures_how_far_encoder_outputs_sit_from_their_codes(load_script):
    qe = load_script("quantisation_error")

    class Rounding(torch.nn.Module):  # encoder = identity, two codes
        codebook = torch.tensor([[3.0, 4.0], [0.0, 0.0]])

        def encode(self, x):
            return x

    # two latent positions: z = (3.0, 4.4) -> q = (3, 4), z = (0.3, 0.0) -> q = (0, 0)
    x = torch.tensor([[[[3.0, 0.3]], [[4.4, 0.0]]]])  # (B=1, D=2, h=1, w=2)
    got = qe.quantisation_error(Rounding(), x)
    z1 = (3.0**2 + 4.4**2) ** 0.5
    assert got["z_norm"] == pytest.approx((z1 + 0.3) / 2, rel=1e-6)
    assert got["code_norm"] == pytest.approx(2.5)
    assert got["error"] == pytest.approx((0.4 + 0.3) / 2, rel=1e-5)
    assert got["relative_error"] == pytest.approx((0.4 / z1 + 1.0) / 2, rel=1e-5)
    # next-nearest codes: (0, 0) at |(3, 4.4)| from the first output, (3, 4) at |(2.7, 4)| from
    # the second; both codes are in use, 5 apart
    ratio = (0.4 / z1 + 0.3 / (2.7**2 + 4.0**2) ** 0.5) / 2
    assert got["boundary_ratio"] == pytest.approx(ratio, rel=1e-5)
    assert got["code_spacing"] == pytest.approx(5.0)


def write_cell_run(root: Path, name: str, seed: int, psnr: list[float]) -> Path:
    """A run of 100 * len(psnr) steps whose test PSNR is logged every 100 steps."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(
        f"kind: vqgan\ntrain:\n  steps: {100 * len(psnr)}\n  seed: {seed}\n"
    )
    rows = [{"step": 100 * (i + 1), "test_psnr": v} for i, v in enumerate(psnr)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_cells_pair_any_runs_by_seed_and_find_their_probes(tmp_path, load_script):
    """Cells hold any runs (here a baseline at two settings): each run's last test PSNR, the probe's
    full-width PSNR found by the run's path, and each pair of cells compared seed by seed."""
    cells = load_script("study_cells")
    low = [
        write_cell_run(tmp_path / "low", f"b-s{s}", s, [20.0, v])
        for s, v in enumerate([24, 25, 26])
    ]
    high = [
        write_cell_run(tmp_path / "high", f"b-s{s}", s, [20.0, v])
        for s, v in enumerate([25, 25, 27])
    ]
    probe = tmp_path / "probe.json"

    def decoders(psnr: float) -> list[dict]:
        return [{"width": 0.5, "test": {"psnr": 0.0}}, {"width": 1.0, "test": {"psnr": psnr}}]

    runs = [{"run": {"path": str(high[0])}, "decoders": decoders(23.5)}]
    probe.write_text(json.dumps({"runs": runs}))
    probed = cells.probed_psnr([probe])
    read = {"low": cells.read_cell(low, probed), "high": cells.read_cell(high, probed)}
    assert read["low"]["own"] == {0: 24.0, 1: 25.0, 2: 26.0}
    assert read["high"]["probe"] == {0: 23.5}  # the full-width decoder, not the half-width one
    text = cells.tables(read)
    assert "| 0 | 24.00 | 25.00 / 23.50 |" in text
    # high - low: +1, 0, +1 -> mean +0.67, higher on 2 of 3 (one tie); one probed seed only
    assert "| high − low | +0.67 (t-test p=0.184; higher on 2/3, sign p=0.5) | — |" in text
    # a run still training, and a second run of one seed in a cell, are errors that name the run
    unfinished = write_cell_run(tmp_path, "short", 3, [20.0, 21.0])
    (unfinished / "config.yaml").write_text("kind: vqgan\ntrain:\n  steps: 900\n  seed: 3\n")
    with pytest.raises(ValueError, match="not finished .*step 200 of 900"):
        cells.final_psnr(unfinished)
    with pytest.raises(ValueError, match="second run of seed 0"):
        cells.read_cell([low[0], high[0]], probed)
    # the same run probed by two recipes with different results
    other = tmp_path / "other.json"
    other.write_text(
        json.dumps({"runs": [{"run": {"path": str(high[0])}, "decoders": decoders(22.0)}]})
    )
    with pytest.raises(ValueError, match="one recipe"):
        cells.probed_psnr([probe, other])


def test_plot_prior_samples_titles_each_grid_with_its_score_and_names_a_missing_one(
    tmp_path, load_script
):
    from PIL import Image

    ps = load_script("plot_prior_samples")
    seed = tmp_path / "s7"
    rows = [
        {"run": "baseline", "FD-classifier:cifar10": 98.76},
        {"run": "dae", "FD-classifier:cifar10": 89.43},
    ]
    seed.mkdir()
    (seed / "results.json").write_text(json.dumps(rows))
    for run, shade in (("baseline", 40), ("dae", 200)):
        (seed / run / "samples").mkdir(parents=True)
        Image.new("RGB", (16, 16), (shade, 0, 0)).save(seed / run / "samples" / "grid.png")
    assert [t for _, t in ps.panels(seed)] == [
        "s7, joint: FD-classifier 98.8",
        "s7, DAE: FD-classifier 89.4",
    ]
    assert ps.prior_name(seed) == "prior"  # no config.yaml to name it
    (seed / "baseline" / "config.yaml").write_text("kind: prior_dit\nae_run: x\n")
    assert ps.prior_name(seed) == "DiT"
    out = tmp_path / "fig" / "samples.jpg"
    ps.main([str(seed), "--out", str(out)])
    assert Image.open(out).size[0] > 0
    (seed / "dae" / "samples" / "grid.png").unlink()
    with pytest.raises(FileNotFoundError, match="dae/samples/grid.png"):
        ps.panels(seed)
    with pytest.raises(FileNotFoundError, match="not a finished compare-priors folder"):
        ps.panels(tmp_path / "fig")


def test_fd_noise_chunks_are_disjoint_seeded_and_biased_up_at_small_n(load_script):
    fdn = load_script("fd_noise")
    gen = torch.Generator().manual_seed(0)
    real = {"pool": torch.randn(20000, 8, generator=gen)}
    # the same Gaussian shifted by 1 in every one of 8 dims: FD -> |shift|^2 = 8 at large n
    fake = {"pool": torch.randn(4000, 8, generator=gen) + 1.0}
    scores = fdn.chunk_scores(fake, real, 500, seed=3)
    assert len(scores["pool"]) == 8 and "spatial" not in scores  # 4000 // 500 disjoint chunks
    assert scores == fdn.chunk_scores(fake, real, 500, seed=3)  # deterministic for a seed
    assert scores != fdn.chunk_scores(fake, real, 500, seed=4)
    whole = fdn.frechet_distance(real["pool"], fake["pool"])
    assert whole == pytest.approx(8.0, abs=0.5)
    s = fdn.summary(scores["pool"])
    # each 500-image chunk's FD is biased up by its covariance error (~d^2/n) and spread about it
    assert whole < s["mean"] < whole + 1.0 and 0.05 < s["sd"] < 1.0 and s["min"] <= s["max"]
    with pytest.raises(SystemExit, match="at least 2 chunks"):
        fdn.chunk_scores(fake, real, 3000, seed=0)


def test_fd_noise_scores_samples_and_real_chunks_end_to_end(
    data_root, tmp_path, capsys, load_script
):
    import numpy as np

    fdn = load_script("fd_noise")
    noise = np.random.default_rng(0).integers(0, 256, (600, 1, 28, 28), dtype=np.uint8)
    (tmp_path / "noise").mkdir()
    np.savez(tmp_path / "noise" / "samples.npz", images=noise)
    argv = [str(tmp_path / "noise" / "samples.npz"), "--real", "train", "-n", "200"]
    argv += ["--dataset", "mnist", "--features", "pixels:64", "--data-root", str(data_root)]
    assert fdn.main(argv + ["--out", str(tmp_path / "out")]) == 0
    rows = {r["set"]: r for r in json.loads((tmp_path / "out/fd_noise.json").read_text())["rows"]}
    assert rows["noise"]["chunks"] == 3 and rows["real train"]["chunks"] == 300
    # uniform noise is far from digits; real training digits are near the test set
    assert rows["noise"]["fd"]["min"] > 20 * rows["real train"]["fd"]["max"]
    assert "| noise | 600 |" in (tmp_path / "out/fd_noise.md").read_text()
    with pytest.raises(SystemExit):
        fdn.main(["--real", "test", "--split", "test"])  # chunks of the reference itself


def write_probe(path: Path, psnr: dict[tuple[str, int], dict[float, float]], steps: int) -> Path:
    """A probe.json of `dae probe`: {(variant, seed): {width: test PSNR}} of mnist-vq runs."""
    runs = [
        {
            "run": {"name": f"mnist-vq-{v}-s{s}"},
            "decoders": [{"width": w, "test": {"psnr": x}} for w, x in by_width.items()],
        }
        for (v, s), by_width in psnr.items()
    ]
    config = {"steps": steps, "lr": 6e-4, "batch_size": 32, "seed": 0, "n": 1000}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": config, "runs": runs}))
    return path


def test_probe_gap_by_width(gap, tmp_path):
    """Two probes of one study (the full width in one, the narrow widths in the other) join by
    seed; the gap is DAE minus the baseline of the same seed, tested against zero; a probe with
    another decoder recipe is refused, not mixed in."""
    study = tmp_path / "study"
    study.mkdir()
    full = write_probe(
        tmp_path / "full/probe.json",
        {("baseline", 0): {1.0: 25.0}, ("dae-a", 0): {1.0: 24.5},
         ("baseline", 1): {1.0: 26.0}, ("dae-a", 1): {1.0: 25.7}},
        steps=4000,
    )  # fmt: skip
    narrow = write_probe(
        tmp_path / "narrow/probe.json",
        {("baseline", 0): {0.25: 20.0}, ("dae-a", 0): {0.25: 21.0},
         ("baseline", 1): {0.25: 20.5}, ("dae-a", 1): {0.25: 21.3},
         ("baseline", 2): {0.25: 20.0}},  # no DAE partner: left out
        steps=4000,
    )  # fmt: skip
    gaps, decoders = gap.width_gaps(study, [full, narrow], "dae-a")
    assert gaps == {0.25: {0: 1.0, 1: pytest.approx(0.8)}, 1.0: {0: -0.5, 1: pytest.approx(-0.3)}}
    assert decoders == {0.25: 1, 1.0: 1}
    text = gap.table({"toy": (gaps, decoders)})
    # t = 0.9 / 0.1 and -0.4 / 0.1 on 1 df: p = 1 - 2 atan(|t|) / pi
    assert "| toy | 0.25 | 1 | +0.90 | 0.0704 | 2/2 |" in text
    assert "| toy | 1 | 1 | -0.40 | 0.156 | 0/2 |" in text
    assert "all" not in text  # one study: nothing to pool
    # two studies: every pair pooled at the widths both probed (1.0 only)
    other_study = ({1.0: {0: 0.1, 1: 0.3}, 0.5: {0: 0.2}}, {1.0: 2, 0.5: 1})
    text = gap.table({"toy": (gaps, decoders), "other": other_study})
    # -0.5, -0.3, 0.1, 0.3: mean -0.1, sd 0.365, t = -0.548 on 3 df, p = 0.622
    assert "| all 2 studies | 1 | 1 | -0.10 | 0.622 | 2/4 |" in text
    assert "| all 2 studies | 0.25 |" not in text and "| all 2 studies | 0.5 |" not in text
    gap.plot({"toy": (gaps, decoders)}, tmp_path / "gap.png")
    assert (tmp_path / "gap.png").stat().st_size > 0
    short = write_probe(tmp_path / "short/probe.json", {("dae-a", 0): {0.5: 22.0}}, steps=1000)
    with pytest.raises(ValueError, match="different decoder recipes"):
        gap.width_gaps(study, [full, short], "dae-a")
    # a difference the user accepts by name passes (here the steps: for the test's sake)
    gaps, _ = gap.width_gaps(study, [full, short], "dae-a", allow=("steps",))
    assert gaps == {1.0: {0: -0.5, 1: pytest.approx(-0.3)}}  # 0.5: no baseline, left out
    # a second decoder seed at width 1 (allowed by name): each arm's two decoders averaged
    other = write_probe(
        tmp_path / "d1/probe.json",
        {("baseline", 0): {1.0: 24.0}, ("dae-a", 0): {1.0: 24.7}},
        steps=4000,
    )
    config = json.loads(other.read_text())
    config["config"]["seed"] = 1
    other.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="different decoder recipes"):
        gap.width_gaps(study, [full, other], "dae-a")
    gaps, decoders = gap.width_gaps(study, [full, other], "dae-a", allow=("seed",))
    # seed 0: DAE (24.5 + 24.7) / 2 - baseline (25 + 24) / 2 = +0.1; seed 1: one decoder
    assert gaps[1.0] == {0: pytest.approx(0.1), 1: pytest.approx(-0.3)}
    assert decoders == {1.0: 1}  # the fewest a run has
    # a third init whose DAE probe is not in yet: left out of seed 0's pair, not half-counted
    partial = write_probe(tmp_path / "d2/probe.json", {("baseline", 0): {1.0: 20.0}}, steps=4000)
    config = json.loads(partial.read_text())
    config["config"]["seed"] = 2
    partial.write_text(json.dumps(config))
    gaps, _ = gap.width_gaps(study, [full, other, partial], "dae-a", allow=("seed",))
    assert gaps[1.0] == {0: pytest.approx(0.1), 1: pytest.approx(-0.3)}


def test_plot_mode_draws_and_tables_runs_cut_at_end(tmp_path, monkeypatch, capsys, load_script):
    """plot_mode.py on a joint and a DAE run: the figure, and the jump table cut at --end (a jump
    after it is not one yet)."""
    pm = load_script("plot_mode")
    values = [1.0] + [0.02] * 9 + [0.11] * 10  # the 8-row mean jumps at step 1300
    runs = []
    for name, mode in (("dae", "dae"), ("joint", "baseline")):  # runs after a DAE run's label
        run = tmp_path / name
        run.mkdir()
        (run / "config.yaml").write_text(
            f"kind: vqgan\ntrain:\n  steps: 2000\n  seed: 3\nschedule:\n  mode: {mode}\n"
        )
        rows = [
            {"step": 100 * (i + 1), "stage": "joint", "commitment": v, "test_rec": 0.1}
            for i, v in enumerate(values)
        ]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        runs.append(str(run))
    # --by arm labels the DAE run at its last point: that label once shadowed --end
    cases = ((None, "1300", "arm"), (1200, "—", "arm"), (1200, "—", "seed"), (1200, "—", "recipe"))
    cases += ((1200, "—", "run"),)
    for end, jump, by in cases:
        out = tmp_path / f"mode-{end}-{by}.png"
        argv = ["plot_mode.py", *runs, "--out", str(out), "--by", by]
        monkeypatch.setattr("sys.argv", argv + ([] if end is None else ["--end", str(end)]))
        pm.main()
        assert out.stat().st_size > 10_000
        table = capsys.readouterr().out
        assert f"| joint | {jump} |" in table and f"| dae | {jump} |" in table
    configs = [pm.Run(run).config() for run in runs]
    # the schedule's defaults: the half-width (aux) weak decoder, half the steps in stage 1
    assert [pm.recipe(c) for c in configs] == ["DAE, aux weak decoder, 50% stage 1", "joint"]
    # a run's copies in other folders are told apart by their folder, other runs by their name
    copies = ["x/order1/run-s8", "x/order2/run-s8", "x/order2/other"]
    assert pm.run_labels(copies) == ["order1/run-s8", "order2/run-s8", "other"]
