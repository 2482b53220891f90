"""The image autoencoders keep NCHW activations in training (GroupNorm is slow on channels_last)."""

import pytest
import torch

from dae.autoencoder.image import ContiguousAttnProcessor
from dae.autoencoder.kl import KLAutoencoder
from dae.autoencoder.vqgan import VQGAN
from image_utils import tiny_config


@pytest.mark.parametrize("kind", ["vqgan", "kl"])
def test_every_group_norm_sees_contiguous_input_in_training(kind):
    cfg = tiny_config(kind).model  # attention at 8x8 and in the middle blocks
    model = (VQGAN if kind == "vqgan" else KLAutoencoder)(cfg).train()
    layouts = []
    for module in model.modules():
        if isinstance(module, torch.nn.GroupNorm):
            module.register_forward_hook(lambda m, i, o: layouts.append(i[0].is_contiguous()))
    processors = [getattr(m, "processor", None) for m in model.modules()]
    assert any(isinstance(p, ContiguousAttnProcessor) for p in processors)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert layouts and all(layouts)


def channels_last(x: torch.Tensor) -> bool:
    """A 4-D activation in channels_last; the (B, C, HW) view inside attention has no layout."""
    return x.dim() != 4 or x.is_contiguous(memory_format=torch.channels_last)


def test_a_channels_last_model_keeps_channels_last_through_attention():
    cfg = tiny_config("vqgan").model  # `train.channels_last`: model and batch in channels_last
    model = VQGAN(cfg).train().to(memory_format=torch.channels_last)
    layouts = []
    for module in model.modules():
        if isinstance(module, torch.nn.GroupNorm):
            module.register_forward_hook(lambda m, i, o: layouts.append(channels_last(i[0])))
    x = (torch.rand(2, 3, 16, 16) * 2 - 1).contiguous(memory_format=torch.channels_last)
    model(x)
    assert layouts and all(layouts)
