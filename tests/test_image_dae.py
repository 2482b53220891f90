"""DAE on the image autoencoders: stage-2 freezing, optimiser contents, the GAN clock per stage,
discriminator reset, exact resume, and the paper-scale presets."""

from __future__ import annotations

import pytest
import torch

from dae.config import ConfigError
from dae.experiments import load_experiment_config
from dae.losses.discriminator import DiscriminatorConfig
from dae.schedule import DAESchedule
from dae.train.image_task import VQGANTask
from dae.train.trainer import Trainer, prepare_run_dir
from image_utils import QUANTIZER_MODELS, synthetic_images, tiny_config


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def quantizer_model(name: str, restart_every: int) -> dict:
    """A tiny VQGAN's `model` section; the codebook quantizers restart dead codes."""
    restart = {"restart_dead_codes": restart_every} if name in ("vq", "vq-l2") else {}
    return {**QUANTIZER_MODELS[name], **restart}


@pytest.mark.parametrize("quantizer", list(QUANTIZER_MODELS))
@pytest.mark.parametrize(("weak", "reset"), [("aux", True), ("dropout2d", False)])
def test_stage2_freezes_encoder_and_codebook_and_trains_only_the_decoder(weak, reset, quantizer):
    cfg = tiny_config(
        "vqgan",
        schedule={"mode": "dae", "weak_decoder": weak, "stage2": {"reset_discriminator": reset}},
        # restarts on every stage-1 step; none in stage 2
        model=quantizer_model(quantizer, restart_every=1),
    )
    task = VQGANTask(cfg, synthetic_images(16))
    model = task.model
    seen: dict[int, dict] = {}

    def record(trainer, logs):
        seen[trainer.step] = {
            "encoder": snapshot(model.encoder),
            "quant_conv": snapshot(model.quant_conv),
            "quantize": snapshot(model.quantize),
            "codebook": model.quantize.codebook().detach().clone(),
            "decoder": snapshot(model.decoder),
            "disc": snapshot(task.disc),
            "ae_params": {
                id(p) for g in trainer.optimizers["ae"].param_groups for p in g["params"]
            },
        }

    trainer = Trainer(task, DAESchedule(cfg.schedule, 4), cfg.train, cfg.optim, hooks=[record])
    rows = trainer.fit()
    end_stage1, end = seen[2], seen[4]
    assert bit_identical(end_stage1["encoder"], end["encoder"])
    assert bit_identical(end_stage1["quant_conv"], end["quant_conv"])
    assert bit_identical(end_stage1["quantize"], end["quantize"])
    assert torch.equal(end_stage1["codebook"], end["codebook"])
    assert not bit_identical(end_stage1["decoder"], end["decoder"])  # stage 2 does train
    # the stage-2 optimiser holds exactly the full decoder (post_quant_conv + decoder)
    decoder = {id(p) for m in (model.post_quant_conv, model.decoder) for p in m.parameters()}
    assert end["ae_params"] == decoder
    stage1 = {id(p) for m in model.encoder_modules() for p in m.parameters()}
    assert stage1 <= end_stage1["ae_params"] and not stage1 & end["ae_params"]
    # disc.start=1 counts from each stage's start: no GAN at the first step of either stage
    gan_steps = [r["step"] for r in rows if "d_loss" in r]
    assert gan_steps == [2, 4] and [r["step"] for r in rows if "g_loss" in r] == [2, 4]
    # the first stage-2 step does not train the discriminator: any change is the reset
    assert bit_identical(seen[2]["disc"], seen[3]["disc"]) is not reset
    # and the GAN step of stage 2 does train it
    assert not bit_identical(seen[3]["disc"], seen[4]["disc"])


@pytest.mark.parametrize(
    "quantizer, disc_norm", [(q, "batch") for q in QUANTIZER_MODELS] + [("vq", "actnorm")]
)
def test_resumed_vqgan_run_equals_an_uninterrupted_one(tmp_path, quantizer, disc_norm):
    cfg = tiny_config(
        "vqgan",
        # actnorm: the discriminator initialised in stage 1 is kept across the interruption, so
        # its checkpoint must say that it was initialised
        schedule={
            "mode": "dae",
            "weak_decoder": "dropout2d",
            "stage2": {"reset_discriminator": disc_norm == "batch"},
        },
        disc={"norm": disc_norm},
        train={"steps": 4, "grad_accum": 2, "ema_decay": 0.9},
        data={"hflip": True},
        # the usage window spans the interruption
        model=quantizer_model(quantizer, restart_every=3),
    )
    images = synthetic_images(16)

    def run(run_dir, hooks=(), resume=False):
        prepare_run_dir(run_dir, resume=resume, overwrite=False)
        task = VQGANTask(cfg, images)
        trainer = Trainer(
            task,
            DAESchedule(cfg.schedule, 4),
            cfg.train,
            cfg.optim,
            run_dir=run_dir,
            resume=resume,
            hooks=list(hooks),
        )
        trainer.fit()
        return task, trainer

    def interrupt(trainer, logs):
        if trainer.step == 3:  # inside stage 2, after the discriminator has started
            raise KeyboardInterrupt

    full, full_trainer = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", hooks=[interrupt])
    resumed, resumed_trainer = run(tmp_path / "b", resume=True)
    for name in ("model", "disc"):
        assert bit_identical(
            full.modules()[name].state_dict(), resumed.modules()[name].state_dict()
        )
    assert bit_identical(full_trainer.ema.shadow, resumed_trainer.ema.shadow)


