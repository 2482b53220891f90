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
