"""`dae reproduce theory` and `dae complexity` end to end on tiny settings; presets load."""

import json
from pathlib import Path

import pytest

from dae.cli import main
from dae.config import from_dict, read_yaml
from dae.theory.complexity import ComplexityConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["complexity_toy.yaml", "complexity_mnist.yaml"])
def test_complexity_presets_load(name):
    cfg = from_dict(ComplexityConfig, read_yaml(CONFIGS / name))
    assert cfg.latents == ["gaussian", "joint", "dae", "contrastive"]


def test_reproduce_theory_tiny(tmp_path, capsys):
    rc = main(
        [
            "reproduce",
            "theory",
            "--out",
            str(tmp_path),
            "--set",
            "linear_ae.enc_bounds=[0.3,3.0]",
            "--set",
            "linear_ae.dec_bounds=[0.5,2.0]",
            "--set",
            "linear_ae.steps=300",
            "--set",
            "linear_ae.restarts=1",
            "--set",
            "oned.ratios=[0.5]",
            "--set",
            "oned.steps=50",
            "--set",
            "oned.cells=50",
        ]
    )
    assert rc == 0
    res = json.loads((tmp_path / "results.json").read_text())
    cells = res["linear_ae"]["spectral"]["cells"]
    assert len(cells) == 4 and all(c["theory_components"] == 3 for c in cells)
    assert (tmp_path / "linear_ae.png").stat().st_size > 0 and (tmp_path / "oned.png").is_file()
    assert "c* =" in (tmp_path / "summary.md").read_text()


def test_complexity_tiny_toy_run(tmp_path):
    rc = main(
        [
            "complexity",
            "--config",
            str(CONFIGS / "complexity_toy.yaml"),
            "--out",
            str(tmp_path),
            "--set",
            "toy.train.steps=20",
            "--set",
            "contrastive.steps=5",
            "--set",
            "estimator.steps=5",
            "--set",
            "estimator.restarts=1",
            "--set",
            "estimator.generator.ladder=[0,2]",
            "--set",
            "n_train=64",
            "--set",
            "n_eval=64",
            "--set",
            "latents=[gaussian,dae,contrastive]",
        ]
    )
    assert rc == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert set(res["curves"]) == {"gaussian", "dae", "contrastive"}
    assert [p["complexity"] for p in res["curves"]["dae"]["points"]] == [0, 2]
    assert (tmp_path / "curves.png").is_file() and "eps=" in (tmp_path / "results.md").read_text()
    # Merging seeds reads the runs back: two copies of one run have zero spread.
    assert (
        main(
            [
                "complexity",
                "--aggregate",
                str(tmp_path),
                str(tmp_path),
                "--out",
                str(tmp_path / "agg"),
            ]
        )
        == 0
    )
    assert "| dae |" in (tmp_path / "agg" / "aggregate.md").read_text()


def test_complexity_rejects_unknown_latent(capsys):
    assert main(["complexity", "--set", "latents=[gausian]", "--out", "/nonexistent"]) == 2
    assert "latents" in capsys.readouterr().err
