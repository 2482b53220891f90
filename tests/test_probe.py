"""`dae probe`: fresh decoders and a fixed prior on a run's frozen latent, on tiny runs trained here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from dae.autoencoder.vqgan import VQGAN
from dae.cli import main
from dae.config import to_dict
from dae.probe import ProbeConfig, freeze_encoder, load_probed_run, probe_runs
from dae.probe.decoder import encode_images
from dae.probe.prior import NOISE_LEVELS, probe_prior
from dae.probe.runner import ProbeData
from dae.train.checkpoint import save_weights
from image_utils import synthetic_images, tiny_config, write_image_folder

# A fast probe: two widths, a few steps, no FD (the feature net would need training).
FAST = ProbeConfig(
    widths=[0.5, 1.0],
    steps=30,
    lr=5e-3,
    batch_size=8,
    n=16,
    fd=False,
    curve_every=10,
    curve_points=3,
    curve_n=8,
    prior=False,
    prior_steps=10,
    prior_batch_size=8,
    prior_images=32,
    prior_n=16,
)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """A folder data set with train/ (32 smooth 16x16 images) and test/ (16 others)."""
    root = tmp_path_factory.mktemp("images")
    write_image_folder(root / "train", synthetic_images(32, seed=0))
    write_image_folder(root / "test", synthetic_images(16, seed=1))
    return root


def train_run(folder: Path, images: Path, kind: str, steps: int, mode: str = "baseline") -> Path:
    # Dead-code restarts every step while the codebook trains: a probe that let the codebook
    # train would move codes at once.
    model = {"restart_dead_codes": 1} if kind == "vqgan" else {}
    cfg = tiny_config(
        kind,
        data={"name": "folder", "root": str(images), "cache": False},
        train={"steps": steps, "batch_size": 8},
        disc={"start": 10_000},  # no GAN: the tiny runs only need a usable latent
        schedule={"mode": mode},
        model=model,
    )
    (folder.parent / f"{folder.name}.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    assert main(["train", str(folder.parent / f"{folder.name}.yaml"), "--out", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory, images) -> dict[str, Path]:
    """A trained VQ run (DAE, so it carries an aux decoder), its random-init twin, a KL run."""
    root = tmp_path_factory.mktemp("runs")
    vq = train_run(root / "vq", images, "vqgan", 150, mode="dae")
    random_init = root / "vq-random"
    shutil.copytree(vq, random_init)
    loaded = load_probed_run(vq)
    torch.manual_seed(1)
    fresh = VQGAN(loaded.cfg.model)
    fresh.attach_aux_decoder(loaded.cfg.schedule.aux_width)
    save_weights(random_init / "model.safetensors", fresh, to_dict(loaded.cfg))
    kl = train_run(root / "kl", images, "kl", 10)
    return {"vq": vq, "random": random_init, "kl": kl}


def quiet(_line: str) -> None:
    """A `log` for `probe_runs` that keeps test output short."""


def scores(summary: dict) -> list:
    """The measured numbers of a probe.json, without timings."""
    return [
        [(d["width"], d["test"], d["curve"]) for d in entry["decoders"]]
        for entry in summary["runs"]
    ]


def test_trained_encoder_probes_better_than_random_init(runs, tmp_path):
    summary = probe_runs([runs["vq"], runs["random"]], tmp_path, FAST, quiet, plots=False)
    trained, random_init = summary["runs"]
    for good, bad in zip(trained["decoders"], random_init["decoders"], strict=True):
        assert good["width"] == bad["width"]
        assert good["test"]["l1"] < bad["test"]["l1"]
        assert good["test"]["psnr"] > bad["test"]["psnr"]


def test_probe_is_deterministic_for_a_seed(runs, tmp_path):
    cfg = ProbeConfig(**{**to_dict(FAST), "widths": [0.5], "steps": 20, "curve_points": 2})
    lines: list[str] = []
    first = probe_runs([runs["vq"]], tmp_path / "a", cfg, lines.append, plots=False)
    second = probe_runs([runs["vq"]], tmp_path / "b", cfg, quiet, plots=False)
    assert scores(first) == scores(second)
    # the log line says how much test L1 moved over the last curve interval
    (a, before), (b, last) = first["runs"][0]["decoders"][0]["curve"]["test_l1"]
    assert (a, b) == (10, 20)
    moved = "fell" if last <= before else "rose"
    want = f"test L1 {moved} {100 * abs(before - last) / before:.1f} % from step 10 to 20 ("
    assert any(want in line for line in lines), lines
    other = ProbeConfig(**{**to_dict(cfg), "seed": 1})
    third = probe_runs([runs["vq"]], tmp_path / "c", other, quiet, plots=False)
    assert scores(third) != scores(first)  # the seed matters, so equality above is not vacuous


def test_probed_encoder_and_codebook_stay_bit_identical(runs):
    from dae.probe.decoder import probe_decoder

    run = load_probed_run(runs["vq"])
    freeze_encoder(run.model)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    data = ProbeData(FAST)
    test = data.test(run)
    latents = encode_images(run, test.images, torch.device("cpu"))
    result = probe_decoder(run, 0.5, data.train(run), test.images, latents, FAST)
    after = run.model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before), "the probe changed the run"
    assert all(not p.requires_grad and p.grad is None for p in run.model.parameters())
    assert not run.model.training and not run.model.quantize.training
    assert result["curve"]["train_l1"][-1][1] < result["curve"]["train_l1"][0][1]  # it trained


def test_probe_json_fields_plots_and_cached_results(runs, tmp_path, monkeypatch):
    out = tmp_path / "probe"
    args = [str(runs["vq"]), str(runs["kl"]), "--out", str(out), "--widths", "0.5,1"]
    args += ["--steps", "12", "--lr", "5e-3", "--batch-size", "8", "-n", "16", "--no-fd"]
    args += ["--curve-every", "4", "--curve-points", "3", "--curve-n", "8"]
    args += ["--prior-steps", "4", "--prior-batch-size", "8", "--prior-images", "32"]
    args += ["--prior-n", "16"]
    assert main(["probe", *args]) == 0
    summary = json.loads((out / "probe.json").read_text())
    assert summary["version"] == 1 and set(summary["recipe_hash"]) == {"decoder", "prior"}
    assert summary["config"]["steps"] == 12 and summary["config"]["widths"] == [0.5, 1.0]
    assert [e["run"]["latent"] for e in summary["runs"]] == ["vq", "kl"]
    for entry in summary["runs"]:
        run = entry["run"]
        assert {"path", "name", "kind", "schedule", "decoder_ch", "weights_sha256"} <= set(run)
        assert [d["width"] for d in entry["decoders"]] == [0.5, 1.0]
        prior = entry["prior"]
        assert prior["family"] == {"vq": "gpt", "kl": "dit"}[run["latent"]]
        assert prior["train_images"] == 32 and prior["test_images"] == 16
        score = "test_nll_per_token" if run["latent"] == "vq" else "test_denoising_mse_mean"
        assert prior[score] > 0
        for d in entry["decoders"]:
            assert set(d["test"]) == {"l1", "psnr"}
            assert d["channels"] == [round(c * d["width"]) for c in (8, 16)]
            assert [s for s, _ in d["curve"]["train_l1"]] == [4, 8, 12]
            assert [s for s, _ in d["curve"]["test_l1"]] == [4, 8, 12]
            assert d["curve"]["test_l1"][-1][1] > 0 and d["parameters"] > 0
        narrow, wide = entry["decoders"]
        assert narrow["parameters"] < wide["parameters"]
    assert (out / "probe.png").stat().st_size > 0 and (out / "curves.png").stat().st_size > 0

    # A rerun reuses every cached (run, width) result; a changed recipe measures again.
    def must_not_train(*_args, **_kwargs):
        raise AssertionError("a cached result was measured again")

    monkeypatch.setattr("dae.probe.runner.probe_decoder", must_not_train)
    monkeypatch.setattr("dae.probe.runner.probe_prior", must_not_train)
    assert main(["probe", *args]) == 0
    again = json.loads((out / "probe.json").read_text())
    assert scores(again) == scores(summary)
    assert [e["prior"] for e in again["runs"]] == [e["prior"] for e in summary["runs"]]
    # (into the same --out: --overwrite, as the summary of the first recipe is replaced)
    with pytest.raises(AssertionError, match="measured again"):
        main(["probe", *args, "--seed", "3", "--overwrite"])


@pytest.mark.parametrize("kind", ["vq", "kl"])
def test_prior_probe_runs_for_vq_and_kl(runs, kind):
    run = load_probed_run(runs[kind])
    freeze_encoder(run.model)
    data = ProbeData(FAST)
    result = probe_prior(run, data.train(run), data.test(run, FAST.prior_n), FAST)
    assert result["train_images"] == 32 and result["test_images"] == 16
    assert len(result["curve"]) >= 2 and result["seconds"] >= 0
    if kind == "vq":
        assert result["family"] == "gpt" and result["codebook_size"] == 16
        # An untrained GPT predicts ~uniformly: ln(16) nats per token; training on the codes helps.
        assert 0 < result["test_nll_per_token"] < 1.5 * torch.log(torch.tensor(16.0))
    else:
        assert result["family"] == "dit"
        assert set(result["test_denoising_mse"]) == {str(t) for t in NOISE_LEVELS}
        assert abs(result["train_latent_std"] - 1.0) < 0.05  # unit variance: runs compare
        assert all(v > 0 for v in result["test_denoising_mse"].values())
    again = probe_prior(run, data.train(run), data.test(run, FAST.prior_n), FAST)
    timings = ("seconds", "cpu_seconds")  # the machine's load, not the probe's result
    assert {k: v for k, v in again.items() if k not in timings} == {
        k: v for k, v in result.items() if k not in timings
    }


def test_bad_run_paths_are_one_line_errors(runs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    no_weights = tmp_path / "unfinished"
    shutil.copytree(runs["kl"], no_weights)
    (no_weights / "model.safetensors").unlink()
    for path, message in [
        (tmp_path / "missing", "is not a run folder"),
        (tmp_path / "empty", "no config.yaml"),
        (no_weights, "no final weights"),
    ]:
        assert main(["probe", str(path), "--out", str(tmp_path / "o")]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert main(["probe", str(runs["kl"]), "--out", str(tmp_path / "o"), "--widths", "a"]) == 2
    assert main(["probe", str(runs["kl"]), str(runs["kl"]), "--out", str(tmp_path / "o")]) == 2
    assert "listed twice" in capsys.readouterr().err


def test_fd_is_reported_under_the_feature_nets_name(runs, tmp_path):
    fast = {"widths": [1.0], "steps": 4, "curve_points": 1, "fd": True, "features": "pixels"}
    cfg = ProbeConfig(**{**to_dict(FAST), **fast})
    summary = probe_runs([runs["vq"], runs["random"]], tmp_path, cfg, quiet, plots=False)
    assert summary["features"]["fd"] == "FD-pixels"
    fds = [entry["decoders"][0]["test"]["FD-pixels"] for entry in summary["runs"]]
    assert all(fd > 0 for fd in fds) and fds[0] != fds[1]


def test_kl_prior_probe_uses_patch_1_on_odd_latents():
    """MNIST's KL latent is 7x7: the fixed DiT takes patch 1 there and patch 2 on even sides."""
    from dae.priors.cache import LatentCache
    from dae.probe.config import ProbeConfig
    from dae.probe.prior import _prior_config

    for side, arch in ((7, "DiT-S/1"), (8, "DiT-S/2")):
        meta = {"kind": "kl", "latent_shape": [4, side, side], "classes": [], "scaling_factor": 1.0}
        cache = LatentCache(
            {
                "mean": torch.zeros(4, 4, side, side),
                "logvar": torch.zeros(4, 4, side, side),
                "labels": torch.zeros(4, dtype=torch.long),
            },
            meta,
        )
        assert _prior_config(cache, ProbeConfig()).model.arch == arch


