"""`model.init_from` (diffusers VQModel / AutoencoderKL folders, dae runs) and the `stage2`
schedule mode that fine-tunes or retrains the decoder of a frozen pretrained autoencoder."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL, VQModel

from dae.autoencoder.kl import KLAutoencoder
from dae.autoencoder.vqgan import VQGAN
from dae.errors import CheckpointError, ConfigError
from dae.schedule import DAESchedule
from dae.train.checkpoint import save_weights
from dae.train.image_task import KLTask, VQGANTask
from dae.train.trainer import Trainer
from image_utils import synthetic_images, tiny_config

KINDS = {"vqgan": (VQGAN, VQModel, VQGANTask), "kl": (KLAutoencoder, AutoencoderKL, KLTask)}


def save_diffusers(kind: str, folder, **arch) -> dict[str, torch.Tensor]:
    """A tiny diffusers autoencoder with its own random weights, saved with save_pretrained."""
    cfg = tiny_config(kind, model=arch)
    model_cls, diffusers_cls, _ = KINDS[kind]
    torch.manual_seed(123)  # not the task's seed: the loaded weights must come from the file
    pretrained = diffusers_cls(**model_cls(cfg.model).diffusers_config())
    pretrained.save_pretrained(folder)
    return {k: v.clone() for k, v in pretrained.state_dict().items()}


@pytest.mark.parametrize("kind", ["vqgan", "kl"])
@pytest.mark.parametrize("decoder_init", ["continue", "scratch"])
def test_diffusers_weights_load_exactly_and_stage2_keeps_the_encoder(tmp_path, kind, decoder_init):
    weights = save_diffusers(kind, tmp_path / "vae")
    cfg = tiny_config(
        kind,
        model={"init_from": str(tmp_path / "vae")},
        schedule={"mode": "stage2", "stage2": {"decoder_init": decoder_init}},
        train={"steps": 3},
    )
    task = KINDS[kind][2](cfg, synthetic_images(16))
    loaded = task.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in weights.items())  # every key, exactly
    rows = Trainer(task, DAESchedule(cfg.schedule, 3), cfg.train, cfg.optim).fit()
    assert [r["stage"] for r in rows] == ["stage2"] * 3
    after = task.model.state_dict()
    encoder = [k for k in weights if k.startswith(("encoder.", "quant_conv.", "quantize."))]
    decoder = [k for k in weights if k.startswith(("decoder.", "post_quant_conv."))]
    assert encoder and all(torch.equal(after[k], weights[k]) for k in encoder)
    assert all(not after[k].requires_grad for k in encoder)
    changed = [k for k in decoder if not torch.equal(after[k], weights[k])]
    assert "decoder.conv_out.weight" in changed
    # Three Adam steps at lr 1e-3 move a weight by a few 1e-3; only a re-initialised decoder
    # (`scratch`) lies far from the loaded one.
    moved = max((after[k] - weights[k]).abs().max().item() for k in decoder)
    assert moved > 0.05 if decoder_init == "scratch" else moved < 0.01


def test_a_mismatched_architecture_lists_missing_unexpected_and_misshaped_keys(tmp_path):
    save_diffusers("vqgan", tmp_path / "big", num_res_blocks=2, z_channels=8)
    with pytest.raises(CheckpointError) as err:
        VQGANTask(
            tiny_config("vqgan", model={"init_from": str(tmp_path / "big")}), synthetic_images(16)
        )
    message = str(err.value)
    assert message.startswith(f"model.init_from: {tmp_path / 'big'} does not fit")
    assert "missing keys" not in message
    assert "52 unexpected keys (decoder.up_blocks.0.attentions.2.group_norm.bias," in message
    assert "and 44 more" in message  # long lists are cut, with the count
    assert (
        "6 shape mismatches, pretrained vs model (decoder.conv_in.weight (16, 8, 3, 3) vs "
        in message
    )
    save_diffusers("vqgan", tmp_path / "small")
    cfg = tiny_config("vqgan", model={"init_from": str(tmp_path / "small"), "num_res_blocks": 2})
    with pytest.raises(
        CheckpointError, match=r"does not fit the configured model: 52 missing keys \(decoder"
    ):
        VQGANTask(cfg, synthetic_images(16))


def test_pipeline_folder_loads_wrong_class_and_missing_source_are_named(tmp_path):
    save_diffusers("kl", tmp_path / "kl")
    cfg = tiny_config("vqgan", model={"init_from": str(tmp_path / "kl")})
    with pytest.raises(CheckpointError, match="holds a diffusers AutoencoderKL, this experiment"):
        VQGANTask(cfg, synthetic_images(16))
    pipeline = tmp_path / "pipeline"
    weights = save_diffusers("kl", pipeline / "vae")  # a diffusers pipeline's autoencoder
    task = KLTask(tiny_config("kl", model={"init_from": str(pipeline)}), synthetic_images(16))
    assert torch.equal(task.model.decoder.conv_out.weight, weights["decoder.conv_out.weight"])
    cfg = tiny_config("vqgan", model={"init_from": str(tmp_path / "nothing")})
    with pytest.raises(FileNotFoundError, match="is neither a diffusers model folder"):
        VQGANTask(cfg, synthetic_images(16))


@pytest.mark.parametrize("kind", ["vqgan", "kl"])
def test_stage2_alone_needs_pretrained_weights(kind):
    with pytest.raises(ConfigError, match="^schedule.mode: stage2 trains only the decoder"):
        tiny_config(kind, schedule={"mode": "stage2"})


def test_a_dae_run_with_an_aux_decoder_loads_into_a_fresh_model(tmp_path):
    cfg = tiny_config("vqgan", model={"restart_dead_codes": 2})
    torch.manual_seed(7)
    trained = VQGAN(cfg.model)
    trained.attach_aux_decoder(0.5)  # DAE-only: left out of the strict check
    save_weights(tmp_path / "run" / "model.safetensors", trained, {})
    task = VQGANTask(
        tiny_config("vqgan", model={"init_from": str(tmp_path / "run")}), synthetic_images(16)
    )
    want = trained.state_dict()
    got = task.model.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in got if k in want)
    assert "quantize.code_usage" not in got  # the run's training-only buffers are not needed


def test_dae_train_fine_tunes_a_diffusers_decoder_from_the_command_line(tmp_path):
    """The YAML route: `dae train` with model.init_from and schedule.mode=stage2."""
    import shutil

    import yaml
    from safetensors.torch import load_file

    from dae.cli import main
    from dae.config import to_dict
    from dae.metrics.evaluate import load_run
    from image_utils import write_image_folder

    weights = save_diffusers("vqgan", tmp_path / "vae")
    cfg = tiny_config(
        "vqgan",
        data={"name": "folder", "root": str(write_image_folder(tmp_path / "images",
              synthetic_images(8))), "image_size": 16, "source": "stream", "workers": 0},
        model={"init_from": str(tmp_path / "vae")},
        schedule={"mode": "stage2", "stage2": {"decoder_init": "continue"}},
        train={"steps": 2},
    )  # fmt: skip
    config = tmp_path / "finetune.yaml"
    config.write_text(yaml.safe_dump(to_dict(cfg)))
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 0
    trained = load_file(tmp_path / "run" / "model.safetensors")
    assert all(torch.equal(trained[k], weights[k]) for k in weights if k.startswith("encoder."))
    assert not torch.equal(trained["decoder.conv_out.weight"], weights["decoder.conv_out.weight"])
    # evaluating the finished run needs its own weights only, not the pretrained folder
    shutil.rmtree(tmp_path / "vae")
    _, model = load_run(tmp_path / "run")
    assert torch.equal(model.decoder.conv_out.weight, trained["decoder.conv_out.weight"])
