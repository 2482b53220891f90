"""Shared skeleton of the image autoencoders (VQGAN, KL): diffusers' Encoder/Decoder, DAE hooks.

The modules carry diffusers' names (`encoder`, `quant_conv`, `post_quant_conv`, `decoder`, and
`quantize` for VQ), so a trained model's state dict *is* a `diffusers.VQModel` /
`diffusers.AutoencoderKL` state dict (minus the DAE-only `aux_decoder.*`); see `dae.cli.export`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.models.autoencoders.vae import Decoder, Encoder
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

from dae.autoencoder.base import DecoupledAutoencoder
from dae.config import check

# State-dict prefixes dae has and diffusers does not: the DAE-only aux decoder and the quantizer's
# training-only dead-code usage window.
NOT_IN_DIFFUSERS = ("aux_decoder.", "quantize.code_usage", "quantize.usage_clock")


@dataclass
class ImageArchConfig:
    """Convolutional trunk shared by encoder and decoder (taming / latent-diffusion naming)."""

    in_channels: int = field(default=3, metadata={"help": "image channels (1 MNIST, 3 RGB)"})
    resolution: int = field(default=32, metadata={"help": "training image size (sets attention)"})
    ch: int = field(default=128, metadata={"help": "base channel count"})
    ch_mult: list[int] = field(
        default_factory=lambda: [1, 2, 2, 4],
        metadata={"help": "channel multiplier per level; downsampling factor 2^(levels-1)"},
    )
    num_res_blocks: int = field(default=2, metadata={"help": "ResNet blocks per encoder level"})
    attn_resolutions: list[int] = field(
        default_factory=lambda: [16], metadata={"help": "feature-map sizes that get self-attention"}
    )
    mid_attention: bool = field(default=True, metadata={"help": "attention in the middle block"})
    norm_groups: int = field(default=32, metadata={"help": "GroupNorm groups"})
    z_channels: int = field(default=256, metadata={"help": "latent channels"})
    init_from: str | None = field(
        default=None,
        metadata={
            "help": "start from pretrained weights: a diffusers VQModel / AutoencoderKL folder "
            "(or a pipeline folder with vae/), a dae run folder or its model.safetensors"
        },
    )

    def __post_init__(self) -> None:
        for key in ("in_channels", "resolution", "ch", "num_res_blocks", "z_channels"):
            check(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        check(len(self.ch_mult) >= 1 and min(self.ch_mult) >= 1, "ch_mult", "must be >= 1 each")
        bad = [c for c in self.block_out_channels if c % self.norm_groups]
        check(not bad, "norm_groups", f"{self.norm_groups} must divide every width, not {bad}")
        check(
            self.resolution % self.downsample_factor == 0,
            "resolution",
            f"{self.resolution} is not divisible by the downsampling factor {self.downsample_factor}",
        )
        sizes = [self.resolution // 2**i for i in range(len(self.ch_mult))]
        stray = [r for r in self.attn_resolutions if r not in sizes]
        check(not stray, "attn_resolutions", f"{stray} match no level; the levels are {sizes}")

    @property
    def block_out_channels(self) -> list[int]:
        return [self.ch * m for m in self.ch_mult]

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)


def diffusers_trunk(cfg: ImageArchConfig, width_factor: float = 1.0) -> dict[str, Any]:
    """Keyword arguments shared by diffusers' Encoder/Decoder and VQModel/AutoencoderKL."""
    widths = [max(1, round(c * width_factor)) for c in cfg.block_out_channels]
    # A narrower (aux) decoder keeps GroupNorm valid by using the largest group count that fits.
    groups = math.gcd(cfg.norm_groups, *widths)
    sizes = [cfg.resolution // 2**i for i in range(len(widths))]  # feature size per level
    attn = [s in cfg.attn_resolutions for s in sizes]
    return {
        "down_block_types": tuple(
            "AttnDownEncoderBlock2D" if a else "DownEncoderBlock2D" for a in attn
        ),
        "up_block_types": tuple(
            "AttnUpDecoderBlock2D" if a else "UpDecoderBlock2D" for a in reversed(attn)
        ),
        "block_out_channels": tuple(widths),
        "layers_per_block": cfg.num_res_blocks,
        "norm_num_groups": groups,
        "mid_block_add_attention": cfg.mid_attention,
    }


class ContiguousAttnProcessor(AttnProcessor2_0):
    """diffusers' attention whose output, in training, is NCHW again when its input was.

    diffusers returns `(B, HW, C) -> transpose -> reshape (B, C, H, W)`: a channels_last view.
    The residual stream after it then stays channels_last until the next 1x1 shortcut, and on
    CPU GroupNorm (forward + backward) is ~5x slower on channels_last than on NCHW in bf16 and
    ~1.6x in fp32 (docs/benchmarks.md). A model trained in channels_last (`train.channels_last`)
    keeps diffusers' output, which is already in its layout. In eval mode the output is left as
    diffusers makes it, so an exported `VQModel` / `AutoencoderKL` reproduces dae's outputs bit
    for bit.
    """

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # the parent's named arguments: diffusers drops (with a warning) any the call cannot take
        out = super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        return out.contiguous() if attn.training and hidden_states.is_contiguous() else out


def _contiguous_attention(net: nn.Module) -> nn.Module:
    """`net` with `ContiguousAttnProcessor` in each of its diffusers attention blocks."""
    for module in net.modules():
        if isinstance(module, Attention):
            module.set_processor(ContiguousAttnProcessor())
    return net


def build_encoder(cfg: ImageArchConfig, double_z: bool) -> Encoder:
    """(B, in, H, W) -> (B, z or 2z, H/f, W/f)."""
    trunk = diffusers_trunk(cfg)
    trunk.pop("up_block_types")
    return _contiguous_attention(
        Encoder(cfg.in_channels, cfg.z_channels, double_z=double_z, **trunk)
    )


def build_image_decoder(cfg: ImageArchConfig, width_factor: float = 1.0) -> Decoder:
    """(B, z, H/f, W/f) -> (B, in, H, W)."""
    trunk = diffusers_trunk(cfg, width_factor)
    trunk.pop("down_block_types")
    return _contiguous_attention(Decoder(cfg.z_channels, cfg.in_channels, **trunk))


class ImageAutoencoder(DecoupledAutoencoder):
    """Base of VQGAN / KL-AE: `post_quant_conv` + `decoder`, the aux decoder, decoder dropout."""

    dropout_cls = nn.Dropout2d
    diffusers_cls: type[nn.Module]  # the diffusers class with the same modules and names
    post_quant_conv: nn.Conv2d
    decoder: Decoder

    def __init__(self, cfg: ImageArchConfig):
        super().__init__()
        self.cfg = cfg

    def bottleneck_channels(self) -> int:
        """Channels of what `post_quant_conv` reads (codebook dim for VQ, z for KL)."""
        raise NotImplementedError

    def decoder_modules(self) -> list[nn.Module]:
        return [self.post_quant_conv, self.decoder]

    def build_decoder(self, width_factor: float) -> nn.Module:
        """A fresh weak decoder: its own 1x1 input conv and a diffusers Decoder `width_factor` wide."""
        return nn.Sequential(
            OrderedDict(
                post_quant_conv=nn.Conv2d(self.bottleneck_channels(), self.cfg.z_channels, 1),
                decoder=build_image_decoder(self.cfg, width_factor),
            )
        )

    def decode_full(self, z: torch.Tensor) -> torch.Tensor:
        """(B, bottleneck, h, w) -> (B, C, H, W) through the full decoder."""
        return self.decoder(self.post_quant_conv(z))

    def last_layer(self) -> nn.Parameter:
        """Weight of the active decoder's output conv (the adaptive GAN weight is measured here)."""
        decoder = self.aux_decoder.decoder if self.use_aux_decoder else self.decoder
        return decoder.conv_out.weight

    def diffusers_config(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_diffusers(self) -> nn.Module:
        """The same network as a diffusers model (`VQModel` / `AutoencoderKL`), weights copied.

        The keys are identical by construction; only the DAE-only aux decoder and training-only
        buffers (the quantizer's dead-code usage window) are left out.
        """
        target = self.diffusers_cls(**self.diffusers_config())
        state = {k: v for k, v in self.state_dict().items() if not k.startswith(NOT_IN_DIFFUSERS)}
        target.load_state_dict(state, strict=True)
        return target.eval()

    def set_decoder_dropout(self, p: float) -> None:
        """Channel dropout `p` in every ResNet block of the full decoder; p=0 restores the
        plain `nn.Dropout(0)` slot. Attention's own dropout (in `to_out`) is not a ResNet block's
        and stays untouched, unlike the base class's blanket swap."""
        for decoder in self.decoder_modules():
            for block in decoder.modules():
                if isinstance(block, ResnetBlock2D):
                    block.dropout = self.dropout_cls(p) if p > 0 else nn.Dropout(0.0)
