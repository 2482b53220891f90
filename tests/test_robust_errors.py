"""Bad files and arguments give one line naming the problem, never a traceback (issue 17)."""

import numpy as np
import pytest
import torch

from dae.cli import main
from dae.errors import CheckpointError
from dae.files import load_weights
from dae.priors.cache import LatentCache

TOY = ["train", "configs/toy_vae.yaml"]
for _item in ("train.steps=2", "train.progress=false", "train.tensorboard=false"):
    TOY += ["--set", _item]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "toy"
    assert main([*TOY, "--out", str(run)]) == 0
    return run


def test_corrupt_weights_file_is_named(toy_run, tmp_path, capsys):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match=r"model.safetensors: unreadable or corrupt weights"):
        load_weights(bad)
    (toy_run / "model.safetensors").write_bytes(b"garbage")
    assert main(["evaluate", str(toy_run), "--metrics", "knn"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{toy_run}/model.safetensors: unreadable or corrupt" in err


def test_latent_codes_out_of_range_are_refused(tmp_path):
    meta = {"kind": "vq", "latent_shape": [2, 2], "classes": ["a"], "codebook_size": 8}
    codes = torch.tensor([[[0, 1], [2, 8]]], dtype=torch.int32)  # 8 is not a code of 8
    LatentCache({"codes": codes, "labels": torch.zeros(1).long()}, meta).save(tmp_path / "c")
    with pytest.raises(CheckpointError, match=r"codes outside \[0, 8\) \(min 0, max 8\)"):
        LatentCache.load(tmp_path / "c")
    (tmp_path / "c").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="unreadable or corrupt latent cache"):
        LatentCache.load(tmp_path / "c")


def test_export_to_an_existing_file_is_refused(toy_run, tmp_path, capsys):
    target = tmp_path / "model.bin"
    target.write_text("mine")
    assert main(["export", str(toy_run), "--out", str(target)]) == 1
    assert "is a file; give a folder" in capsys.readouterr().err
    assert target.read_text() == "mine"


def test_export_into_a_folder_of_other_files_is_refused(toy_run, tmp_path, capsys):
    """diffusers would write into any folder (and delete weight shards it finds): never a user's."""
    target = tmp_path / "mine"
    target.mkdir()
    (target / "diffusion_pytorch_model.safetensors").write_text("not an export of ours")
    for extra in ([], ["--overwrite"]):
        assert main(["export", str(toy_run), "--out", str(target), *extra]) == 1
        assert "not empty and holds more than a diffusers model" in capsys.readouterr().err
    assert [p.name for p in target.iterdir()] == ["diffusion_pytorch_model.safetensors"]
    assert (target / "diffusion_pytorch_model.safetensors").read_text() == "not an export of ours"


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "sets,expected",
    [
        (["train.steps=1", "schedule.mode=dae"], "train.steps: a DAE schedule needs >= 2"),
        (["model.enc_hidden=[1,"], "model.enc_hidden: cannot parse the value '[1,' as YAML"),
        (["optim.lr=.inf"], "optim.lr: must be a finite number, got inf"),
        (["model.enc_hidden=1000000000000"], "out of memory (tried to allocate"),
    ],
)
def test_bad_values_are_one_line(tmp_path, capsys, sets, expected):
    args = [*TOY, "--out", str(tmp_path / "run")]
    for item in sets:
        args += ["--set", item]
    assert main(args) in (1, 2)
    assert expected in _one_line(capsys)


def test_bad_yaml_files_are_one_line(tmp_path, capsys):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"kind: toy_vae\n# caf\xe9\n")
    assert main(["train", str(latin1), "--out", str(tmp_path / "a")]) == 2
    assert "latin1.yaml: not UTF-8 text" in _one_line(capsys)
    dup = tmp_path / "dup.yaml"
    dup.write_text("kind: toy_vae\ntrain:\n  steps: 3\ntrain:\n  steps: 4\n")
    assert main(["train", str(dup), "--out", str(tmp_path / "b")]) == 2
    assert "duplicate key 'train'" in _one_line(capsys)
    assert not (tmp_path / "b").exists()


