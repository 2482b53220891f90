"""The newcomer path (issue 17): the first evaluation says what it will train and for how long,
and `dae reproduce gan --quick` gets scores on a fresh machine from a small, named classifier."""

import argparse
import json

import pytest
import torch

from dae.config import replace
from dae.metrics import classifier
from dae.metrics.classifier import PRESETS, estimated_minutes, get_classifier, preset_name


def test_first_use_says_what_it_trains_and_how_long_before_training(
    data_root, tmp_path, monkeypatch
):
    monkeypatch.setenv("DAE_CACHE", str(tmp_path))  # a fresh machine: nothing cached
    cfg = replace(PRESETS["mnist"], ["limit=512", "epochs=0.5"])
    lines: list[str] = []
    get_classifier(cfg, data_root, train_if_missing=True, log=lines.append)
    assert "no cached classifier:mnist feature network" in lines[0]
    assert "training it now (~0 min of training on an idle 2-core CPU" in lines[0]
    assert any("step" in line for line in lines[1:])  # training came after the notice
    lines.clear()
    get_classifier(cfg, data_root, train_if_missing=True, log=lines.append)
    assert lines == []  # cached now: silent, no training


def test_estimates_match_the_measured_presets():
    assert estimated_minutes(PRESETS["cifar10"]) == pytest.approx(16)
    assert estimated_minutes(PRESETS["mnist"]) == pytest.approx(2)
    assert estimated_minutes(PRESETS["cifar10-quick"]) < 1


def test_reproduce_gan_quick_trains_the_named_quick_classifier(monkeypatch):
    from dae.cli import reproduce_gan
    from dae.reproduce import gan_table

    seen = {}

    def scorer(reference, root, inception, train_if_missing, classifier_cfg):
        seen.update(train=train_if_missing, cfg=classifier_cfg)
        return "scorer"

    monkeypatch.setattr(gan_table, "classifier_scorer", scorer)
    args = argparse.Namespace(quick=True, train_features=False, data=None, inception=None)
    assert reproduce_gan._scorer(args, torch.zeros(2, 3, 32, 32, dtype=torch.uint8)) == "scorer"
    assert seen == {"train": True, "cfg": PRESETS["cifar10-quick"]}
    assert preset_name(seen["cfg"]) == "cifar10-quick"  # its scores say so
    assert preset_name(PRESETS["cifar10"]) == "cifar10"
    assert classifier.PRESETS["cifar10-quick"].dataset == "cifar10"


def test_large_pixel_features_warn_and_pixels_n_projects(capsys):
    from dae.metrics.features import build_features
    from dae.metrics.fid import frechet_distance

    images = torch.randint(0, 256, (40, 3, 40, 40), dtype=torch.uint8)  # 4800-d pixels
    build_features("pixels").extract(images)
    assert "pixel features are 4800-d" in capsys.readouterr().err
    proj = build_features("pixels:64")
    a, b = proj.extract(images)["pool"], proj.extract(images)["pool"]
    assert a.shape == (40, 64) and torch.equal(a, b)  # a fixed projection
    assert proj.names["fd"] == "FD-pixels:64" and proj.key == "pixels-proj64"
    assert frechet_distance(a, b) < 1e-3
    assert capsys.readouterr().err == ""  # a projected extractor does not warn


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nope"], "invalid choice: 'nope'"),
        (["mnist", "bogus=1"], "bogus: unknown key"),
        (["mnist", "width=2"], "width: must be >= 4, got 2"),
    ],
)
def test_classifier_command_rejects_bad_input_in_one_line(argv, message, capsys):
    try:  # argparse exits on a bad preset; a bad key or value returns the UserError's code
        code = classifier.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_classifier_command_prints_the_cached_path_of_the_overridden_config(monkeypatch, capsys):
    seen = {}

    def cached(cfg):
        seen["cfg"] = cfg
        return None, {"test_accuracy": 0.9}

    monkeypatch.setattr(classifier, "get_classifier", cached)
    assert classifier.main(["cifar10", "epochs=24", "threads=1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert seen["cfg"].epochs == 24 and seen["cfg"].width == PRESETS["cifar10"].width
    assert printed == {"path": str(classifier.classifier_path(seen["cfg"])), "test_accuracy": 0.9}
