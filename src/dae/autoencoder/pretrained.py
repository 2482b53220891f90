"""Start an image autoencoder from pretrained weights (`model.init_from`).

dae's VQGAN / KL-AE carry diffusers' module names, so a diffusers `VQModel` / `AutoencoderKL`
state dict *is* theirs: encoder, bottleneck (quant_conv, codebook) and decoder load one to one.
Accepted sources:
  - a diffusers model folder (`config.json` + `diffusion_pytorch_model.safetensors`), as
    `save_pretrained` writes it, or a pipeline folder holding one under `vae/`;
  - a dae run folder (its final `model.safetensors`) or such a `.safetensors` file.
The check is strict: every key of the model is loaded, none is left over, shapes agree; otherwise
a `CheckpointError` lists the missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dae.autoencoder.image import NOT_IN_DIFFUSERS, ImageAutoencoder
from dae.errors import CheckpointError, ConfigError, MissingFileError
from dae.files import load_weights, read_json
from dae.run_folder import RunFolder

DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
SHOWN = 8  # keys listed per kind of mismatch; the count says how many more


def read_pretrained(path: str | Path, expected_class: str) -> dict[str, torch.Tensor]:
    """The state dict stored at `path` (see the module docstring for the layouts)."""
    path = Path(path).expanduser()
    if path.is_dir() and not (path / "config.json").is_file() and (path / "vae").is_dir():
        path = path / "vae"  # a diffusers pipeline: its autoencoder
    if path.is_dir() and (path / "config.json").is_file():
        config = read_json(path / "config.json", "export or download the model again")
        found = config.get("_class_name")
        if found != expected_class:
            raise CheckpointError(
                f"{path}: holds a diffusers {found}, this experiment trains a {expected_class}"
            )
        weights = path / DIFFUSERS_WEIGHTS
        if not weights.is_file():
            raise CheckpointError(
                f"{path}: no {DIFFUSERS_WEIGHTS} (pickled .bin weights are not loaded; re-save "
                "the model with save_pretrained(safe_serialization=True))"
            )
        return load_weights(weights)[0]
    if path.is_dir() and RunFolder(path).weights_path.is_file():
        return load_weights(RunFolder(path).weights_path)[0]
    if path.is_file() and path.suffix == ".safetensors":
        return load_weights(path)[0]
    raise MissingFileError(
        f"model.init_from: {path} is neither a diffusers model folder (config.json + "
        f"{DIFFUSERS_WEIGHTS}), a dae run folder (final weights) nor a .safetensors file"
    )


def _listed(keys: list[str]) -> str:
    more = f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def load_pretrained(model: ImageAutoencoder, path: str | Path) -> None:
    """Copy the weights at `path` into `model`'s encoder, bottleneck and decoder (strict)."""
    state = read_pretrained(path, model.diffusers_cls.__name__)
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(NOT_IN_DIFFUSERS)}
    given = {k: v for k, v in state.items() if not k.startswith(NOT_IN_DIFFUSERS)}
    missing = sorted(own.keys() - given.keys())
    unexpected = sorted(given.keys() - own.keys())
    shapes = [
        f"{k} {tuple(given[k].shape)} vs {tuple(own[k].shape)}"
        for k in sorted(own.keys() & given.keys())
        if given[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        problems = [
            f"{len(missing)} missing keys ({_listed(missing)})" if missing else "",
            f"{len(unexpected)} unexpected keys ({_listed(unexpected)})" if unexpected else "",
            f"{len(shapes)} shape mismatches, pretrained vs model ({_listed(shapes)})"
            if shapes
            else "",
        ]
        raise CheckpointError(
            f"model.init_from: {path} does not fit the configured model: "
            + "; ".join(p for p in problems if p)
            + " (set the model section to the pretrained architecture)"
        )
    with torch.no_grad():
        for key, value in given.items():
            own[key].copy_(value)  # state_dict tensors share storage with the parameters


def check_init_for_schedule(init_from: str | None, schedule_mode: str) -> None:
    """`schedule.mode: stage2` freezes the encoder from the start, so it needs `model.init_from`."""
    if schedule_mode == "stage2" and not init_from:
        raise ConfigError(
            "schedule.mode",
            "stage2 trains only the decoder of a pretrained autoencoder; set model.init_from",
        )
