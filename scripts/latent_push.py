"""The forces on a VQ latent along its principal directions (docs/results.md, "What holds the
latent on its plane").

For each run (or kept checkpoint of a run), encode the first N images of the seeded test subset
that training's held-out rows use, and take the gradients of the training loss's two terms with
respect to the encoder output z: the reconstruction term (L1, through the straight-through
estimator, so it is the decoder's force on z; runs trained with LPIPS are refused) and the
commitment term (codebook_weight * beta * |z - sg(q)|^2, the pull back onto the codes). For the
leading principal directions of z, print how fast each force alone would change z's variance along
them (`variance_growth`: positive pushes the spread out, negative pulls it in), and for the whole
subspace off the plane of the leading two (`*_off_plane`: its total variance), once with the full
decoder and once with the run's stage-1 channel dropout (`schedule.dropout_p`, averaged over
`--masks` draws): the same weights as a decoder that is weak, and as one that is not. A run whose
weak decoder is the half-width auxiliary one (`schedule.weak_decoder: aux`), read in stage 1, is
read through that decoder (`rec_full` is then its push; the row's `decoder` says which): the full
decoder is still at its initialisation there, and a checkpoint at the stage boundary has stage-1
weights. Beside z's own share of variance off the plane (`z_off_plane`), the codes it is quantised
to (`q_off_plane`: their variance along the same directions, as a share of z's total): how far out
of z's plane the codes pulling z back lie.

    python scripts/latent_push.py RUN [RUN=CHECKPOINT.pt ...] [-n 1000] [--masks 8] [--plot F]
    python scripts/latent_push.py --from-jsonl ROWS.jsonl --plot F.png [--by-name]

The rates are per image (the gradient of the sum of per-image mean losses), so they compare
between terms, runs and steps; a training step of batch B and lr eta moves z's variance along a
direction by about eta / B times the summed rates of its images, before the encoder's own
weights (which this leaves out) turn the force on z into a step of z.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from dae.data.images import float_batch
from dae.metrics.diagnostics import principal_directions, variance_along, variance_growth
from dae.schedule import DAESchedule
from dae.train.image_task import held_out_images

sys.path.insert(0, str(Path(__file__).parent))
from latent_spectrum import by_run, load, save  # noqa: E402  (a sibling script)


def forces(model, x: torch.Tensor, cfg, masks: int, dropout: float) -> dict[str, torch.Tensor]:
    """Per-image gradients on z of the reconstruction term (full decoder, and with `dropout`
    averaged over `masks` draws) and of the commitment term, with z itself."""
    z = model.encode(x).detach().requires_grad_()
    q = model.quantize.quantize(z)
    n = len(x)
    commit = cfg.loss.codebook_weight * cfg.model.beta * q.losses.commitment * n
    (g_commit,) = torch.autograd.grad(commit, z, retain_graph=True)
    rec = (model.decode(q.z_q) - x).abs().mean() * n
    (g_full,) = torch.autograd.grad(rec, z, retain_graph=True)
    out = {"z": z.detach(), "q": q.z_q.detach(), "commitment": g_commit, "rec_full": g_full}
    if dropout > 0 and masks > 0:
        model.set_decoder_dropout(dropout)
        model.decoder.train()  # channel dropout acts only in training mode
        draws = []
        for _ in range(masks):
            rec = (model.decode(q.z_q) - x).abs().mean() * n
            draws.append(torch.autograd.grad(rec, z, retain_graph=True)[0])
        model.set_decoder_dropout(0.0)
        model.decoder.eval()
        out["rec_masks"] = torch.stack(draws)
        out["rec_dropout"] = out["rec_masks"].mean(0)
    return out


def off_plane_noise(f: dict[str, torch.Tensor], off: torch.Tensor) -> float:
    """The dropout masks' scatter of the gradient off the plane, relative to the full decoder's
    gradient there: sqrt(mean_m |P (g_m - mean g)|^2 / |P g_full|^2), P the projection on `off`
    (orthonormal columns). The mean push with dropout is reported beside the full decoder's;
    this is the noise the masks add on top, which spreads z along weakly held directions."""

    def energy(g: torch.Tensor) -> torch.Tensor:  # |P g|^2 over every position of every map
        return (g.detach().double().movedim(1, -1).reshape(-1, g.shape[1]) @ off).pow(2).sum()

    scatter = torch.stack([energy(g - f["rec_dropout"]) for g in f["rec_masks"]])
    return float((scatter.mean() / energy(f["rec_full"])).sqrt())


def measure(arg: str, n: int, masks: int, keep: int = 4, seed: int = 0) -> dict:
    _, loaded = load(arg)
    model, cfg = loaded.model, loaded.cfg
    if cfg.loss.perceptual_weight > 0:
        raise SystemExit(f"{arg}: trained with LPIPS; the forces here are of the L1 term alone")
    weak = cfg.schedule.weak_decoder if cfg.schedule.mode == "dae" else None
    dropout = cfg.schedule.dropout_p if weak == "dropout2d" else 0.0
    # an aux run trains its half-width decoder in stage 1, the full one (at its initialisation
    # until then) in stage 2: weights whose last step was a stage-1 step are read through the aux
    # one (a checkpoint's own `stage` is the next step's, "stage2" at the boundary)
    last = loaded.step - 1 if loaded.stage is not None else cfg.train.steps - 1
    aux = weak == "aux" and DAESchedule(cfg.schedule, cfg.train.steps).stage_at(last) == "stage1"
    model.use_aux_decoder = aux
    images = held_out_images(cfg.data, n)
    x = float_batch(images, torch.arange(len(images)))
    torch.manual_seed(seed)  # the dropout masks
    try:
        f = forces(model, x, cfg, masks, dropout)
    finally:
        model.use_aux_decoder = False
    var, directions = principal_directions(f["z"])
    # the codes' spread along z's directions off the plane, as a share of z's whole variance
    q_off = (
        variance_along(f["q"], directions[:, 2:]).sum() / variance_along(f["z"], directions).sum()
    )
    row = {
        "run": arg,
        "step": loaded.step,
        "stage": loaded.stage,
        "decoder": f"aux ({cfg.schedule.aux_width:g} width)" if aux else "full",
        "z_fractions": [round(float(v / var.sum()), 6) for v in var[:keep]],
        "z_off_plane": round(float(var[2:].sum() / var.sum()), 6),
        "q_off_plane": float(f"{float(q_off):.4g}"),
    }
    for name in ("rec_full", "rec_dropout", "commitment"):
        if name in f:
            rates = variance_growth(f["z"], f[name], directions[:, :keep])
            row[name] = [float(f"{float(r):.4g}") for r in rates]
            # everything off the plane of the two leading directions, however it is ordered
            off = variance_growth(f["z"], f[name], directions[:, 2:], pooled=True)
            row[f"{name}_off_plane"] = float(f"{float(off):.4g}")
    if "rec_masks" in f and len(f["rec_masks"]) > 1:
        row["dropout_noise_off_plane"] = float(f"{off_plane_noise(f, directions[:, 2:]):.4g}")
    return row


def plot(rows: list[dict], out: Path, name_only: bool = False) -> None:
    """Per run folder against the step: above, the decoder's push off the plane (solid) and the
    commitment's pull (dashed, its size; where the solid line is above, the spread grows);
    below, the share of z's variance off the plane (solid) and the codes' (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, share) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=[3, 2])
    for i, (label, rs) in enumerate(by_run(rows, name_only).items()):
        steps, color = [r["step"] for r in rs], f"C{i}"
        ax.plot(steps, [r["rec_full_off_plane"] for r in rs], "o-", color=color, label=label)
        ax.plot(steps, [-r["commitment_off_plane"] for r in rs], "s--", color=color, mfc="none")
        share.plot(steps, [max(r["z_off_plane"], 1e-6) for r in rs], "o-", color=color)
        if all("q_off_plane" in r for r in rs):  # rows of before the codes' share was kept
            share.plot(steps, [max(r["q_off_plane"], 1e-6) for r in rs], "s--", color=color)
    ax.set(
        ylabel="variance growth rate, per image",
        title="off the plane: the decoder's push (solid), the commitment's pull (dashed)",
    )
    share.set(xlabel="step", ylabel="off the plane, share of z's variance", yscale="log")
    save(fig, ax, out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", help="RUN folders, or RUN=CHECKPOINT.pt")
    p.add_argument("-n", type=int, default=1000, help="test images (default 1000)")
    p.add_argument("--masks", type=int, default=8, help="dropout draws averaged (default 8)")
    p.add_argument("--directions", type=int, default=4, help="leading directions reported")
    p.add_argument("--plot", type=Path, help="PNG of the off-plane push and pull per step")
    p.add_argument("--from-jsonl", type=Path, help="plot the rows of an earlier run's output")
    p.add_argument(
        "--by-name",
        action="store_true",
        help="one line per run folder name (copies of a run in several folders joined)",
    )
    args = p.parse_args(argv)
    if not args.runs and not args.from_jsonl:
        p.error("give RUN folders (or RUN=CHECKPOINT.pt), or --from-jsonl")
    rows = []
    if args.from_jsonl:
        rows = [json.loads(line) for line in args.from_jsonl.read_text().splitlines() if line]
    for arg in args.runs:
        rows.append(measure(arg, args.n, args.masks, keep=args.directions))
        print(json.dumps(rows[-1]), flush=True)
    if args.plot:
        plot(rows, args.plot, args.by_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
