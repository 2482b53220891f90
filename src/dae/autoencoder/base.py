"""The contract every dae autoencoder keeps: for the DAE schedule, and for everything that reads one.

kind          "vq" (a codebook), "gaussian" (a posterior) or "deterministic" (neither)
latent(x)     the deterministic latent: code vectors (vq), posterior mean (gaussian), a feature
decode(z)     latent -> data, through the aux decoder while DAE stage 1 has it active
vq:           encode_to_indices(x), decode_indices(idx), codebook (n_codes, dim)
gaussian:     posterior(x) -> (mean, logvar); scaling_factor (None until measured)
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

LatentKind = Literal["vq", "gaussian", "deterministic"]


class DecoupledAutoencoder(nn.Module):
    """Base class for autoencoders the schedule can drive.

    Subclasses provide `encoder_modules()` (encoder and bottleneck: quant_conv, codebook, ...),
    `decoder_modules()` (the full decoder: post_quant_conv, decoder, ...), `build_decoder(width)`
    (a fresh decoder of the same family, returned as one module), `decode_full(z)` and `latent(x)`.
    Decoders' dropout layers are found by type (`nn.Dropout`, `nn.Dropout2d`) and swapped for
    `dropout_cls(p)`, which is channel-wise for images and per-unit for MLPs.
    """

    kind: ClassVar[LatentKind] = "deterministic"
    dropout_cls: type[nn.Module] = nn.Dropout2d
    scaling_factor: float | None = None  # gaussian latents: 1 / std, measured after training

    def __init__(self) -> None:
        super().__init__()
        self.aux_decoder: nn.Module | None = None
        self.use_aux_decoder = False

    # -- to be provided by subclasses -------------------------------------------------------------
    def encoder_modules(self) -> list[nn.Module]:
        raise NotImplementedError

    def decoder_modules(self) -> list[nn.Module]:
        raise NotImplementedError

    def build_decoder(self, width_factor: float) -> nn.Module:
        raise NotImplementedError

    def decode_full(self, z: torch.Tensor) -> torch.Tensor:
        """Latent -> data through the full decoder."""
        raise NotImplementedError

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic latent of `x` (what metrics and k-NN probes measure)."""
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------------
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent -> data with the decoder the schedule made active (aux in DAE stage 1)."""
        return self.aux_decoder(z) if self.use_aux_decoder else self.decode_full(z)

    def attach_aux_decoder(self, width_factor: float) -> None:
        """Build the weak auxiliary decoder; it lives in the state dict so checkpoints carry it."""
        aux = self.build_decoder(width_factor)
        # Built after the model may have moved to a GPU: follow the model's device.
        param = next(self.parameters(), None)
        self.aux_decoder = aux.to(param.device) if param is not None else aux

    def use_full_decoder(self) -> None:
        """The trained model: full decoder, no stage-1 dropout (the schedule's last act)."""
        self.use_aux_decoder = False
        self.set_decoder_dropout(0.0)

    def set_decoder_dropout(self, p: float) -> None:
        """Replace every dropout layer of the full decoder by `dropout_cls(p)`."""
        for decoder in self.decoder_modules():
            for parent in decoder.modules():
                for name, child in parent.named_children():
                    if isinstance(child, nn.Dropout | nn.Dropout1d | nn.Dropout2d):
                        setattr(parent, name, self.dropout_cls(p))

    def reset_decoder(self) -> None:
        """Re-initialise the full decoder's parameters (stage 2 with `decoder_init: scratch`)."""
        for decoder in self.decoder_modules():
            for module in decoder.modules():
                if module is not decoder and hasattr(module, "reset_parameters"):
                    module.reset_parameters()