def test_lipschitz_every_is_checked_before_training(tmp_path, capsys):
    args = [*TOY, "--out", str(tmp_path / "run"), "--set", "train.log_every=2"]
    assert main([*args, "--lipschitz-every", "3"]) == 2
    assert "--lipschitz-every: must be a multiple of train.log_every (2), got 3" in _one_line(
        capsys
    )
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


def test_download_offline_is_one_line(tmp_path, capsys):
    args = ["data", "download", "mnist", "--to", str(tmp_path / "m")]
    assert main([*args, "--base-url", "http://127.0.0.1:9/"]) == 1
    assert "download of http://127.0.0.1:9/" in _one_line(capsys)


def test_attn_resolutions_must_match_a_level():
    from dae.autoencoder.image import ImageArchConfig
    from dae.config import ConfigError

    with pytest.raises(ConfigError, match=r"attn_resolutions: \[7\] match no level.*\[32, 16\]"):
        ImageArchConfig(resolution=32, ch=8, ch_mult=[1, 2], norm_groups=4, attn_resolutions=[7])


def test_inception_file_with_a_wrong_hash_is_a_user_error(tmp_path, capsys):
    from dae.data.formats import DataFormatError
    from dae.errors import UserError
    from dae.metrics.inception import load_inception

    bad = tmp_path / "pt_inception.pth"
    bad.write_bytes(b"not inception")
    with pytest.raises(DataFormatError, match="pt_inception.pth: SHA-256") as err:
        load_inception(bad)
    assert isinstance(err.value, UserError)  # what the CLI reports as one line


def test_pickle_refusal_does_not_advise_weights_only_false(tmp_path):
    from dae.files import load_checkpoint

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "evil.pt")
    message = str(err.value)
    assert "Unsupported global: GLOBAL builtins.print" in message or "GLOBAL print" in message
    assert "weights_only" not in message and "will likely succeed" not in message


def test_full_disk_from_torch_save_says_no_space_left(tmp_path, monkeypatch):
    from dae import files

    path = tmp_path / "last.pt"
    files.save_checkpoint(path, {"step": 1})

    def failing_save(obj, f):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(files.torch, "save", failing_save)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda p: type("U", (), {"free": 0})())
    with pytest.raises(CheckpointError, match=r"\(No space left on device\); the previous"):
        files.save_checkpoint(path, {"step": 2})


def test_one_sample_is_a_config_error_not_a_linear_algebra_failure():
    from dae.config import ConfigError
    from dae.metrics.fid import distribution_metrics

    real = {"pool": torch.randn(10, 4)}
    names = {"fd": "FD", "kd": "KD"}
    with pytest.raises(ConfigError, match=r"samples: 1 image\(s\); need >= 2"):
        distribution_metrics(real, {"pool": torch.randn(1, 4)}, names)


