"""`dae export RUN --format diffusers --out DIR [--ema] [--overwrite]`: a trained image
autoencoder as a diffusers model folder (`VQModel` / `AutoencoderKL`.from_pretrained(DIR) loads
it)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from dae.errors import ConfigError, RunFolderError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="export a trained image autoencoder (diffusers format)")
    parser.add_argument("run", type=Path, help="run folder written by `dae train`")
    parser.add_argument("--format", choices=["diffusers"], default="diffusers")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--ema", action="store_true", help="export the run's EMA weights")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a diffusers model already in --out"
    )
    parser.set_defaults(func=run)


# What diffusers' `save_pretrained` writes for one model (sharded weights and their index too).
_EXPORT_FILES = (
    "config.json",
    "diffusion_pytorch_model*.safetensors",
    "diffusion_pytorch_model*.bin",
    "diffusion_pytorch_model*.index.json",
)


def _is_earlier_export(out: Path) -> bool:
    """Whether `out` holds a diffusers model and nothing else: `--overwrite` replaces the whole
    folder, so one file of the user's in it makes it not ours to replace."""
    files = list(out.iterdir())
    if not all(f.is_file() and any(f.match(p) for p in _EXPORT_FILES) for f in files):
        return False
    try:
        config = json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "_class_name" in config


def _check_out(out: Path, overwrite: bool, run_dir: Path) -> None:
    """Refuse an --out that export would clobber: a file, the run itself or a folder above the
    working directory, or a folder holding anything but an earlier diffusers export (replaced only
    with --overwrite). diffusers' `save_pretrained` writes into any folder and deletes weight
    shards it finds there, so it never gets a user's folder."""
    from dae.runsafety import check_out_path  # imports torch: not at `dae --help` time

    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out}: is a file; give a folder for the diffusers model")
    check_out_path(out, [run_dir])
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not _is_earlier_export(out):
        raise RunFolderError(
            f"--out {out}: a folder that is not empty and holds more than a diffusers model; "
            "give a new one"
        )
    if not overwrite:
        raise RunFolderError(
            f"--out {out}: already holds a diffusers model; pass --overwrite to replace it"
        )


def export_diffusers(run_dir: Path, out: Path, ema: bool = False, overwrite: bool = False) -> Path:
    """Write `out` (config.json + diffusion_pytorch_model.safetensors) from the run in `run_dir`.

    The model is saved into a hidden sibling folder first and then renamed onto `out`, so an
    interrupted export leaves `out` as it was."""
    from dae.autoencoder.image import ImageAutoencoder
    from dae.run import Run

    _check_out(out, overwrite, run_dir)
    loaded = Run(run_dir).autoencoder("ema" if ema else "final")
    if not isinstance(loaded.model, ImageAutoencoder):
        raise ConfigError("kind", f"{loaded.cfg.kind}: only image autoencoders (vqgan, kl) export")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = (out.parent / f".{out.name}.{tag}-{os.getpid()}" for tag in ("tmp", "old"))
    try:
        # The DAE aux decoder (stage 1 only) is not part of the diffusers model.
        loaded.model.to_diffusers().save_pretrained(str(tmp), safe_serialization=True)
        if out.exists():  # empty, or an earlier export (--overwrite)
            out.rename(old)
        tmp.rename(out)
    except BaseException:
        if old.exists() and not out.exists():
            old.rename(out)  # put the earlier export back
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return out


def run(args: argparse.Namespace) -> int:
    out = export_diffusers(args.run, args.out, ema=args.ema, overwrite=args.overwrite)
    print(f"wrote a diffusers model to {out}")
    return 0
