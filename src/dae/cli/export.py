"""`dae export RUN --format diffusers --out DIR [--ema]`: a trained image autoencoder as a
diffusers model folder (`VQModel` / `AutoencoderKL`.from_pretrained(DIR) loads it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dae.autoencoder.image import ImageAutoencoder
from dae.errors import ConfigError, RunFolderError
from dae.run import Run


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="export a trained image autoencoder (diffusers format)")
    parser.add_argument("run", type=Path, help="run folder written by `dae train`")
    parser.add_argument("--format", choices=["diffusers"], default="diffusers")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--ema", action="store_true", help="export the run's EMA weights")
    parser.set_defaults(func=run)


def export_diffusers(run_dir: Path, out: Path, ema: bool = False) -> Path:
    """Write `out` (config.json + diffusion_pytorch_model.safetensors) from the run in `run_dir`."""
    if out.exists() and not out.is_dir():  # diffusers would log an error and write nothing
        raise RunFolderError(f"--out {out}: is a file; give a folder for the diffusers model")
    loaded = Run(run_dir).autoencoder("ema" if ema else "final")
    if not isinstance(loaded.model, ImageAutoencoder):
        raise ConfigError("kind", f"{loaded.cfg.kind}: only image autoencoders (vqgan, kl) export")
    # The DAE aux decoder (stage 1 only) is not part of the diffusers model.
    loaded.model.to_diffusers().save_pretrained(str(out), safe_serialization=True)
    return out


def run(args: argparse.Namespace) -> int:
    out = export_diffusers(args.run, args.out, ema=args.ema)
    print(f"wrote a diffusers model to {out}")
    return 0