@pytest.mark.parametrize("preset", ["configs/faceshq_vqgan.yaml", "configs/ldm_kl_f8.yaml"])
def test_paper_scale_presets_build_and_take_one_step(preset):
    overrides = [
        "model.resolution=32",
        "train.device=cpu",
        "train.precision=fp32",
        "train.steps=1",
        "train.batch_size=1",
        "train.progress=false",
        "train.tensorboard=false",
        "disc.start=0",
        "log.image_every=0",
    ]
    kind, cfg = load_experiment_config(preset, overrides)
    task = kind.task(cfg, synthetic_images(2, size=32))
    ch_mult = [1, 1, 2, 2, 4] if cfg.kind == "vqgan" else [1, 2, 4, 4]
    assert cfg.model.ch == 128 and cfg.model.ch_mult == ch_mult and cfg.model.num_res_blocks == 2
    before = task.model.decoder.conv_out.weight.detach().clone()
    rows = Trainer(task, DAESchedule(cfg.schedule, 1), cfg.train, cfg.optim).fit()
    assert "d_loss" in rows[-1] and torch.isfinite(torch.tensor(rows[-1]["loss"]))
    assert not torch.equal(before, task.model.decoder.conv_out.weight)


def test_mnist_preset_fits_the_real_data(data_root):
    """The preset's model matches MNIST's images; a DAE step per stage runs on them. (CIFAR-10
    is left out: its first load decodes 60k JPEGs, minutes on these machines.)"""
    _, rows = train_mnist_dae(data_root, 2, ["disc.start=0", "train.log_every=1"])
    assert [r["stage"] for r in rows] == ["stage1", "stage2"]


def train_mnist_dae(data_root, steps: int, overrides: list[str]):
    """A DAE run of the MNIST preset on the real data, batch `steps`: (task, logged rows)."""
    base = [
        f"data.root={data_root}",
        f"train.steps={steps}",
        f"train.batch_size={steps}",
        "train.progress=false",
        "train.tensorboard=false",
        "log.image_every=0",
        "schedule.mode=dae",
    ]
    kind, cfg = load_experiment_config("configs/mnist_vqgan.yaml", base + overrides)
    task = kind.task(cfg)
    rows = Trainer(task, DAESchedule(cfg.schedule, steps), cfg.train, cfg.optim).fit()
    return task, rows


@pytest.mark.parametrize("kind", ["vqgan", "kl"])
@pytest.mark.filterwarnings("ignore:train.precision=bf16")
def test_bf16_autocast_training_steps(kind):
    from dae.train.image_task import KLTask

    cfg = tiny_config(kind, train={"steps": 2, "precision": "bf16"}, disc={"start": 0})
    task = (VQGANTask if kind == "vqgan" else KLTask)(cfg, synthetic_images(8))
    rows = Trainer(task, DAESchedule(cfg.schedule, 2), cfg.train, cfg.optim).fit()
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows) and "d_loss" in rows[-1]
    assert all(p.dtype == torch.float32 for p in task.model.parameters())  # weights stay fp32


def test_fp16_is_refused_off_cuda():
    from dae.config import ConfigError
    from dae.train.task import TrainConfig

    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp16", device="cpu")
    assert TrainConfig(precision="fp16", device="cuda").precision == "fp16"


