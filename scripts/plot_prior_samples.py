"""Side by side, the sample grids of `dae compare-priors` (scripts/study_priors.sh): one row per
seed folder, one column per latent (joint, DAE), each titled with its FD-classifier score from
that folder's results.json; the figure is titled by the prior (GPT or DiT) its config names.
docs/results.md uses it for the GPT and DiT samples on the converged latents.

Usage: python scripts/plot_prior_samples.py PRIORS_SEED_DIR [...] --out FIG.jpg
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dae.files import atomic_write
from dae.run_folder import RunFolder

LABELS = {"baseline": "joint", "dae": "DAE"}
PRIORS = {"prior_gpt": "GPT", "prior_dit": "DiT"}


def panels(folder: Path) -> list[tuple[Path, str]]:
    """(grid image, title) for each latent of one seed's compare-priors folder, in results order."""
    results = folder / "results.json"
    if not results.is_file():
        raise FileNotFoundError(f"{results}: not a finished compare-priors folder")
    out = []
    for row in json.loads(results.read_text()):
        grid = folder / row["run"] / "samples" / "grid.png"
        if not grid.is_file():
            raise FileNotFoundError(f"{grid}: the prior's sample grid is missing")
        fd = next((v for k, v in row.items() if k.startswith("FD-")), None)
        score = f"{fd:.1f}" if fd is not None else "not scored"
        title = f"{folder.name}, {LABELS.get(row['run'], row['run'])}: FD-classifier {score}"
        out.append((grid, title))
    return out


def prior_name(folder: Path) -> str:
    """GPT or DiT: the kind in the first prior's config.yaml, read as every run is (RunFolder)."""
    row = json.loads((folder / "results.json").read_text())[0]
    run = RunFolder(folder / row["run"])
    if not run.exists():
        return "prior"
    kind = run.read_config().get("kind", "prior")
    return PRIORS.get(kind, kind)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", help="default: '<GPT|DiT> prior samples, ...'")
    args = parser.parse_args(argv)
    suptitle = (
        args.title
        or f"{prior_name(args.folders[0])} prior samples, each latent through its own decoder"
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    rows = [panels(f) for f in args.folders]
    cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(4 * cols, 4.2 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, row in enumerate(rows):
        for j, (grid, title) in enumerate(row):
            axes[i, j].imshow(Image.open(grid))
            axes[i, j].set_title(title, fontsize=10)
    fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # photographs: JPEG keeps the figure a tenth of a PNG's size
    kind = args.out.suffix[1:] or "png"
    quality = {"pil_kwargs": {"quality": 85}} if kind in ("jpg", "jpeg") else {}
    atomic_write(args.out, lambda tmp: fig.savefig(tmp, dpi=80, format=kind, **quality))
    print(args.out)


if __name__ == "__main__":
    main()
