import json
import math

import pytest
import torch
from torch import nn

from dae.autoencoder.dcgan import (
    VAEGAN,
    ConvEncoder,
    DCGANConfig,
    Discriminator,
    Generator,
    SimCLRGAN,
)
from dae.autoencoder.simclr import AugmentConfig, SimCLR, nt_xent, simclr_view
from dae.config import ConfigError, replace
from dae.reproduce.gan import GANExperimentConfig, GANTask, generate, random_subset
from dae.reproduce.gan_table import REAL, ROWS, markdown_table, rescore, run_table
from dae.schedule import DAESchedule
from dae.train.trainer import Trainer

TINY = (
    "model.latent_dim=8",
    "model.gen_width=4",
    "model.disc_width=4",
    "model.enc_width=4",
    "simclr.model.feature_dim=8",
    "simclr.model.width=4",
    "simclr.model.proj_dim=8",
    "simclr.steps=2",
    "simclr.batch_size=8",
    "train.steps=4",
    "train.batch_size=8",
    "train.progress=false",
    "train.tensorboard=false",
)


def tiny_cfg(*overrides: str) -> GANExperimentConfig:
    return replace(GANExperimentConfig(), [*TINY, *overrides])


def random_images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


def convs(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]


def test_architecture_shapes_and_depths():
    g, d, e = Generator(100, 8), Discriminator(8), ConvEncoder(100, 8)
    z = torch.randn(5, 100)
    x = g(z)
    assert x.shape == (5, 3, 32, 32) and x.abs().max() <= 1.0
    assert d(x).shape == (5,) and e(x).shape == (5, 100)
    # The paper's depths: generator 5 convolutions; discriminator 4 + one linear layer; encoder 5.
    assert len(convs(g)) == 5 and len(convs(d)) == 4 and len(convs(e)) == 5
    assert sum(isinstance(m, nn.Linear) for m in d.modules()) == 1
    # Half-width aux decoder: every hidden convolution has half the channels of the full one.
    model = VAEGAN(DCGANConfig(gen_width=8))
    full, half = convs(model.decoder), convs(model.build_decoder(0.5))
    assert [c.out_channels for c in full[:-1]] == [64, 32, 16, 8]
    assert [c.out_channels for c in half[:-1]] == [32, 16, 8, 4]
    assert model.build_decoder(0.5)(z[:, :100]).shape == (5, 3, 32, 32)


def test_nt_xent_known_value_and_minimised_by_identical_views():
    n, tau = 6, 0.5
    z = torch.eye(8)[:n]  # orthonormal embeddings
    # Identical views: positive similarity 1/tau, the 2n-2 negatives are orthogonal (0).
    expected = math.log(1 + (2 * n - 2) * math.exp(-1 / tau))
    assert math.isclose(nt_xent(z, z, tau).item(), expected, rel_tol=1e-5)
    gen = torch.Generator().manual_seed(0)
    anchors = torch.randn(n, 16, generator=gen)
    same = nt_xent(anchors, anchors, tau).item()
    for scale in (0.1, 0.5, 2.0):
        other = anchors + scale * torch.randn(n, 16, generator=gen)
        assert nt_xent(anchors, other, tau).item() > same
    assert nt_xent(anchors, anchors[torch.randperm(n, generator=gen)], tau).item() > same


def test_augmentations_identity_when_disabled_and_valid_otherwise():
    x = torch.rand(6, 3, 32, 32) * 2 - 1
    off = AugmentConfig(
        crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), jitter=0.0, hue=0.0, gray_p=0.0
    )
    y = simclr_view(x, off, torch.Generator().manual_seed(1))
    for a, b in zip(x, y):  # each view is the image or its mirror, nothing else
        assert torch.allclose(b, a, atol=1e-5) or torch.allclose(b, a.flip(2), atol=1e-5)
    gray = simclr_view(x, AugmentConfig(gray_p=1.0), torch.Generator().manual_seed(2))
    assert gray.shape == x.shape and gray.min() >= -1 and gray.max() <= 1
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])


