"""`train.precision`: what `auto` picks per machine, that the run records it, fp32 where needed."""

import json

import pytest
import torch

from dae.config import from_dict
from dae.errors import ConfigError
from dae.losses.gan import discriminator_loss, generator_loss
from dae.probe import ProbeConfig
from dae.run_folder import RunFolder
from dae.schedule import DAESchedule
from dae.train.image_task import KLTask, VQGANTask
from dae.train.precision import CPU_BF16_ENV, resolve_precision
from dae.train.task import TrainConfig
from dae.train.trainer import Trainer
from image_utils import synthetic_images, tiny_config

CPU = torch.device("cpu")
BF16 = torch.autocast("cpu", dtype=torch.bfloat16)


def test_auto_is_the_default():
    assert TrainConfig().precision == "auto"


@pytest.mark.parametrize(("native", "expected"), [("1", "bf16"), ("0", "fp32")])
def test_auto_picks_bf16_only_with_native_bf16(monkeypatch, native, expected):
    monkeypatch.setenv(CPU_BF16_ENV, native)
    choice = resolve_precision("auto", CPU)
    assert choice.name == expected and choice.requested == "auto"
    assert choice.dtype == (torch.bfloat16 if expected == "bf16" else None)
    assert resolve_precision("fp32", CPU).name == "fp32"  # explicit choices are kept


def test_explicit_bf16_without_native_bf16_warns_and_bad_values_fail(monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    with pytest.warns(UserWarning, match="no native bf16") as caught:
        choice = resolve_precision("bf16", CPU)
    assert choice.name == "bf16" and "emulated" in choice.reason  # precision.json says so
    assert "auto picks fp32" in str(caught[0].message)
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    assert resolve_precision("bf16", CPU).reason == "as configured"  # native: no warning text
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ConfigError, match="train.precision"):
        resolve_precision("bf32", CPU)
    monkeypatch.setenv(CPU_BF16_ENV, "yes")
    with pytest.raises(ConfigError, match=CPU_BF16_ENV):
        resolve_precision("auto", CPU)


@pytest.mark.parametrize(("native", "expected"), [("1", "bf16"), ("0", "fp32")])
def test_trainer_logs_records_and_applies_the_choice(
    tmp_path, monkeypatch, capsys, native, expected
):
    monkeypatch.setenv(CPU_BF16_ENV, native)
    cfg = tiny_config("vqgan", train={"steps": 1}, disc={"start": 0})
    task = VQGANTask(cfg, synthetic_images(8))
    seen = []  # the dtype of the decoder's output inside the step: what autocast really did
    task.model.decoder.conv_out.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    Trainer(task, DAESchedule(cfg.schedule, 1), cfg.train, cfg.optim, run_dir=tmp_path).fit()
    record = json.loads(RunFolder(tmp_path).precision_path.read_text())
    assert (record["requested"], record["name"]) == ("auto", expected)
    assert f"train.precision=auto -> {expected} on cpu" in capsys.readouterr().err
    assert seen and set(seen) == {torch.bfloat16 if expected == "bf16" else torch.float32}
    assert all(p.dtype == torch.float32 for p in task.model.parameters())  # weights stay fp32


def test_vq_search_and_losses_stay_fp32_under_bf16():
    cfg = tiny_config("vqgan")
    quantizer = VQGANTask(cfg, synthetic_images(4)).model.quantize
    z = torch.randn(2, cfg.model.embed_dim, 4, 4)
    with BF16:
        q = quantizer.quantize(z)
    # the index is the fp32 nearest codebook row, not a bf16-rounded one
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    expected = torch.cdist(flat, quantizer.embedding.weight).argmin(1).view(2, 4, 4)
    assert torch.equal(q.indices, expected)
    rows = quantizer.embedding.weight[q.indices].permute(0, 3, 1, 2)
    torch.testing.assert_close(q.z_q, rows, rtol=0, atol=1e-6)  # straight-through z + (e - z)
    assert q.losses.total.dtype == torch.float32 and q.z_q.dtype == torch.float32


