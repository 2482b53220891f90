"""The interface every dae autoencoder offers the DAE schedule (encoder, bottleneck, decoder)."""

from __future__ import annotations

from torch import nn


class DecoupledAutoencoder(nn.Module):
    """Base class for autoencoders the schedule can drive.

    Subclasses provide `encoder_modules()` (encoder and bottleneck: quant_conv, codebook, ...),
    `decoder_modules()` (the full decoder: post_quant_conv, decoder, ...) and `build_decoder(width)`
    (a fresh decoder of the same family, returned as one module); their `decode` uses
    `self.aux_decoder` while `self.use_aux_decoder` is set.
    Decoders' dropout layers are found by type (`nn.Dropout`, `nn.Dropout2d`) and swapped for
    `dropout_cls(p)`, which is channel-wise for images and per-unit for MLPs.
    """

    dropout_cls: type[nn.Module] = nn.Dropout2d

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

    # -- shared bookkeeping -----------------------------------------------------------------------
    def attach_aux_decoder(self, width_factor: float) -> None:
        """Build the weak auxiliary decoder; it lives in the state dict so checkpoints carry it."""
        aux = self.build_decoder(width_factor)
        # Built after the model may have moved to a GPU: follow the model's device.
        param = next(self.parameters(), None)
        self.aux_decoder = aux.to(param.device) if param is not None else aux

    def active_decoder_modules(self) -> list[nn.Module]:
        return [self.aux_decoder] if self.use_aux_decoder else self.decoder_modules()

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
