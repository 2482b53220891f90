"""The four quantizers (vq, vq-l2, fsq, lfq): codebook-lookup property, fp32 under bf16 autocast,
nothing moves when frozen, diffusers export (vq-l2) or a clear refusal, latent cache + GPT prior."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from diffusers import VQModel
from torch import nn

from dae.autoencoder.vqgan import VQGAN, VQGANConfig
from dae.config import ConfigError, from_dict
from dae.data.transforms import to_float
from dae.priors.cache import CacheConfig, encode_dataset
from dae.priors.models import GPTPrior, GPTPriorConfig
from image_utils import QUANTIZER_MODELS, TINY_MODEL, synthetic_images

NAMES = list(QUANTIZER_MODELS)


def tiny_model(name: str, **kw) -> VQGAN:
    torch.manual_seed(0)
    cfg = {**TINY_MODEL, "n_embed": 16, "embed_dim": 4, **QUANTIZER_MODELS[name], **kw}
    return VQGAN(VQGANConfig(**cfg))


@pytest.mark.parametrize("name", NAMES)
def test_quantised_output_is_the_code_vector_of_its_index(name):
    q = tiny_model(name).quantize.train()
    z = torch.randn(2, 4, 3, 5) * 2
    out = q.quantize(z)
    codebook = q.codebook().detach()
    assert out.indices.shape == (2, 3, 5) and out.indices.dtype == torch.long
    assert 0 <= out.indices.min() and out.indices.max() < q.codebook_size == len(codebook)
    rows = codebook[out.indices].permute(0, 3, 1, 2)  # (B, h, w, D) -> (B, D, h, w)
    assert torch.equal(q.lookup(out.indices), rows)
    # straight-through z + (e - z): e up to one rounding
    torch.testing.assert_close(out.z_q, rows, rtol=0, atol=1e-6)
    assert torch.equal(q.nearest(z), out.indices)
    flat = z.permute(0, 2, 3, 1)  # (B, D, h, w) -> (B, h, w, D)
    if name == "vq":
        assert torch.equal(out.indices, torch.cdist(flat, codebook).argmin(-1))
    elif name == "vq-l2":  # highest cosine; the codes decode to unit vectors
        assert torch.equal(out.indices, (F.normalize(flat, dim=-1) @ codebook.T).argmax(-1))
        torch.testing.assert_close(codebook.norm(dim=1), torch.ones(16))
    elif name == "lfq":  # the sign of each channel
        assert torch.equal(rows, torch.where(z > 0, 1.0, -1.0))
    else:  # fsq: the product grid, every channel on one of its levels
        assert len(codebook.unique(dim=0)) == math.prod(q.fsq._levels.tolist())
        for d, levels in enumerate(q.fsq._levels.tolist()):
            assert len(rows[:, d].unique()) <= levels == len(codebook[:, d].unique())


@pytest.mark.parametrize("name", NAMES)
def test_search_and_losses_run_in_fp32_under_bf16_autocast(name):
    q = tiny_model(name).quantize.train()
    z = torch.randn(2, 4, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        zb = nn.functional.conv2d(z, torch.eye(4).view(4, 4, 1, 1))  # a bf16 tensor, as from a conv
        assert zb.dtype == torch.bfloat16
        indices = q.nearest(zb)
        out = q.quantize(zb)
    plain = q.quantize(zb.float())  # outside autocast, from the same values
    assert torch.equal(indices, plain.indices) and torch.equal(out.indices, plain.indices)
    assert out.z_q.dtype == torch.float32 and torch.equal(out.z_q, plain.z_q)
    for got, want in zip(out.losses, plain.losses):
        assert (got is None and want is None) or torch.equal(got, want)


@pytest.mark.parametrize("name", NAMES)
def test_a_frozen_quantizer_changes_nothing(name):
    restart = {"restart_dead_codes": 1} if name in ("vq", "vq-l2") else {}
    q = tiny_model(name, **restart).quantize
    for frozen in (q.requires_grad_(False).train(), q.requires_grad_(True).eval()):
        state = {k: v.clone() for k, v in frozen.state_dict().items()}
        codebook = frozen.codebook().detach().clone()
        for _ in range(3):
            frozen.quantize(torch.randn(2, 4, 3, 5) * 10)
        assert all(torch.equal(v, frozen.state_dict()[k]) for k, v in state.items())
        assert torch.equal(frozen.codebook(), codebook)
    if restart:  # ...while a training codebook does move (restarts onto far-away outputs)
        q.requires_grad_(True).train()
        q.quantize(torch.randn(2, 4, 3, 5) * 10)
        assert not torch.equal(q.codebook(), codebook)


def test_vq_l2_exports_to_diffusers_with_the_codebook_stored_unit_norm():
    ours = tiny_model("vq-l2").eval()
    with torch.no_grad():  # rows of unequal norm, as training leaves them
        ours.quantize.embedding.weight.mul_(torch.rand(16, 1) * 3 + 0.1)
    theirs = ours.to_diffusers()
    assert isinstance(theirs, VQModel)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        h = theirs.encode(x).latents
        assert torch.equal(theirs.quantize(h)[2][2].view(2, 8, 8), ours.encode_to_indices(x))
        torch.testing.assert_close(theirs(x).sample, ours(x).sample, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["fsq", "lfq"])
def test_implicit_codebooks_refuse_diffusers_export_by_name(name):
    with pytest.raises(ConfigError, match="model.quantizer: .*only vq and vq-l2 export"):
        tiny_model(name).to_diffusers()


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"quantizer": "fsq", "fsq_levels": [8, 5]}, "embed_dim: fsq quantises one channel"),
        ({"quantizer": "fsq", "fsq_levels": [2, 2, 2, 2]}, "fsq_levels: every level must be >= 3"),
        ({"quantizer": "lfq", "embed_dim": 20}, "embed_dim: lfq: at most 16 bits"),
        ({"quantizer": "lfq", "restart_dead_codes": 5}, "restart_dead_codes: only vq and vq-l2"),
        ({"quantizer": "rvq"}, "quantizer: must be one of"),
    ],
)
def test_bad_quantizer_settings_name_the_key(model, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(VQGANConfig, {**TINY_MODEL, "embed_dim": 4, **model}, prefix="model")


@pytest.mark.parametrize("name", NAMES)
def test_latent_cache_and_gpt_prior_take_every_quantizers_indices(name):
    model = tiny_model(name).eval()
    data = synthetic_images(8)
    cache = encode_dataset(
        model, "final", data.images, data.labels, data.classes, CacheConfig(batch_size=4)
    )
    codes = cache.tensors["codes"]
    assert torch.equal(codes.long(), model.encode_to_indices(to_float(data.images)))
    assert cache.meta["codebook_size"] == model.cfg.codebook_size
    cfg = from_dict(GPTPriorConfig, {"model": {"n_layer": 1, "n_head": 1, "n_embd": 8}})
    prior = GPTPrior(cfg, cache.meta)
    loss, _ = prior.loss(codes.long(), cache.tensors["labels"], torch.Generator())
    # an untrained GPT's cross-entropy is about log(K): the vocabulary is every code
    assert abs(loss.item() - math.log(model.cfg.codebook_size)) < 1.0
    sampled = prior.sample(
        torch.zeros(2, dtype=torch.long), torch.Generator().manual_seed(0), "cpu"
    )
    assert sampled.shape == (2, 8, 8) and sampled.max() < model.cfg.codebook_size
    assert model.decode_indices(sampled.long()).shape == (2, 3, 16, 16)
