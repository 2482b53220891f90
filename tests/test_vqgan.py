"""VQGAN model and its losses: quantiser properties, commitment form, GAN weight, dropout, LPIPS."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

from dae.autoencoder.registry import build_image_autoencoder
from dae.autoencoder.vqgan import VQGAN, Quantizer, VQGANConfig
from dae.losses.discriminator import ActNorm, DiscriminatorConfig, PatchDiscriminator
from dae.losses.gan import adaptive_weight, discriminator_loss
from dae.losses.lpips import LPIPS
from dae.losses.reconstruction import Reconstruction, ReconstructionConfig
from dae.losses.vq import vq_losses
from dae.schedule import DAESchedule, ScheduleConfig
from image_utils import TINY_MODEL


def tiny_vqgan(**kw) -> VQGAN:
    torch.manual_seed(0)
    return VQGAN(VQGANConfig(**{**TINY_MODEL, "n_embed": 16, "embed_dim": 4, **kw}))


def test_quantised_output_is_the_codebook_row_of_its_index():
    q = Quantizer(16, 4)
    z = torch.randn(2, 4, 3, 5)
    out = q.quantize(z)
    assert out.indices.shape == (2, 3, 5)
    rows = q.embedding.weight[out.indices].permute(0, 3, 1, 2)
    assert torch.equal(q.lookup(out.indices), rows)
    # the straight-through output z + (e - z) is e up to one rounding (diffusers' formula, kept
    # so exported models reconstruct bit-identically)
    torch.testing.assert_close(out.z_q, rows, rtol=0, atol=1e-6)
    # and the index is the nearest row
    dist = ((z.permute(0, 2, 3, 1)[..., None, :] - q.embedding.weight) ** 2).sum(-1)
    assert torch.equal(out.indices, dist.argmin(-1))


def test_dead_codes_restart_onto_encoder_outputs_only_while_the_codebook_trains():
    torch.manual_seed(0)
    q = Quantizer(16, 4, restart_every=2)
    z = torch.randn(2, 4, 3, 5)
    before = q.embedding.weight.detach().clone()
    used = q.quantize(z).indices.unique()
    assert torch.equal(q.embedding.weight, before)  # mid-window: nothing moves
    assert q.quantize(z).indices.unique().tolist() == used.tolist()
    dead = torch.tensor([i for i in range(16) if i not in used.tolist()])
    after = q.embedding.weight.detach()
    assert q.restarted == len(dead) > 0
    assert torch.equal(after[used], before[used])  # used codes keep their values
    outputs = z.permute(0, 2, 3, 1).reshape(-1, 4)
    # every restarted code is exactly one of the batch's encoder outputs
    assert all((outputs == row).all(1).any() for row in after[dead])
    assert float(q.code_usage.sum()) == 0 and int(q.usage_clock) == 2  # a fresh window
    # a codebook that does not train (DAE stage 2, or eval mode) never moves
    for frozen in (q.requires_grad_(False).train(), q.requires_grad_(True).eval()):
        snapshot = frozen.embedding.weight.detach().clone()
        for _ in range(4):
            frozen.quantize(torch.randn(2, 4, 3, 5) * 10)
        assert torch.equal(frozen.embedding.weight, snapshot)


def test_nearest_neighbour_search_runs_in_fp32_under_bf16_autocast():
    q = Quantizer(64, 8)
    z = torch.randn(2, 8, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        zb = nn.functional.conv2d(z, torch.eye(8).view(8, 8, 1, 1))  # a bf16 tensor, as from a conv
        assert zb.dtype == torch.bfloat16
        indices = q.nearest(zb)
        z_q = q.quantize(zb).z_q
    assert torch.equal(indices, q.nearest(zb.float()))
    assert z_q.dtype == torch.float32


@pytest.mark.parametrize("legacy", [False, True])
def test_commitment_beta_is_on_the_encoder_term(legacy):
    z = torch.randn(3, 4, requires_grad=True)
    e = torch.randn(3, 4, requires_grad=True)
    vq_losses(z, e, beta=0.25, legacy=legacy).total.backward()
    n = z.numel()
    enc, book = (1.0, 0.25) if legacy else (0.25, 1.0)
    torch.testing.assert_close(z.grad, enc * 2 * (z - e).detach() / n)
    torch.testing.assert_close(e.grad, book * 2 * (e - z).detach() / n)


def test_adaptive_weight_known_case():
    w = nn.Parameter(torch.zeros(2, 2))
    a, b = torch.tensor([[3.0, 0.0], [0.0, 4.0]]), torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    rec, gan = (a * w).sum(), (b * w).sum()  # gradients a (norm 5) and b (norm 1)
    weight = adaptive_weight(rec, gan, w, disc_weight=0.8)
    torch.testing.assert_close(weight, torch.tensor(0.8 * 5.0 / (1.0 + 1e-4)))
    big = adaptive_weight((a * w).sum(), (0 * w).sum(), w, disc_weight=1.0)
    assert big.item() == 1e4  # clamped


def test_hinge_and_vanilla_discriminator_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # hinge: relu(1 - real) = [0, .5], relu(1 + fake) = [0, 1]
    assert discriminator_loss("hinge", real, fake).item() == pytest.approx(0.5 * (0.25 + 0.5))
    vanilla = 0.5 * (nn.functional.softplus(-real).mean() + nn.functional.softplus(fake).mean())
    assert discriminator_loss("vanilla", real, fake).item() == pytest.approx(vanilla.item())


def test_patch_discriminator_shapes():
    d = PatchDiscriminator(3, ndf=8, n_layers=3)
    assert d(torch.randn(2, 3, 32, 32)).shape == (2, 1, 2, 2)  # taming's 3-layer PatchGAN
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 3


def test_vqgan_shapes_and_index_round_trip():
    model = tiny_vqgan().eval()
    x = torch.randn(2, 3, 16, 16)
    out = model(x)
    assert out.sample.shape == x.shape and out.indices.shape == (2, 8, 8)
    assert torch.equal(model.encode_to_indices(x), out.indices)
    torch.testing.assert_close(model.decode_indices(out.indices), out.sample)


def resnet_dropouts(decoder: nn.Module) -> list[nn.Module]:
    return [m.dropout for m in decoder.modules() if isinstance(m, ResnetBlock2D)]


def test_dropout2d_in_every_decoder_resnet_block_in_stage1_and_gone_in_stage2():
    model = tiny_vqgan()
    blocks = resnet_dropouts(model.decoder)
    assert len(blocks) == 2 + 2 * 2  # mid block (2) + 2 levels x (num_res_blocks + 1)
    schedule = DAESchedule(ScheduleConfig(mode="dae", weak_decoder="dropout2d", dropout_p=0.3), 4)
    schedule.prepare(model)
    schedule.enter(model, "stage1")
    assert all(isinstance(d, nn.Dropout2d) and d.p == 0.3 for d in resnet_dropouts(model.decoder))
    # attention's own output dropout is not a ResNet block's and stays as it was
    attn_drop = [
        m for n, m in model.decoder.named_modules() if "to_out" in n and isinstance(m, nn.Dropout)
    ]
    assert attn_drop and all(type(m) is nn.Dropout and m.p == 0.0 for m in attn_drop)
    assert all(type(d) is nn.Dropout for d in resnet_dropouts(model.encoder))  # encoder untouched
    schedule.enter(model, "stage2")
    assert all(type(d) is nn.Dropout and d.p == 0.0 for d in resnet_dropouts(model.decoder))


def test_aux_decoder_is_half_width_and_owns_the_gan_layer():
    model = tiny_vqgan()
    DAESchedule(ScheduleConfig(mode="dae", aux_width=0.5), 4).prepare(model)
    full = model.decoder.conv_in.out_channels
    assert model.aux_decoder.decoder.conv_in.out_channels == full // 2
    model.use_aux_decoder = True
    assert model.last_layer() is model.aux_decoder.decoder.conv_out.weight
    x = torch.randn(1, 3, 16, 16)
    assert model(x).sample.shape == x.shape
    model.use_aux_decoder = False
    assert model.last_layer() is model.decoder.conv_out.weight


def test_model_contract_latent_is_the_codebook_row_and_decode_follows_the_stage():
    model = tiny_vqgan().eval()
    x = torch.randn(2, 3, 16, 16)
    idx = model.encode_to_indices(x)
    assert model.kind == "vq" and model.codebook.shape == (16, 4)
    # (B, D, h, w) -> (B, h, w, D): the latent is exactly the codebook row of each index
    assert torch.equal(model.latent(x).permute(0, 2, 3, 1), model.codebook[idx])
    # forward passes straight-through z + (z_q - z).detach(): equal up to rounding
    torch.testing.assert_close(model.decode(model.latent(x)), model(x).sample)
    schedule = DAESchedule(ScheduleConfig(mode="dae", aux_width=0.5), 4)
    schedule.prepare(model)
    schedule.enter(model, "stage1")
    z = model.latent(x)
    assert torch.equal(model.decode(z), model.aux_decoder(z))
    schedule.finish(model)  # the trained model decodes with its full decoder
    assert torch.equal(model.decode(z), model.decoder(model.post_quant_conv(z)))


def test_registry_names_build_the_paper_architectures():
    f16 = build_image_autoencoder("vqgan-f16", resolution=32, ch=32)  # narrow, same layout
    assert f16.cfg.ch_mult == [1, 1, 2, 2, 4] and f16.quantize.embedding.weight.shape == (1024, 256)
    assert f16.cfg.downsample_factor == 16
    with pytest.raises(KeyError, match="did you mean"):
        build_image_autoencoder("vqgan-f9")


def test_lpips_from_weight_files(tmp_path):
    """No real LPIPS weights exist here: random ones, saved and loaded by path, exercise the code."""
    torch.manual_seed(0)
    ref = LPIPS()
    vgg = {f"features.{k}": v for k, v in ref.features.state_dict().items()}
    lins = {f"lin{i}.model.1.weight": m.weight.abs() for i, m in enumerate(ref.lins)}
    torch.save(vgg, tmp_path / "vgg16.pth")
    torch.save(lins, tmp_path / "lpips_vgg.pth")
    cfg = ReconstructionConfig(
        perceptual_weight=1.0,
        lpips_vgg=str(tmp_path / "vgg16.pth"),
        lpips_lin=str(tmp_path / "lpips_vgg.pth"),
    )
    rec = Reconstruction(cfg)
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    assert rec.lpips(x, x).abs().max() < 1e-6
    d = rec.lpips(x, y)
    assert d.shape == (2, 1, 1, 1) and (d > 0).all()
    torch.testing.assert_close(rec(x, y), (x - y).abs() + d)
    assert not any(p.requires_grad for p in rec.lpips.parameters())
    with pytest.raises(ValueError, match="needs both"):
        ReconstructionConfig(perceptual_weight=1.0)


def test_separate_batchnorm_batches_hide_a_contrast_change_that_one_shared_batch_shows():
    """Why `disc.shared_batch`: taming's discriminator sees the real and the reconstructed batch
    in two passes, and BatchNorm normalises each by its own channel means, so a fresh PatchGAN
    scores a half-contrast batch as the real one (a logit gap of 2e-4 here); in one batch it
    scores them 0.24 apart."""
    torch.manual_seed(0)
    d = PatchDiscriminator(3, ndf=16, n_layers=3).train()
    x = torch.rand(32, 3, 32, 32) * 2 - 1
    fake = x * 0.5
    with torch.no_grad():
        separate = (d(x).mean() - d(fake).mean()).abs().item()
        both = d(torch.cat([x, fake]))
        shared = (both[:32].mean() - both[32:].mean()).abs().item()
    assert separate < 1e-3 and shared > 0.1


@pytest.mark.parametrize("norm", ["actnorm", "none"])
def test_a_discriminator_without_batchnorm_scores_each_image_on_its_own(norm):
    """`disc.norm` actnorm / none: an image's logits do not depend on the rest of its batch, so a
    half-contrast batch in its own pass is told apart as in a shared one (BatchNorm: 2e-4)."""
    torch.manual_seed(0)
    d = PatchDiscriminator(3, ndf=16, n_layers=3, norm=norm).train()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    x = torch.rand(32, 3, 32, 32) * 2 - 1
    fake = x * 0.5
    with torch.no_grad():
        real_alone, fake_alone = d(x), d(fake)  # actnorm: the first batch sets its map
        both = d(torch.cat([x, fake]))
    torch.testing.assert_close(both, torch.cat([real_alone, fake_alone]))
    gap = (real_alone.mean() - fake_alone.mean()).abs().item()
    if norm == "actnorm":  # scale-free: the gap is that of a net normalised to unit activations
        assert gap > 0.1
    else:  # no norm: a positively homogeneous net (zero biases at init) scales with its input
        torch.testing.assert_close(fake_alone, 0.5 * real_alone)


def test_actnorm_sets_unit_statistics_from_its_first_training_batch_only():
    norm = ActNorm(3)
    x = torch.randn(8, 3, 5, 5) * torch.tensor([2.0, 0.5, 3.0]).view(1, 3, 1, 1) + 4.0
    with torch.no_grad():
        norm.eval()(x)  # eval mode does not initialise
        assert norm.initialized.item() == 0
        y = norm.train()(x)
        torch.testing.assert_close(y.mean((0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
        torch.testing.assert_close(y.std((0, 2, 3)), torch.ones(3), atol=1e-5, rtol=0)
        assert norm.initialized.item() == 1 and "initialized" in norm.state_dict()
        before = [t.clone() for t in (norm.loc, norm.scale)]
        norm(x * 10)  # later batches leave the map alone
        assert all(torch.equal(a, b) for a, b in zip(before, (norm.loc, norm.scale)))
    d = PatchDiscriminator(3, ndf=8, n_layers=2, norm="actnorm")
    d(torch.randn(2, 3, 16, 16))
    d.reset_parameters()  # a stage-2 reset re-initialises from the next batch
    assert all(m.initialized.item() == 0 for m in d.modules() if isinstance(m, ActNorm))
    with pytest.raises(ValueError, match="norm"):
        DiscriminatorConfig(norm="group")