def test_a_killed_probe_leaves_an_incomplete_probe_json_that_a_rerun_completes(
    runs, tmp_path, monkeypatch
):
    """probe.json is rewritten after each run, so a kill leaves one holding some runs: it says
    `complete: false` (scripts/study_probe.sh reruns it), and the rerun adds the rest."""
    import dae.probe.runner as runner

    out = tmp_path / "probe"
    args = [str(runs["vq"]), str(runs["kl"]), "--out", str(out), "--widths", "1", "--no-fd"]
    args += ["--steps", "4", "--batch-size", "8", "-n", "8", "--curve-n", "8"]
    args += ["--prior-steps", "2", "--prior-batch-size", "8", "--prior-images", "16"]
    args += ["--prior-n", "8"]
    real, calls = runner.probe_run, []

    def killed_on_the_second_run(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(runner, "probe_run", killed_on_the_second_run)
    assert main(["probe", *args]) == 130  # dae's exit status for an interrupt
    partial = json.loads((out / "probe.json").read_text())
    assert partial["complete"] is False and len(partial["runs"]) == 1
    monkeypatch.setattr(runner, "probe_run", real)
    assert main(["probe", *args]) == 0
    done = json.loads((out / "probe.json").read_text())
    assert done["complete"] is True and [e["run"]["latent"] for e in done["runs"]] == ["vq", "kl"]
    assert done["runs"][0] == partial["runs"][0]  # the finished run was kept, not redone


def test_a_probe_json_is_replaced_only_by_a_probe_that_covers_it(runs, tmp_path, capsys):
    """A second probe into the same --out rewrites probe.json and the plots: refused when they
    would lose runs, widths or measurements, or mix recipes; adding to a probe goes on, and
    --overwrite replaces the summary while results/ keeps what was measured."""
    out = tmp_path / "probe"
    fast = ["--out", str(out), "--no-fd", "--no-prior", "--steps", "4", "--batch-size", "8"]
    fast += ["-n", "8", "--curve-n", "8", "--curve-points", "2"]

    def probe(*args: str) -> int:
        return main(["probe", *args, *fast])

    assert probe(str(runs["vq"]), "--widths", "1") == 0
    summary = (out / "probe.json").read_bytes()
    capsys.readouterr()  # the progress bars
    for args, message in [
        ((str(runs["kl"]), "--widths", "1"), "runs ['vq-"),
        ((str(runs["vq"]), "--widths", "0.5"), "widths [1.0]"),
        ((str(runs["vq"]), "--widths", "1", "--lr", "1e-3"), "another recipe (lr 0.0002 -> 0.001)"),
    ]:
        assert probe(*args) == 1
        err = capsys.readouterr().err
        assert message in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
        assert (out / "probe.json").read_bytes() == summary  # untouched
    # adding a run and a width covers the first probe: no --overwrite needed
    assert probe(str(runs["vq"]), str(runs["kl"]), "--widths", "0.5,1") == 0
    grown = json.loads((out / "probe.json").read_text())
    assert [e["run"]["latent"] for e in grown["runs"]] == ["vq", "kl"]
    assert probe(str(runs["kl"]), "--widths", "1", "--overwrite") == 0
    replaced = json.loads((out / "probe.json").read_text())
    assert [e["run"]["latent"] for e in replaced["runs"]] == ["kl"]
    assert len(list((out / "results").glob("vq-*/decoder_w*.json"))) == 2  # still cached
    (out / "probe.json").write_text("{not json")
    assert probe(str(runs["kl"]), "--widths", "1") == 1
    assert "not a probe summary" in capsys.readouterr().err
    # the output folder may not be a probed run
    assert main(["probe", str(runs["kl"]), "--out", str(runs["kl"]), "--no-prior"]) == 1
    assert "is or contains the input run" in capsys.readouterr().err


def test_last_gain_names_a_decoder_still_improving():
    from dae.probe.runner import _last_gain

    def result(curve):
        return {"curve": {"test_l1": curve}}

    assert _last_gain(result([[4000, 0.1]])) == ""  # one point: nothing to compare
    assert _last_gain(result([[2000, 0.1], [4000, 0.099]])) == (
        "; test L1 fell 1.0 % from step 2000 to 4000 (flat)"
    )
    assert _last_gain(result([[2000, 0.1], [4000, 0.09]])) == (
        "; test L1 fell 10.0 % from step 2000 to 4000 (still improving: more --steps would move it)"
    )
    assert _last_gain(result([[2000, 0.1], [4000, 0.105]])) == (
        "; test L1 rose 5.0 % from step 2000 to 4000 (no longer improving)"
    )
