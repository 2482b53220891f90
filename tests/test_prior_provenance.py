"""Prior artefacts are keyed by what made them, and runs store absolute paths.

A latent cache or a trained prior is reused only if this config on this autoencoder made it;
`compare-priors` retrains a stale prior, `train-prior --resume` refuses stale latents.
"""

# The fixtures `image_folder` (a parameter) and `fake_kind` (autouse: the tiny `fake_image_ae`
# kind in the experiments table) come from the end-to-end prior tests.
# ruff: noqa: F811
import json
import os
import shutil

import yaml

from dae.cli import main
from dae.priors.cache import read_cache_meta
from test_prior_e2e import (  # noqa: F401
    FAST,
    REPO,
    TINY,
    fake_kind,
    image_folder,
    write_ae_config,
)

GPT = str(REPO / "configs" / "prior_gpt_cifar10.yaml")


def _sets(image_folder, *extra: str) -> list[str]:
    data = [f"data.root={image_folder}", "data.name=folder", "data.cache=false"]
    out = []
    for item in TINY["prior_gpt"] + FAST + data + list(extra):
        out += ["--set", item]
    return out


def _train_ae(tmp_path, image_folder, name: str, mode: str = "dae", seed: int = 0) -> str:
    cfg = write_ae_config(tmp_path / f"{name}.yaml", image_folder, "vq", mode)
    out = tmp_path / name
    extra = ["--overwrite"] if out.exists() else []
    assert main(["train", str(cfg), "--out", str(out), "--set", f"train.seed={seed}", *extra]) == 0
    return str(out)


def _last_step(run) -> int:
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"]


def test_compare_priors_retrains_when_config_or_autoencoder_change(tmp_path, image_folder, capsys):
    base, dae = (_train_ae(tmp_path, image_folder, m, m) for m in ("baseline", "dae"))
    cmp = tmp_path / "cmp"
    args = ["compare-priors", base, dae, GPT, "--out", str(cmp), "--n", "2", "--score", "none"]
    assert main(args + _sets(image_folder)) == 0
    assert _last_step(cmp / "dae") == 4
    # Other steps: the old priors are not reused under the new config, nor replaced unasked.
    weights = (cmp / "baseline" / "model.safetensors").read_bytes()
    assert main(args + _sets(image_folder, "train.steps=6")) == 1
    assert "train.steps: 4 in the run, 6 now); pass --overwrite" in capsys.readouterr().err
    assert (cmp / "baseline" / "model.safetensors").read_bytes() == weights
    assert _last_step(cmp / "dae") == 4
    assert main(args + _sets(image_folder, "train.steps=6") + ["--overwrite"]) == 0
    assert _last_step(cmp / "dae") == 6
    assert yaml.safe_load((cmp / "dae" / "config.yaml").read_text())["train"]["steps"] == 6
    # The AE runs swapped: each prior is retrained on its new autoencoder's latents.
    swapped = ["compare-priors", dae, base, *args[3:]]
    assert main(swapped + _sets(image_folder, "train.steps=6")) == 1
    assert main(swapped + _sets(image_folder, "train.steps=6") + ["--overwrite"]) == 0
    rows = json.loads((cmp / "results.json").read_text())
    for row, ae in zip(rows, (dae, base), strict=True):
        meta = read_cache_meta(cmp / row["run"] / "latents.safetensors")
        assert meta["ae_run"] == ae and meta["made_from"]["ae"]["run"] == ae
    # Nothing changed: the priors are reused, not retrained (the log is not rewritten).
    before = (cmp / "dae" / "metrics.jsonl").stat().st_mtime_ns
    assert main(swapped + _sets(image_folder, "train.steps=6")) == 0
    assert (cmp / "dae" / "metrics.jsonl").stat().st_mtime_ns == before


def test_train_prior_never_uses_latents_of_another_autoencoder(tmp_path, image_folder, capsys):
    ae = _train_ae(tmp_path, image_folder, "ae")
    prior = tmp_path / "prior"
    args = ["train-prior", ae, GPT, "--out", str(prior), *_sets(image_folder)]
    assert main(args) == 0
    codes = read_cache_meta(prior / "latents.safetensors")["made_from"]["ae"]["weights_sha256"]
    # The autoencoder is retrained in place (same path, other weights).
    _train_ae(tmp_path, image_folder, "ae", seed=1)
    assert main([*args, "--resume"]) == 2  # its prior was trained on the old latents
    assert "latents made from another autoencoder" in capsys.readouterr().err
    # Nor does `dae sample` decode that prior's latents with the replaced autoencoder.
    assert main(["sample", str(prior), "--n", "2", "--out", str(tmp_path / "s")]) == 1
    assert "autoencoder run was replaced after the prior" in capsys.readouterr().err
    # A folder left with only a config and a cache (a run killed while encoding): re-encoded.
    (prior / "metrics.jsonl").unlink()
    shutil.rmtree(prior / "checkpoints")
    assert main(args) == 1  # its weights are still there: a finished run, kept
    assert "already holds a run" in capsys.readouterr().err
    for name in ("model.safetensors", "model_ema.safetensors"):
        (prior / name).unlink()
    assert main(args) == 0
    assert "re-encoding" in capsys.readouterr().out
    now = read_cache_meta(prior / "latents.safetensors")["made_from"]["ae"]["weights_sha256"]
    assert now != codes


def test_runs_store_absolute_paths_and_name_the_field(tmp_path, image_folder, monkeypatch, capsys):
    monkeypatch.chdir(image_folder.parent)
    rel_images = os.path.relpath(image_folder)
    cfg = write_ae_config(tmp_path / "ae.yaml", image_folder, "vq", "dae")
    assert main(["train", str(cfg), "--out", "ae-run", "--set", f"data.root={rel_images}"]) == 0
    saved = yaml.safe_load((image_folder.parent / "ae-run" / "config.yaml").read_text())
    assert saved["data"]["root"] == str(image_folder)
    # A run made before roots were stored absolute still resumes from its working directory.
    saved["data"]["root"] = rel_images
    (image_folder.parent / "ae-run" / "config.yaml").write_text(yaml.safe_dump(saved))
    resume = ["train", str(cfg), "--out", "ae-run", "--set", f"data.root={rel_images}"]
    assert main([*resume, "--resume"]) == 0
    args = ["train-prior", "ae-run", GPT, "--out", "prior-run", *_sets(rel_images)]
    assert main(args) == 0
    prior = yaml.safe_load((image_folder.parent / "prior-run" / "config.yaml").read_text())
    assert prior["ae_run"] == str(image_folder.parent / "ae-run")
    assert prior["data"]["root"] == str(image_folder)
    # From another working directory the run still samples.
    monkeypatch.chdir(tmp_path)
    run = str(image_folder.parent / "prior-run")
    assert main(["sample", run, "--n", "2", "--out", str(tmp_path / "s")]) == 0
    # A run whose ae_run is gone names the field.
    prior["ae_run"] = "runs/nowhere"
    (image_folder.parent / "prior-run" / "config.yaml").write_text(yaml.safe_dump(prior))
    assert main(["sample", run, "--n", "2", "--out", str(tmp_path / "s2")]) == 2
    assert "ae_run: runs/nowhere" in capsys.readouterr().err