def test_random_subset_is_seeded_and_mixes_sorted_classes():
    # Image folders load sorted by class: a prefix of 10 of these would all be "class 0".
    images = (torch.arange(100) // 50).to(torch.uint8).view(100, 1, 1, 1).expand(100, 3, 32, 32)
    sub = random_subset(images, 10)
    assert sub.shape == (10, 3, 32, 32) and set(sub[:, 0, 0, 0].tolist()) == {0, 1}
    assert torch.equal(sub, random_subset(images, 10)) and random_subset(images, 0) is images


def test_config_rejects_dae_without_trainable_encoder():
    with pytest.raises(ConfigError, match="schedule.mode"):
        tiny_cfg("variant=dcgan", "schedule.mode=dae")


def test_dae_vaegan_stages_freeze_encoder_and_reset_discriminator():
    cfg = tiny_cfg("variant=vaegan", "schedule.mode=dae", "schedule.aux_width=0.5")
    task = GANTask(cfg, random_images(32))
    trainer = Trainer(task, DAESchedule(cfg.schedule, cfg.train.steps), cfg.train, cfg.optim)
    snapshots = {}

    def hook(tr, logs):
        if tr.step == 2:  # end of stage 1
            snapshots["enc"] = {k: v.clone() for k, v in task.model.encoder.state_dict().items()}
            # Zero the discriminator: only the stage-2 reset can make its weights non-zero again
            # before its first stage-2 step (checked in the next hook call via `start_stage`).
            with torch.no_grad():
                for p in task.disc.parameters():
                    p.zero_()

    def reset_seen(plan):
        snapshots["reset"] = plan.reset_discriminator
        GANTask.start_stage(task, plan)
        snapshots["disc_norm"] = sum(p.abs().sum().item() for p in task.disc.parameters())

    task.start_stage = reset_seen

    trainer.hooks.append(hook)
    rows = trainer.fit()
    assert [r["stage"] for r in rows][-1] == "stage2"
    assert task.model.aux_decoder is not None and not task.model.use_aux_decoder
    for k, v in task.model.encoder.state_dict().items():
        assert torch.equal(v, snapshots["enc"][k]), k  # frozen through stage 2, BN stats included
    # The discriminator was re-initialised when stage 2 started.
    assert snapshots["reset"] and snapshots["disc_norm"] > 0
    recon = generate(task.model, random_images(5, 1), 5)
    assert recon.dtype == torch.uint8 and recon.shape == (5, 3, 32, 32)


def test_dcgan_simclr_keeps_the_simclr_backbone_frozen():
    cfg = tiny_cfg("variant=dcgan-simclr")
    backbone = SimCLR(cfg.simclr.model).backbone
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    task = GANTask(cfg, random_images(32), backbone)
    Trainer(task, DAESchedule(cfg.schedule, cfg.train.steps), cfg.train, cfg.optim).fit()
    assert isinstance(task.model, SimCLRGAN) and not task.model.encoder.training
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, before[k]), k
    z = task.model.latent(torch.rand(3, 3, 32, 32))
    assert torch.allclose(z.norm(dim=1), torch.full((3,), 8**0.5), atol=1e-4)


def test_gan_table_end_to_end_and_rescore(tmp_path):
    def scorer(images: torch.Tensor) -> dict[str, float]:
        return {"mean-pixel": images.float().mean().item()}

    base = tiny_cfg()
    train, test = random_images(48), random_images(16, 1)
    summary = run_table(base, train, test, 12, None, tmp_path, progress=False)
    assert "pending" in summary["scores"]
    assert [r["name"] for r in summary["rows"]] == [r.name for r in ROWS]
    for row in ROWS:
        assert (tmp_path / f"grid_{row.name.lower()}.png").is_file()
        saved = torch.load(tmp_path / "outputs" / f"{row.name.lower()}.pt", weights_only=True)
        assert saved.shape == (12, 3, 32, 32) and saved.dtype == torch.uint8
    rescored = rescore(tmp_path, scorer, train)
    assert set(rescored["scores"]) == {r.name for r in ROWS} | {REAL}
    expected = random_subset(train, 12, seed=1).float().mean().item()
    assert math.isclose(rescored["scores"][REAL]["mean-pixel"], expected, rel_tol=1e-6)
    table = (tmp_path / "results.md").read_text()
    assert "| DAE-VAEGAN | reconstructions |" in table and "46.12" in table and "168.23" in table
    assert json.loads((tmp_path / "results.json").read_text())["budget"]["steps"] == 4
    assert markdown_table(rescored) == table


def test_reproduce_gan_cli_tiny(tmp_path, data_root, monkeypatch, capsys):
    pytest.importorskip("dae.data.images")
    from dae.cli import main

    monkeypatch.setenv("DAE_DATA", str(data_root))
    args = ["reproduce", "gan", "--rows", "DCGAN,VAEGAN", "--n-eval", "16", "--out", str(tmp_path)]
    for override in (*TINY, "data.limit=64"):
        args += ["--set", override]
    assert main(args) == 0
    summary = json.loads((tmp_path / "results.json").read_text())
    assert [r["name"] for r in summary["rows"]] == ["DCGAN", "VAEGAN"]
    assert (
        summary["budget"]["n_train"] == 64
        and "| VAEGAN | reconstructions |" in capsys.readouterr().out
    )
    assert main(["reproduce", "gan", "--rows", "GAN9000", "--out", str(tmp_path / "x")]) == 2


def test_rescore_of_a_folder_without_a_readable_summary_is_named(tmp_path):
    from dae.errors import CorruptFileError, MissingFileError
    from dae.reproduce.gan_table import read_summary

    with pytest.raises(MissingFileError, match="--rescore: no results.json in .*run the table"):
        read_summary(tmp_path)
    (tmp_path / "results.json").write_text('{"rows": [')
    with pytest.raises(CorruptFileError, match="results.json: corrupt .*without --rescore"):
        read_summary(tmp_path)
