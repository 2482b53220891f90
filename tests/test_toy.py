import json
import math
import shutil

import pytest
import torch

from dae.cli import main
from dae.data.toy import ToyDataConfig, cluster_centres, make_toy_data
from dae.metrics.knn import knn_accuracy, knn_predict


def test_toy_data_geometry():
    cfg = ToyDataConfig(std=0.05, n_train=4000, n_test=100)
    data = make_toy_data(cfg, seed=3)
    assert data.x_train.shape == (4000, 10) and data.y_train.shape == (4000,)
    # The lift is orthonormal, so projecting back recovers the 2-D mixture.
    assert torch.allclose(data.lift @ data.lift.T, torch.eye(2), atol=1e-6)
    plane = data.x_train.double() @ data.lift.double().T
    centres = cluster_centres(8)
    for k in range(8):
        mean = plane[data.y_train == k].mean(0)
        assert torch.allclose(mean, centres[k], atol=0.01)
        assert abs(plane[data.y_train == k].std(0).mean().item() - 0.05) < 0.005
    # Adjacent centres sit 2 sin(pi/8) apart on the unit circle.
    assert math.isclose(
        (centres[0] - centres[1]).norm().item(), 2 * math.sin(math.pi / 8), rel_tol=1e-9
    )
    assert torch.equal(make_toy_data(cfg, seed=3).x_test, data.x_test)


def test_knn_known_values():
    ref = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 10.0], [11.0, 10.0], [10.0, 11.0]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    query = torch.tensor([[0.4, 0.0], [9.0, 9.0], [5.6, 5.6]])
    assert knn_predict(ref, labels, query, k=1).tolist() == [0, 1, 1]
    assert knn_predict(ref, labels, query, k=5).tolist() == [1, 1, 1]  # majority of all five
    assert knn_accuracy(ref, labels, query, torch.tensor([0, 1, 0]), k=1) == 2 / 3


def test_reproduce_toy_end_to_end(tmp_path, capsys):
    out = tmp_path / "toy"
    code = main(
        [
            "reproduce",
            "toy",
            "--seeds",
            "2",
            "--workers",
            "1",
            "--out",
            str(out),
            "--set",
            "train.steps=40",
            "--set",
            "data.n_train=512",
            "--set",
            "data.n_test=128",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["metric"] for r in results["rows"]] == ["latent_acc"] * 2 + ["recon_acc"] * 2
    for row in results["rows"]:
        assert len(row["seeds"]) == 2 and all(0 <= v <= 100 for v in row["seeds"])
        assert math.isclose(row["mean"], sum(row["seeds"]) / 2)
        assert set(row["paper"]) == {"mean", "std"}
    assert results["config"]["train"]["steps"] == 40
    dae_vs_joint = results["comparisons"][1]
    diffs = [d - j for d, j in zip(results["rows"][3]["seeds"], results["rows"][2]["seeds"])]
    assert math.isclose(dae_vs_joint["mean_diff"], sum(diffs) / 2)
    assert dae_vs_joint["wins"] + dae_vs_joint["ties"] + dae_vs_joint["losses"] == 2
    scipy_stats = pytest.importorskip("scipy.stats")
    dae, joint = results["rows"][3]["seeds"], results["rows"][2]["seeds"]
    if len(set(diffs)) > 1:  # a paired t-test needs a spread of differences
        want = scipy_stats.ttest_rel(dae, joint).pvalue
        assert dae_vs_joint["t_p"] == pytest.approx(want)
    else:  # no spread: undefined (all equal) or certain (all shifted alike)
        assert math.isnan(dae_vs_joint["t_p"]) or dae_vs_joint["t_p"] == 0.0
    assert (out / "latents.png").stat().st_size > 10_000
    table = (out / "results.md").read_text()
    assert "recon: DAE 128 / 128" in table and "98.0 (1.3)" in table
    assert "paired t-test p = " in table and "sign test p = " in table
    assert "| row |" in capsys.readouterr().out


def test_cli_errors_exit_nonzero(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "configs/toy_vae.yaml",
                "--set",
                "train.stpes=3",
                "--out",
                str(tmp_path / "a"),
            ]
        )
        == 2
    )
    assert "train.stpes: unknown key (did you mean 'steps'?)" in capsys.readouterr().err
    assert main(["train", "configs/nope.yaml"]) == 1
    assert "config file not found" in capsys.readouterr().err
    run = tmp_path / "run"
    args = [
        "train",
        "configs/toy_vae.yaml",
        "--out",
        str(run),
        "--set",
        "train.steps=4",
        "--set",
        "train.progress=false",
    ]
    assert main(args) == 0
    assert main(args) == 1  # never overwrites a finished run silently
    assert "already holds a run" in capsys.readouterr().err
    assert main(args + ["--resume", "--set", "train.batch_size=64"]) == 2
    assert "differs from the run being resumed" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    # a finished run whose checkpoints and log were pruned is still a run, and stays as it was
    shutil.rmtree(run / "checkpoints")
    (run / "metrics.jsonl").unlink()
    weights = (run / "model.safetensors").read_bytes()
    assert main(args) == 1
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "model.safetensors").read_bytes() == weights
    # a config.yaml that is not dae's is refused, even with --overwrite, and left alone
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my: notes\n")
    other = [a if a != str(run) else str(mine) for a in args]
    assert main(other) == 1
    assert "is not a config dae wrote" in capsys.readouterr().err
    assert main([*other, "--overwrite"]) == 1
    assert (mine / "config.yaml").read_text() == "my: notes\n"


def test_preset_matches_the_built_in_defaults():
    """`dae reproduce toy` (no --config) and `configs/toy_vae.yaml` must describe the same toy."""
    from dae.config import to_dict
    from dae.experiments import load_preset
    from dae.reproduce.toy import ToyExperimentConfig

    preset, built_in = to_dict(load_preset("configs/toy_vae.yaml")), to_dict(ToyExperimentConfig())
    for section in ("data", "model", "schedule", "optim", "eval"):
        assert preset[section] == built_in[section], section
    for key in ("steps", "batch_size", "seed", "precision"):  # precision: the demo is fp32 anywhere
        assert preset["train"][key] == built_in["train"][key], key