def test_test_every_logs_held_out_l1_of_the_active_decoder(data_root):
    """`log.test_every` rows carry test L1/PSNR of a fixed test subset through the decoder active
    at that step: recomputed here from the data, the final row matches the saved model."""
    from dataclasses import replace

    from dae.data.images import float_batch, load_from_config
    from dae.metrics.diagnostics import channel_spectrum, pca_dims
    from dae.metrics.reconstruction import reconstruct

    overrides = ["disc.start=100", "train.log_every=2", "log.test_every=2", "log.test_images=16"]
    task, rows = train_mnist_dae(data_root, 4, overrides)
    cfg = task.cfg
    assert [(r["step"], r["stage"]) for r in rows] == [(2, "stage1"), (4, "stage2")]
    assert all("test_rec" in r and "test_psnr" in r for r in rows)
    test = load_from_config(replace(cfg.data, split="test"))
    index = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:16]
    x = float_batch(test.subset(index), torch.arange(16))
    task.model.eval()
    with torch.no_grad():
        x_hat = reconstruct(task.model, x).float().clamp(-1, 1)
    assert rows[-1]["test_rec"] == pytest.approx((x_hat - x).abs().mean().item(), rel=1e-5)
    spectrum = channel_spectrum(task.model.latent(x))
    assert rows[-1]["test_latent_dims"] == pca_dims(spectrum)
    assert 1 <= rows[-1]["test_latent_dims"] <= task.model.cfg.embed_dim
    # the codes of the whole subset, not a batch's: distinct count and exp(entropy) of their counts
    with torch.no_grad():
        codes = task.model.encode_to_indices(x).flatten()
    _, counts = codes.unique(return_counts=True)
    p = counts.double() / counts.sum()
    assert rows[-1]["test_codebook_used"] == len(counts) > 1
    assert rows[-1]["test_codebook_perplexity"] == pytest.approx(torch.exp(-(p * p.log()).sum()))
    assert 1 <= rows[-1]["test_codebook_perplexity"] <= len(counts)


def test_test_every_must_be_a_multiple_of_log_every(data_root):
    from dae.config import ConfigError

    kind, cfg = load_experiment_config(
        "configs/mnist_vqgan.yaml",
        [f"data.root={data_root}", "train.log_every=3", "log.test_every=4", "log.image_every=0"],
    )
    with pytest.raises(ConfigError, match="test_every"):
        kind.task(cfg).hooks()


def test_logged_restarts_are_the_codes_a_stage1_batch_left_unused_and_none_in_stage2():
    # restarts after every forward: the dead codes are exactly those this batch did not pick
    # (more codes than a batch has positions, so that every batch leaves some unpicked)
    model = {**quantizer_model("vq", 1), "n_embed": 128}
    cfg = tiny_config("vqgan", schedule={"mode": "dae"}, model=model)
    task = VQGANTask(cfg, synthetic_images(16))
    rows = Trainer(task, DAESchedule(cfg.schedule, 4), cfg.train, cfg.optim).fit()
    k = cfg.model.n_embed
    stage1 = [r for r in rows if r["stage"] == "stage1"]
    stage2 = [r for r in rows if r["stage"] == "stage2"]
    assert len(stage1) == len(stage2) == 2
    for row in stage1:
        assert row["codes_restarted"] == k - round(row["codebook_usage"] * k)
    assert all(r["codes_restarted"] > 0 for r in stage1)
    # frozen codebook: unpicked codes stay put, and the rows do not repeat stage 1's last count
    assert all(r["codes_restarted"] == 0 and r["codebook_usage"] < 1 for r in stage2)
    # a quantiser without restarts logs no such column
    cfg = tiny_config("vqgan", model=quantizer_model("fsq", 0))
    rows = Trainer(VQGANTask(cfg, synthetic_images(16)), None, cfg.train, cfg.optim).fit()
    assert all("codes_restarted" not in r for r in rows)


@pytest.mark.parametrize("shared", [False, True])
def test_shared_batch_puts_real_and_reconstructed_images_in_one_discriminator_batch(shared):
    cfg = tiny_config("vqgan", disc={"start": 0, "shared_batch": shared}, train={"steps": 1})
    task = VQGANTask(cfg, synthetic_images(16))
    seen: list[int] = []
    task.disc.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    rows = Trainer(task, DAESchedule(cfg.schedule, 1), cfg.train, cfg.optim).fit()
    batch = cfg.train.batch_size
    # the generator's term, then the discriminator's step: each in one batch of 2B, or B + B
    assert seen == ([2 * batch] * 2 if shared else [batch] * 3)
    assert {"g_loss", "d_loss", "logits_real", "logits_fake"} <= rows[0].keys()


def test_max_weight_caps_the_adaptive_weight_of_the_generator_term():
    # a fresh decoder against a fresh discriminator: the uncapped ratio is far above 1e-3
    weights = {}
    for cap in (1e4, 1e-3):
        cfg = tiny_config("vqgan", disc={"start": 0, "max_weight": cap}, train={"steps": 2})
        rows = Trainer(VQGANTask(cfg, synthetic_images(16)), None, cfg.train, cfg.optim).fit()
        weights[cap] = [r["d_weight"] for r in rows]
    assert all(w > 1e-3 * 0.8 for w in weights[1e4])
    assert weights[1e-3] == pytest.approx([1e-3 * 0.8] * 2)  # the cap times disc.weight (0.8)
    with pytest.raises(ConfigError, match="max_weight: must be > 0"):
        DiscriminatorConfig(max_weight=0.0)
