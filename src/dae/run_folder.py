"""The files of a run folder, named in this one place, and their plain (kind-agnostic) readers.

    RUN/config.yaml               validated config (`kind:` first); measured values filled in at the end
    RUN/model.safetensors         final weights + config in the header (model_ema.safetensors: EMA)
    RUN/checkpoints/last.pt       training state (models, optimisers, EMA, step, stage, RNG)
    RUN/metrics.jsonl, RUN/tb/    one row per logged step; TensorBoard scalars
    RUN/precision.json            what `train.precision` resolved to on the machine that ran it
    RUN/images/                   reconstruction grids during training
    RUN/eval.json                 `dae evaluate`; RUN/eval_recon.png its grid
    RUN/latents.safetensors       a prior run's latent cache
    RUN/samples/                  `dae sample` output
    RUN/.dae.lock                 held (flock) by the one process training into the run

`OWNED_FILES` / `OWNED_FOLDERS` list all of these: what `--overwrite` may delete. Creating,
locking and replacing a run folder is dae/runsafety.py's `claim_run_dir`; a user's other files in
the folder are never touched.

`dae.run.Run` adds what needs the table of experiment kinds (validated configs, models).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml

from dae.errors import CheckpointError, ConfigError, RunFolderError
from dae.files import (
    atomic_write,
    load_checkpoint,
    load_weights,
    read_json,
    remove_stale_temporaries,
)
from dae.paths import absolute_path

Weights = Literal["auto", "final", "ema", "checkpoint"]


class RunFolder:
    """Paths and plain data of one run folder (nothing here builds a model)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    # -- names ------------------------------------------------------------------------------------
    config_path = property(lambda self: self.path / "config.yaml")
    weights_path = property(lambda self: self.path / "model.safetensors")
    ema_weights_path = property(lambda self: self.path / "model_ema.safetensors")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")
    checkpoint_path = property(lambda self: self.path / "checkpoints" / "last.pt")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    tensorboard_dir = property(lambda self: self.path / "tb")
    precision_path = property(lambda self: self.path / "precision.json")
    images_dir = property(lambda self: self.path / "images")
    eval_path = property(lambda self: self.path / "eval.json")
    eval_grid_path = property(lambda self: self.path / "eval_recon.png")
    latents_path = property(lambda self: self.path / "latents.safetensors")
    samples_dir = property(lambda self: self.path / "samples")
    lock_path = property(lambda self: self.path / ".dae.lock")

    # What dae writes here, all that `--overwrite` may delete: files, and per folder the patterns
    # of its files (".*.tmp": a killed atomic write's temporary).
    OWNED_FILES = (
        "config.yaml",
        "model.safetensors",
        "model_ema.safetensors",
        "metrics.jsonl",
        "eval.json",
        "eval_recon.png",
        "latents.safetensors",
    )
    WORK_FILES = ("metrics.jsonl", "model.safetensors", "model_ema.safetensors", "eval.json")
    OWNED_FOLDERS = {
        "checkpoints": ("last.pt", ".*.tmp"),
        "tb": ("events.out.tfevents.*",),
        "images": ("recon_*.png", ".*.tmp"),
        "samples": ("samples.npz", "grid.png", "samples.yaml", "scores.json", ".*.tmp"),
    }
    # Files only the lock holder writes (`dae evaluate` writes eval.json without the lock), so
    # their temporaries found under the lock were left by a killed process.
    LOCKED_WRITES = (
        "config.yaml",
        "model.safetensors",
        "model_ema.safetensors",
        "latents.safetensors",
    )

    def holds_run(self) -> bool:
        """Whether the folder holds (part of) a run's work: checkpoints, a log, weights or an
        evaluation (a finished run whose checkpoints and log were pruned still counts). A config
        and a latent cache alone (a run killed before its first step) do not."""
        return self.checkpoint_dir.exists() or any(
            (self.path / name).exists() for name in self.WORK_FILES
        )

    # -- creating ---------------------------------------------------------------------------------
    def prepare_checkpoints(self) -> None:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.checkpoint_dir)

    def write_config(self, config: dict[str, Any], resume: bool = False) -> None:
        """Write `config.yaml`; when resuming, first check it equals the saved one."""
        if resume and self.config_path.is_file():
            diff = first_difference(config, self.read_config_as_stored_now())
            if diff:
                raise ConfigError(
                    diff.split(":")[0], f"differs from the run being resumed ({diff})"
                )
        text = yaml.safe_dump(config, sort_keys=False)
        atomic_write(self.config_path, lambda tmp: tmp.write_text(text))

    def write_precision(self, record: dict[str, str]) -> None:
        """`precision.json`, rewritten at every (re)start: a run resumed on another machine
        says what that machine chose."""
        text = json.dumps(record, indent=1) + "\n"
        atomic_write(self.precision_path, lambda tmp: tmp.write_text(text))

    # -- reading ----------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.config_path.is_file()

    def require(self, what: str = "dae run") -> None:
        if not self.exists():
            raise RunFolderError(f"{self.path} is not a {what}: no {self.config_path.name}")

    def read_config(self) -> dict[str, Any]:
        """The saved config as plain data."""
        self.require()
        try:
            data = yaml.safe_load(self.config_path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            reason = str(err).splitlines()[0]
            raise ConfigError(str(self.config_path), f"not readable YAML ({reason})") from None
        if not isinstance(data, dict | None):
            raise ConfigError(str(self.config_path), f"not a config (a {type(data).__name__})")
        return data or {}

    def read_config_or_empty(self) -> dict[str, Any]:
        """`read_config`, or {} if the config is missing or unreadable: for reports, which draw
        what they can."""
        try:
            return self.read_config()
        except (RunFolderError, ConfigError, OSError):
            return {}

    def read_config_as_stored_now(self) -> dict[str, Any]:
        """The saved config with its paths as a run stores them today, to compare with a config
        about to be written (runs made before roots were stored absolute kept them relative)."""
        saved = self.read_config()
        if isinstance(saved.get("data"), dict):
            saved["data"]["root"] = absolute_path(saved["data"].get("root"))
        return saved

    def checkpoint(self, path: str | Path | None = None) -> dict[str, Any]:
        """`checkpoints/last.pt`, or another checkpoint file of this run (a copy kept earlier)."""
        return load_checkpoint(self.checkpoint_path if path is None else path)

    def state(
        self, weights: Weights = "auto", module: str = "model", checkpoint: str | Path | None = None
    ) -> tuple[dict, str, dict]:
        """(state dict, where it came from, checkpoint payload or {}) of `module`.

        final: `model.safetensors`; ema: `model_ema.safetensors`, else the checkpoint's EMA;
        checkpoint: `checkpoints/last.pt` (or the file `checkpoint`); auto: final if present,
        else the checkpoint.
        """
        if checkpoint is not None and weights != "checkpoint":
            raise ValueError(f"a checkpoint file goes with weights='checkpoint', not {weights!r}")
        if weights == "ema":
            if self.ema_weights_path.is_file():
                return load_weights(self.ema_weights_path)[0], "ema", {}
            payload = self.checkpoint()
            if payload.get("ema") is None:
                raise CheckpointError(
                    f"{self.checkpoint_path}: the run kept no EMA (train.ema_decay was 0)"
                )
            return payload["ema"], f"ema@{payload['step']}", payload
        if weights == "final" or (weights == "auto" and self.weights_path.is_file()):
            return load_weights(self.weights_path)[0], "final", {}
        payload = self.checkpoint(checkpoint)
        if module not in payload.get("modules", {}):
            raise CheckpointError(
                f"{checkpoint or self.checkpoint_path}: has no weights for {module!r}"
            )
        source = f"checkpoint@{payload['step']}/{payload.get('stage')}"
        return payload["modules"][module], source, payload

    def read_eval(self) -> dict[str, Any] | None:
        """`eval.json`, or None if the run has not been evaluated."""
        return read_json(self.eval_path, "delete it and run `dae evaluate` again")

    def read_metrics(self) -> list[dict[str, Any]]:
        """All rows of `metrics.jsonl`. A torn last line (a kill mid-write; the next resume drops
        it) is left out; a corrupt line before it is an error that names the line."""
        lines = [line for line in self.metrics_path.read_text().splitlines() if line.strip()]
        rows = []
        for number, line in enumerate(lines, 1):
            try:
                rows.append(json.loads(line))
            except ValueError as err:
                if number == len(lines):
                    break
                raise RunFolderError(
                    f"{self.metrics_path}: line {number} is not a JSON row ({err})"
                ) from None
        return rows

    def write_eval(self, result: dict[str, Any]) -> None:
        text = json.dumps(result, indent=1)
        atomic_write(self.eval_path, lambda tmp: tmp.write_text(text))


def first_difference(a: object, b: object, prefix: str = "") -> str | None:
    """`key: saved in the run, now` of the first differing key of two nested dicts, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            diff = first_difference(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
            if diff:
                return diff
        return None
    return None if a == b else f"{prefix}: {b!r} in the run, {a!r} now"