def test_kl_posterior_and_loss_stay_fp32_under_bf16():
    cfg = tiny_config("kl")
    task = KLTask(cfg, synthetic_images(4))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with BF16:
        out = task.model(x)
        loss = task.autoencoder_loss(x)[1]
    assert out.mean.dtype == out.logvar.dtype == out.kl.dtype == torch.float32
    assert loss.dtype == torch.float32


def test_gan_losses_are_fp32_from_bf16_logits():
    real = torch.tensor([0.3, -2.0, 1.7]).bfloat16()
    fake = torch.tensor([-0.5, 0.25, 2.0]).bfloat16()
    with BF16:
        d = discriminator_loss("hinge", real, fake)
        g = generator_loss(fake)
    assert d.dtype == g.dtype == torch.float32
    # hinge: 0.5 * (mean(relu(1 - real)) + mean(relu(1 + fake)))
    r, f = real.float(), fake.float()
    assert d.item() == pytest.approx(
        0.5 * ((1 - r).clamp(min=0).mean() + (1 + f).clamp(min=0).mean()).item()
    )
    assert g.item() == pytest.approx(-f.mean().item())


@pytest.mark.parametrize("kind", ["prior_dit", "prior_gpt"])
def test_priors_train_on_the_one_trainer_with_the_same_choice(tmp_path, monkeypatch, kind):
    from dae.experiments import load_config
    from dae.priors.cache import LatentCache

    monkeypatch.setenv(CPU_BF16_ENV, "1")
    tiny = {
        "prior_dit": ["model.depth=1", "model.hidden_size=16", "model.num_heads=2"],
        "prior_gpt": ["model.n_layer=1", "model.n_head=2", "model.n_embd=16"],
    }[kind]
    over = [
        "train.steps=1",
        "train.batch_size=4",
        "train.progress=false",
        "train.tensorboard=false",
    ]
    prior_kind, cfg = load_config(f"configs/{kind}_cifar10.yaml", tiny + over)
    assert cfg.train.precision == "auto"
    labels = torch.arange(4) % 2
    if kind == "prior_dit":
        meta = {"kind": "kl", "latent_shape": [2, 4, 4], "scaling_factor": 1.0}
        tensors = {"mean": torch.randn(4, 2, 4, 4), "logvar": torch.full((4, 2, 4, 4), -2.0)}
    else:
        meta = {"kind": "vq", "latent_shape": [4, 4], "codebook_size": 8}
        tensors = {"codes": torch.randint(8, (4, 4, 4), dtype=torch.int32)}
    cache = LatentCache({**tensors, "labels": labels}, {**meta, "classes": ["a", "b"]})
    prior = prior_kind.model(cfg, cache.meta)
    seen, losses = [], []
    for m in prior.modules():
        if isinstance(m, torch.nn.Linear):
            m.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    prior.register_forward_hook(lambda m, i, out: losses.append(out[0]))  # forward -> (loss, parts)
    trainer = Trainer(prior_kind.task(cfg, cache, prior), None, cfg.train, cfg.optim, tmp_path)
    trainer.fit()
    assert trainer.precision.name == "bf16"
    assert json.loads(RunFolder(tmp_path).precision_path.read_text())["name"] == "bf16"
    assert torch.bfloat16 in seen  # the matmuls ran in bf16
    assert losses and losses[0].dtype == torch.float32  # cross-entropy / MSE are fp32
    assert all(p.dtype == torch.float32 for p in prior.parameters())  # weights stay fp32


@pytest.mark.parametrize(("native", "expected"), [("1", "bf16"), ("0", "fp32")])
def test_probe_auto_is_stored_as_the_dtype_it_picks(monkeypatch, native, expected):
    """`dae probe --precision auto` records the dtype the decoders trained in, so probe.json says
    what ran and its cache is shared with the same explicit choice."""
    monkeypatch.setenv(CPU_BF16_ENV, native)
    auto = from_dict(ProbeConfig, {"precision": "auto"})
    assert auto.precision == expected
    assert auto.decoder_recipe() == ProbeConfig(precision=expected).decoder_recipe()
    with pytest.raises(ConfigError, match="precision"):
        from_dict(ProbeConfig, {"precision": "fp8"})