def test_corrupt_run_files_are_one_line(toy_run, tmp_path, capsys):
    """A junk checkpoint, config.yaml or eval.json names the file instead of a traceback."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    (run / "model.safetensors").unlink()  # so that the checkpoint is read
    (run / "checkpoints" / "last.pt").write_text("not a checkpoint, just text")
    assert main(["evaluate", str(run), "--metrics", "knn"]) == 1
    assert "last.pt: unreadable or truncated checkpoint" in _one_line(capsys)
    (run / "eval.json").write_text("{half")
    assert main(["report", str(run), "--out", str(tmp_path / "r")]) == 1
    assert "eval.json: corrupt" in _one_line(capsys)
    (run / "config.yaml").write_text("kind: [toy_vae\n")
    assert main(["evaluate", str(run), "--metrics", "knn"]) == 2
    assert "config.yaml: not readable YAML" in _one_line(capsys)


def test_bad_samples_file_is_named_before_any_metric(toy_run, tmp_path, capsys):
    from dae.data.formats import DataFormatError, read_packed
    from dae.metrics.evaluate import load_samples

    text = tmp_path / "samples.npz"
    text.write_text("not numpy")
    with pytest.raises(DataFormatError, match="samples.npz: unreadable samples \\(not an .npy"):
        load_samples(text)
    whole = tmp_path / "whole.npz"
    np.savez(whole, images=np.zeros((2, 3, 8, 8), np.uint8))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(whole.read_bytes()[:200])
    with pytest.raises(DataFormatError, match="cut.npz: unreadable packed data"):
        read_packed(cut, "cifar10", "train")
    with pytest.raises(DataFormatError, match="cut.npz: unreadable samples"):
        load_samples(cut)
    eval_json = toy_run / "eval.json"
    before = eval_json.read_bytes() if eval_json.exists() else None
    missing = tmp_path / "none.npz"
    assert main(["evaluate", str(toy_run), "--metrics", "knn", "--samples", str(missing)]) == 1
    assert f"samples file not found: {missing}" in _one_line(capsys)
    assert (eval_json.read_bytes() if eval_json.exists() else None) == before


def test_sweep_report_of_an_empty_folder_is_one_line(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "configs/toy_vae.yaml", "--out", str(out), "--report-only"]) == 1
    assert "no evaluated runs under" in _one_line(capsys)


def test_corrupt_lpips_weights_are_named(tmp_path):
    from dae.losses.lpips import _read_state

    for name in ("vgg.pth", "vgg.safetensors"):
        (tmp_path / name).write_bytes(b"junk bytes")
        with pytest.raises(CheckpointError, match=f"{name}: unreadable or (truncated|corrupt)"):
            _read_state(tmp_path / name)


def test_metrics_log_with_a_torn_last_line_reads_and_a_corrupt_row_is_named(toy_run, capsys):
    """A run killed mid-write leaves half a row at the end of metrics.jsonl: `dae report` reads
    the whole rows; a corrupt row before the last is an error naming the file and line."""
    import shutil

    from dae.errors import RunFolderError
    from dae.run_folder import RunFolder

    run = toy_run.parent / "torn"
    shutil.copytree(toy_run, run)
    log = RunFolder(run).metrics_path
    whole = RunFolder(run).read_metrics()
    assert whole and whole[-1]["step"] == 2
    log.write_text(log.read_text() + '{"step": 3, "lo')
    assert RunFolder(run).read_metrics() == whole
    assert main(["report", str(run), "--out", str(run.parent / "torn-report")]) == 0
    log.write_text("garbage\n" + log.read_text())
    with pytest.raises(RunFolderError, match=r"metrics.jsonl: line 1 is not a JSON row"):
        RunFolder(run).read_metrics()
    assert main(["report", str(run), "--out", str(run.parent / "torn-report-2")]) == 1
    assert "metrics.jsonl: line 1 is not a JSON row" in capsys.readouterr().err


def test_corrupt_json_beside_a_run_names_the_file_and_the_fix(tmp_path, capsys):
    """`dae complexity --aggregate` of a cut-short results.json and a diffusers folder whose
    config.json is junk: one line naming the file, not a JSON traceback."""
    from dae.autoencoder.pretrained import read_pretrained
    from dae.errors import CorruptFileError

    run = tmp_path / "complexity"
    run.mkdir()
    (run / "results.json").write_text('{"summary": [1, 2')
    assert main(["complexity", "--aggregate", str(run)]) == 1
    assert f"{run}/results.json: corrupt" in _one_line(capsys)
    model = tmp_path / "vae"
    model.mkdir()
    (model / "config.json").write_bytes(b"\xff\xfe junk")
    with pytest.raises(CorruptFileError, match=r"vae/config.json: corrupt .*download the model"):
        read_pretrained(model, "AutoencoderKL")


def test_report_of_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    (tmp_path / "typo").mkdir()
    assert main(["report", str(tmp_path / "typo"), "--out", str(tmp_path / "r")]) == 1
    assert "typo is not a dae run: no metrics.jsonl or eval.json" in _one_line(capsys)
    assert not (tmp_path / "r").exists()


def test_report_into_its_own_run_folder_is_refused(toy_run, capsys):
    before = sorted(p.name for p in toy_run.iterdir())
    assert main(["report", str(toy_run), "--out", str(toy_run)]) == 1
    assert "is or contains the input run" in _one_line(capsys)
    assert sorted(p.name for p in toy_run.iterdir()) == before


def test_evaluate_with_too_few_examples_is_a_config_error(toy_run, capsys):
    assert main(["evaluate", str(toy_run), "-n", "0"]) == 2
    assert "-n: must be >= 2, got 0" in _one_line(capsys)
