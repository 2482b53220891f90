"""Evaluation never measures the wrong thing silently (issue 17): which weights were measured is
recorded and reported, metric groups merge, channel-last or too few samples are refused."""

import json

import numpy as np
import pytest

from dae.cli import main
from dae.config import ConfigError
from dae.metrics.evaluate import load_samples
from test_metrics_cli import REPO, TINY


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished toy run and an unfinished one (no model.safetensors, only a checkpoint)."""
    root = tmp_path_factory.mktemp("runs")
    for name in ("done", "unfinished"):
        args = ["train", str(REPO / "configs/toy_vae.yaml"), *TINY, "--out", str(root / name)]
        assert main([*args, "--set", "train.ckpt_every=20"]) == 0
    (root / "unfinished" / "model.safetensors").unlink()
    return root / "done", root / "unfinished"


def test_eval_records_weights_and_step_and_report_shows_them(runs, tmp_path, capsys):
    done, unfinished = runs
    for run in runs:
        assert main(["evaluate", str(run), "--metrics", "knn", "--knn-train", "256"]) == 0
    assert "unfinished: measuring checkpoints/last.pt at step 40" in capsys.readouterr().out
    finished = json.loads((done / "eval.json").read_text())
    partial = json.loads((unfinished / "eval.json").read_text())
    assert (finished["weights"], finished["step"]) == ("final", 40)
    assert (partial["weights"], partial["step"], partial["stage"]) == ("checkpoint", 40, "joint")
    assert main(["report", str(done), str(unfinished), "--out", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| weights | final @ step 40 | checkpoint @ step 40 (joint) |" in md


def test_evaluate_one_group_merges_into_eval_json(runs):
    done = runs[0]
    assert main(["evaluate", str(done), "--metrics", "knn", "--knn-train", "256"]) == 0
    knn = json.loads((done / "eval.json").read_text())["metrics"]["knn_latent_acc"]
    assert main(["evaluate", str(done), "--metrics", "recon", "--knn-train", "256"]) == 0
    merged = json.loads((done / "eval.json").read_text())
    assert merged["metrics"]["knn_latent_acc"] == knn  # the earlier group is kept
    assert "psnr/ssim" in merged["skipped"] and {"knn", "reconstruct"} <= set(merged["seconds"])


def test_channel_last_and_too_few_samples_are_refused(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, images=np.zeros((8, 16, 16, 3), np.uint8))  # numpy's usual (N, H, W, C)
    with pytest.raises(ConfigError, match=r"channel-last \(N, H, W, C\)"):
        load_samples(path)
    np.savez(path, images=np.zeros((1, 3, 16, 16), np.uint8))
    with pytest.raises(ConfigError, match="need >= 2"):
        load_samples(path)
    np.savez(path, images=np.zeros((2, 3, 16, 16), np.uint8))
    assert load_samples(path).shape == (2, 3, 16, 16)


def test_report_curves_name_every_run_and_split_vq_from_kl(tmp_path, monkeypatch):
    import yaml

    from dae.metrics import figures
    from dae.plots import pyplot

    runs = []
    for name, kind, keys in [("vq-a", "vqgan", ("loss", "vq")), ("kl-b", "kl", ("loss", "kl"))]:
        run = tmp_path / name
        run.mkdir()
        (run / "config.yaml").write_text(yaml.safe_dump({"kind": kind, "train": {}}))
        rows = [{"step": s, "stage": "joint", **{k: float(s) for k in keys}} for s in (1, 2)]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        runs.append(run)
    (tmp_path / "vq-c").mkdir()  # a third run, with only the shared key
    (tmp_path / "vq-c" / "config.yaml").write_text(yaml.safe_dump({"kind": "vqgan", "train": {}}))
    (tmp_path / "vq-c" / "metrics.jsonl").write_text('{"step": 1, "stage": "joint", "loss": 3.0}\n')
    runs.append(tmp_path / "vq-c")
    plt = pyplot()
    closed = []
    monkeypatch.setattr(plt, "close", closed.append)
    assert figures.plot_curves(runs, tmp_path / "c.png", "", None, "curves", log_y=False)
    fig = closed[0]
    titles = {ax.get_title() for ax in fig.axes if ax.get_title()}
    assert titles == {"kl (kl)", "loss (kl)", "loss (vqgan)", "vq (vqgan)"}
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert sorted(legend) == ["kl-b", "vq-a", "vq-c"]  # every run, not only panel 1's
    loss_vq = next(ax for ax in fig.axes if ax.get_title() == "loss (vqgan)")
    assert sorted(line.get_label() for line in loss_vq.get_lines()) == ["vq-a", "vq-c"]


def test_report_curves_shade_each_kinds_panels_with_that_kinds_stages(tmp_path, monkeypatch):
    """A VQ and a KL DAE run with different stage boundaries: each panel is shaded by its own
    kind's run, never by the other's."""
    import yaml

    from dae.metrics import figures
    from dae.plots import pyplot

    runs = []
    for name, kind, switch in [("vq-dae", "vqgan", 2), ("kl-dae", "kl", 4)]:
        run = tmp_path / name
        run.mkdir()
        (run / "config.yaml").write_text(yaml.safe_dump({"kind": kind, "train": {}}))
        rows = [
            {"step": s, "stage": "stage1" if s <= switch else "stage2", "loss": float(s)}
            for s in range(1, 7)
        ]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        runs.append(run)
    plt = pyplot()
    closed = []
    monkeypatch.setattr(plt, "close", closed.append)
    assert figures.plot_curves(runs, tmp_path / "c.png", "", None, "curves", log_y=False)
    spans = {}
    for ax in closed[0].axes:
        if ax.get_title():
            spans[ax.get_title()] = [(p.get_x(), p.get_x() + p.get_width()) for p in ax.patches]
    # (stage, first, last) spans: stage 1 from 0 to the switch, stage 2 from there to step 6
    assert spans == {"loss (vqgan)": [(0, 2), (2, 6)], "loss (kl)": [(0, 4), (4, 6)]}
    assert "vq-dae" in closed[0]._suptitle.get_text()
    assert "kl-dae" in closed[0]._suptitle.get_text()


def test_evaluate_on_another_device_measures_the_same(runs, monkeypatch):
    """`--device` moves only the network's passes: through that path (here to `cpu:0`, the path
    `cuda` takes) every metric equals the plain CPU evaluation's; no GPU is a clear error."""
    from dae.metrics.evaluate import EvalOptions, evaluate_run

    done, _ = runs
    opts = dict(metrics=["recon", "knn", "lipschitz", "diagnostics"], knn_train=256, n=200)
    plain = evaluate_run(done, EvalOptions(**opts), log=lambda _: None)["metrics"]
    moved = evaluate_run(done, EvalOptions(**opts, device="cpu:0"), log=lambda _: None)["metrics"]
    assert "lipschitz/encoder" in moved and moved == plain
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ConfigError, match="--device: 'cuda' asked for, but this torch sees no"):
        evaluate_run(done, EvalOptions(**opts, device="cuda"))
