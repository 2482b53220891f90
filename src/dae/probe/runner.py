"""`dae probe RUN [RUN ...] --out DIR`: every run's latent through the same decoder and prior probes.

Results are cached per (run, width) and per (run, prior) in `DIR/results/<run>/*.json`, each
written atomically with the hash of the recipe it was measured under and the run's weights hash;
a rerun (after an interruption, or with more runs or widths) skips what is already measured.
`DIR/probe.json` is rewritten after every run, so it always holds everything finished so far.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from dae.config import to_dict
from dae.data.images import LabelledImages, load_from_config, load_images
from dae.errors import ConfigError, RunFolderError
from dae.files import atomic_write
from dae.metrics.curves import CONVERGED
from dae.metrics.features import FeatureExtractor
from dae.probe.config import ProbeConfig, recipe_hash
from dae.probe.decoder import encode_images, probe_decoder
from dae.probe.prior import prior_recipe, probe_prior
from dae.probe.runs import ProbedRun, freeze_encoder, load_probed_run, run_key

PROBE_VERSION = 1
RESULTS = "results"
# A measurement a probe may skip (--no-fd, --no-prior) -> the settings only it depends on
PART_SETTINGS = {
    "fd": ("features",),
    "prior": ("prior_steps", "prior_batch_size", "prior_images", "prior_n"),
}


def probe_runs(
    paths: list[str | Path],
    out: str | Path,
    cfg: ProbeConfig,
    log: Callable = tqdm.write,
    plots: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Probe every run in `paths`; write `out/probe.json` and (with `plots`) `out/probe.png`,
    `out/curves.png`. A summary already in `out` that this one would not cover is refused
    unless `overwrite` (see `check_summary_kept`)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out} exists and is not a folder")
    runs = [load_probed_run(p) for p in paths]  # every path checked before hours of training
    keys = [run.key for run in runs]
    if len(set(keys)) != len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise ConfigError("runs", f"the same run is listed twice: {twice}")
    if not overwrite:
        check_summary_kept(out / "probe.json", keys, cfg)
    hashes = {
        "decoder": recipe_hash(cfg.decoder_recipe()),
        "prior": recipe_hash(prior_recipe(cfg)),
    }
    summary: dict[str, Any] = {
        "version": PROBE_VERSION,
        "config": to_dict(cfg),
        "recipe_hash": hashes,
        # False until every run is in: probe.json is rewritten after each one, so a killed probe
        # leaves a valid file that holds only some of the runs (rerun it: finished runs are cached)
        "complete": False,
        "runs": [],
    }
    data = ProbeData(cfg)
    for run in runs:
        summary["runs"].append(probe_run(run, cfg, data, hashes, out / RESULTS / run.key, log))
        summary["complete"] = len(summary["runs"]) == len(runs)
        if data.fd_name:
            summary["features"] = {"fd": data.fd_name, **data.feature_info}
        write_json(out / "probe.json", summary)
    if plots:
        from dae.probe.plots import plot_curves, plot_widths

        plot_widths(summary, out / "probe.png")
        plot_curves(summary, out / "curves.png")
    return summary


def check_summary_kept(path: Path, keys: list[str], cfg: ProbeConfig) -> None:
    """Refuse to replace a `probe.json` whose runs, widths or measurements this probe would not
    cover, or that was measured under another recipe: its summary and plots would be lost (the
    results under `results/` stay either way). Resuming a killed probe, or adding runs or widths
    to one, covers everything and goes on."""
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text())
        old_keys = {run_key(entry["run"]) for entry in old["runs"]}
        old_cfg = dict(old["config"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RunFolderError(
            f"{path}: not a probe summary dae can read ({type(err).__name__}: {err}); choose "
            "another --out, or pass --overwrite to replace it"
        ) from None
    new_cfg = json.loads(json.dumps(to_dict(cfg)))  # as probe.json would store it
    lost = []
    if runs := sorted(old_keys - set(keys)):
        lost.append(f"runs {runs} that this probe does not name")
    if widths := sorted(set(old_cfg.pop("widths", [])) - set(new_cfg.pop("widths"))):
        lost.append(f"widths {widths} that this probe does not train")
    for part, settings in PART_SETTINGS.items():
        before, now = old_cfg.pop(part, False), new_cfg.pop(part)
        if before and not now:
            lost.append(f"the {part} measurements that this probe skips")
        if not before:  # none of it in the summary: its settings cannot disagree with it
            for key in settings:
                old_cfg.pop(key, None)
                new_cfg.pop(key, None)
    old_cfg.pop("device", None)  # where it ran: the results do not depend on it
    new_cfg.pop("device")
    if changed := sorted(
        k for k in old_cfg.keys() | new_cfg.keys() if old_cfg.get(k) != new_cfg.get(k)
    ):
        diffs = ", ".join(f"{k} {old_cfg.get(k)!r} -> {new_cfg.get(k)!r}" for k in changed)
        lost.append(f"another recipe ({diffs})")
    if lost:
        raise RunFolderError(
            f"{path}: holds a probe with {'; '.join(lost)}; this probe would replace its summary "
            "and plots. Choose another --out, or pass --overwrite (results/ keeps every measured "
            "result)"
        )


def probe_run(
    run: ProbedRun,
    cfg: ProbeConfig,
    data: ProbeData,
    hashes: dict[str, str],
    folder: Path,
    log: Callable,
) -> dict[str, Any]:
    """One run's entry of probe.json: its decoders by width and its prior, each measured unless
    `folder` already holds the result for this recipe and these weights."""
    freeze_encoder(run.model)
    entry: dict[str, Any] = {"run": run.identity, "decoders": [], "prior": None}
    test_latents = None  # encoded on first need, then shared by the widths
    for width in cfg.widths:
        path = folder / f"decoder_w{width:g}.json"
        result = load_result(path, hashes["decoder"], run)
        if result is None:
            test = data.test(run)
            if test_latents is None:
                test_latents = encode_images(run, test.images, torch.device(cfg.device))
            features, reference = data.features(run)
            result = probe_decoder(
                run, width, data.train(run), test.images, test_latents, cfg, features, reference
            )
            save_result(path, hashes["decoder"], run, result)
        entry["decoders"].append(result)
        log(f"{run.identity['name']} w={width:g}: " + _fmt(result["test"]) + _last_gain(result))
    if cfg.prior:
        path = folder / "prior.json"
        result = load_result(path, hashes["prior"], run)
        if result is None:
            result = probe_prior(run, data.train(run), data.test(run, cfg.prior_n), cfg)
            save_result(path, hashes["prior"], run, result)
        entry["prior"] = result
        log(f"{run.identity['name']} prior: " + _fmt(_prior_scores(result)))
    return entry


class ProbeData:
    """The runs' data, loaded once per data set: train split, seeded test subset, FD reference."""

    def __init__(self, cfg: ProbeConfig):
        self.cfg = cfg
        self._train: dict[tuple, LabelledImages] = {}
        self._test: dict[tuple, LabelledImages] = {}
        self._features: dict[tuple, tuple[FeatureExtractor, dict[str, torch.Tensor]]] = {}
        self.fd_name: str | None = None
        self.feature_info: dict[str, Any] = {}

    @staticmethod
    def _key(run: ProbedRun) -> tuple:
        d = run.cfg.data
        return (d.name, d.root, d.image_size, d.split, d.val_fraction, d.split_seed)

    def train(self, run: ProbedRun) -> LabelledImages:
        key = self._key(run)
        if key not in self._train:
            self._train[key] = load_from_config(run.cfg.data)
        return self._train[key]

    def test(self, run: ProbedRun, n: int | None = None) -> LabelledImages:
        """The first `n` (default `cfg.n`) of a seeded permutation of the test split: a random
        subset, not the first images (folder layouts are sorted by class), the same for every run."""
        key = self._key(run)
        if key not in self._test:
            d = run.cfg.data
            test = load_images(d.name, "test", d.root, d.image_size, cache=d.cache)
            gen = torch.Generator().manual_seed(self.cfg.seed)
            order = torch.randperm(len(test), generator=gen)
            self._test[key] = test.subset(order[: max(self.cfg.n, self.cfg.prior_n)])
        test = self._test[key]
        return test.subset(torch.arange(min(n or self.cfg.n, len(test))))

    def features(
        self, run: ProbedRun
    ) -> tuple[FeatureExtractor | None, dict[str, torch.Tensor] | None]:
        """The FD feature net and its features of the real test images (None with `fd` off)."""
        if not self.cfg.fd:
            return None, None
        from dae.metrics.features import build_features, default_features, reference_features

        key = self._key(run)
        if key not in self._features:
            d = run.cfg.data
            ext = build_features(self.cfg.features or default_features(d.name), root=d.root)
            images = self.test(run).images
            self._features[key] = (ext, reference_features(ext, images, f"{d.name}-test"))
            self.fd_name, self.feature_info = ext.names["fd"], {"spec": ext.spec, **ext.info}
        return self._features[key]


