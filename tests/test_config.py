from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from dae.config import ConfigError, apply_overrides, check, from_dict, replace, to_dict
from dae.experiments import load_preset
from dae.reproduce.toy import ToyExperimentConfig

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Inner:
    rate: float = 0.5
    names: list[str] = field(default_factory=list)

    def __post_init__(self):
        check(0 <= self.rate <= 1, "rate", f"must be in [0, 1], got {self.rate}")


@dataclass
class Outer:
    steps: int = 10
    mode: Literal["a", "b"] = "a"
    inner: Inner = field(default_factory=Inner)
    pair: tuple[int, int] = (1, 2)
    maybe: float | None = None


def test_round_trip_and_int_to_float():
    cfg = from_dict(Outer, {"steps": 3, "inner": {"rate": 1, "names": ["x"]}, "pair": [3, 4]})
    assert cfg.inner.rate == 1.0 and isinstance(cfg.inner.rate, float)
    assert cfg.pair == (3, 4)
    assert from_dict(Outer, to_dict(cfg)) == cfg
    assert from_dict(Inner, {"rate": "1e-1"}).rate == 0.1  # YAML 1.1 reads 1e-1 as a string


@pytest.mark.parametrize(
    "data, key, words",
    [
        ({"stpes": 3}, "stpes", "did you mean 'steps'"),
        ({"inner": {"rat": 0.1}}, "inner.rat", "did you mean 'rate'"),
        ({"steps": "ten"}, "steps", "expected an integer"),
        ({"steps": 2.5}, "steps", "expected an integer"),
        ({"steps": True}, "steps", "expected an integer"),
        ({"mode": "c"}, "mode", "must be one of"),
        ({"inner": {"rate": 2.0}}, "inner.rate", "must be in [0, 1]"),
        ({"inner": {"names": "x"}}, "inner.names", "expected a list"),
        ({"pair": [1]}, "pair", "expected 2 items"),
        ({"maybe": "x"}, "maybe", "expected a number"),
    ],
)
def test_errors_name_the_key(data, key, words):
    with pytest.raises(ConfigError) as err:
        from_dict(Outer, data)
    assert err.value.key == key
    assert str(err.value).startswith(f"{key}: ")
    assert words in str(err.value)


def test_overrides_parse_yaml_values_and_revalidate():
    cfg = replace(Outer(), ["steps=200", "inner.rate=0.25", "inner.names=[a, b]", "maybe=null"])
    assert (cfg.steps, cfg.inner.rate, cfg.inner.names, cfg.maybe) == (200, 0.25, ["a", "b"], None)
    with pytest.raises(ConfigError, match="inner.rate"):
        replace(Outer(), ["inner.rate=-1"])
    with pytest.raises(ConfigError, match="steps"):
        apply_overrides({"steps": 1}, ["steps.sub=1"])
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides({}, ["steps"])


def test_cross_field_check_in_experiment_config():
    with pytest.raises(ConfigError, match="model.data_dim"):
        replace(ToyExperimentConfig(), ["data.dim=12"])


def test_schedule_and_train_ranges():
    for override, key in [
        ("schedule.stage1_fraction=1.0", "schedule.stage1_fraction"),
        ("schedule.stage1_fraction=0", "schedule.stage1_fraction"),
        ("train.steps=-5", "train.steps"),
        ("optim.lr=0", "optim.lr"),
        ("schedule.stage2.decoder_init=warm", "schedule.stage2.decoder_init"),
    ]:
        with pytest.raises(ConfigError) as err:
            replace(ToyExperimentConfig(), [override])
        assert err.value.key == key


@pytest.mark.parametrize("preset", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_preset_loads(preset):
    cfg = load_preset(preset)
    assert from_dict(type(cfg), to_dict(cfg)) == cfg


def test_config_show_explain_prints_each_key_with_its_help(capsys):
    from dae.cli import main

    assert (
        main(["config", "show", "configs/toy_vae.yaml", "--explain", "--set", "train.steps=7"]) == 0
    )
    out = capsys.readouterr().out
    assert 'kind: "toy_vae"' in out
    assert "  steps: 7  # total optimisation steps (both stages)" in out
    assert "schedule:" in out and "  stage2:" in out and "    decoder_init:" in out


def test_a_missing_preset_names_the_close_presets(tmp_path, monkeypatch):
    from dae.config import read_yaml
    from dae.errors import MissingFileError

    (tmp_path / "configs").mkdir()
    for name in ("cifar10_kl.yaml", "cifar10_vqgan.yaml", "toy_vae.yaml"):
        (tmp_path / "configs" / name).write_text("kind: toy_vae\n")
    monkeypatch.chdir(tmp_path)
    for typed in ("cifar10-kl", "cifar10_kl.yaml", "configs/cifar_kl.yaml"):
        with pytest.raises(MissingFileError, match=r"did you mean configs/cifar10_kl\.yaml\?$"):
            read_yaml(typed)
    with pytest.raises(MissingFileError) as err:  # nothing close: no guess
        read_yaml("zzz")
    assert str(err.value) == "config file not found: zzz"


def test_cli_reports_user_errors_but_a_bug_keeps_its_traceback(monkeypatch, capsys):
    import dae.experiments.train as train_module
    from dae.cli import main

    assert main(["config", "show", "configs/nope.yaml"]) == 1  # dae's MissingFileError
    assert "error: config file not found" in capsys.readouterr().err

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(train_module, "train", broken)  # `dae train` imports it when it runs
    with pytest.raises(KeyError, match="a bug"):
        main(["train", "configs/toy_vae.yaml", "--out", "/nonexistent/never-written"])
