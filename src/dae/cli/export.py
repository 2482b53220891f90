"""`dae export RUN --format diffusers --out DIR [--ema]`: a trained image autoencoder as a
diffusers model folder (`VQModel` / `AutoencoderKL`.from_pretrained(DIR) loads it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dae.autoencoder.registry import model_from_config
from dae.train.checkpoint import CheckpointError, last_checkpoint, load_checkpoint, load_state
from dae.train.export import load_weights


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="export a trained image autoencoder (diffusers format)")
    parser.add_argument("run", type=Path, help="run folder written by `dae train`")
    parser.add_argument("--format", choices=["diffusers"], default="diffusers")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--ema", action="store_true", help="export the EMA weights of the run's last checkpoint"
    )
    parser.set_defaults(func=run)


def export_diffusers(run_dir: Path, out: Path, ema: bool = False) -> Path:
    """Write `out` (config.json + diffusion_pytorch_model.safetensors) from the run in `run_dir`."""
    if out.exists() and not out.is_dir():  # diffusers would log an error and write nothing
        raise FileExistsError(f"--out {out}: is a file; give a folder for the diffusers model")
    state, config = load_weights(run_dir / "model.safetensors")
    if ema:
        ckpt = last_checkpoint(run_dir)
        state = load_checkpoint(ckpt).get("ema")
        if state is None:
            raise CheckpointError(f"{ckpt}: the run kept no EMA (train.ema_decay was 0)")
    model = model_from_config(config)
    model_keys = set(model.state_dict())
    # The DAE aux decoder (stage 1 only) is not part of the final model.
    state = {k: v for k, v in state.items() if k in model_keys or not k.startswith("aux_decoder.")}
    load_state(model, state, f"model in {run_dir}")
    model.to_diffusers().save_pretrained(str(out), safe_serialization=True)
    return out


def run(args: argparse.Namespace) -> int:
    out = export_diffusers(args.run, args.out, ema=args.ema)
    print(f"wrote a diffusers model to {out}")
    return 0