def _result_key(recipe: str, run: ProbedRun) -> dict[str, str]:
    return {"recipe_hash": recipe, "weights_sha256": run.identity["weights_sha256"]}


def load_result(path: Path, recipe: str, run: ProbedRun) -> dict[str, Any] | None:
    """The result saved at `path` if it was measured under `recipe` on these weights, else None."""
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # not written by the probe (its writes are atomic): measure again
    return saved["result"] if saved.get("key") == _result_key(recipe, run) else None


def save_result(path: Path, recipe: str, run: ProbedRun, result: dict[str, Any]) -> None:
    write_json(path, {"key": _result_key(recipe, run), "run": run.identity, "result": result})


def write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=1)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _prior_scores(prior: dict[str, Any]) -> dict[str, float]:
    keys = ("test_nll_per_token", "test_denoising_mse_mean")
    return {k: prior[k] for k in keys if k in prior}


def _last_gain(result: dict[str, Any]) -> str:
    """The decoder's test-L1 gain between its last two curve points: whether `--steps` was
    enough (under 2 %: `dae.metrics.curves.CONVERGED`) or its score would still move."""
    curve = result["curve"]["test_l1"]
    if len(curve) < 2:
        return ""
    (a, before), (b, last) = curve[-2], curve[-1]
    gain = (before - last) / before
    verdict = (
        "still improving: more --steps would move it"
        if gain >= CONVERGED
        else ("flat" if gain >= 0 else "no longer improving")
    )
    moved = f"fell {100 * gain:.1f} %" if gain >= 0 else f"rose {-100 * gain:.1f} %"
    return f"; test L1 {moved} from step {a:g} to {b:g} ({verdict})"


def _fmt(scores: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
