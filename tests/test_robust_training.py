"""Training-loop defects from the hostile walk-through (issue 17): gradient accumulation, NaN
stops and skips. Each test failed before its fix."""

import pytest

from dae.cli import main
from dae.config import ConfigError, replace
from dae.reproduce.toy import ToyExperimentConfig, ToyTask
from dae.run_folder import RunFolder
from dae.schedule import DAESchedule
from dae.train.task import TrainConfig
from dae.train.trainer import NonFiniteLossError, Trainer

TINY = [
    "data.n_train=64",
    "model.enc_hidden=8",
    "model.dec_hidden=8",
    "train.progress=false",
    "train.tensorboard=false",
    "train.log_every=1",
    "optim.grad_clip=1e9",  # never clips; logs the gradient norm before the step
]


def _encoder_energy_run(grad_accum: int, batch_size: int) -> list[dict]:
    """One step on a deterministic per-sample-mean loss; returns the logged rows."""
    cfg = replace(
        ToyExperimentConfig(),
        [
            *TINY,
            "train.steps=1",
            f"train.batch_size={batch_size}",
            f"train.grad_accum={grad_accum}",
        ],
    )
    task = ToyTask(cfg)

    def loss(name, batch, ctx):
        value = task.model.encoder(batch).pow(2).mean()
        return value, {"energy": value.item()}

    task.loss = loss
    return Trainer(task, DAESchedule(cfg.schedule, 1), cfg.train, cfg.optim).fit()


@pytest.mark.parametrize("grad_accum", [2, 3, 4])
def test_grad_accum_weights_micro_batches_by_size(grad_accum):
    # batch 5 splits unevenly (3+2, 2+2+1, 2+2+1 in only 3 chunks): the accumulated gradient
    # and logged loss must equal one batch's, not a uniform 1/grad_accum average.
    whole = _encoder_energy_run(1, 5)[0]
    split = _encoder_energy_run(grad_accum, 5)[0]
    assert split["energy"] == pytest.approx(whole["energy"], rel=1e-5)
    assert split["grad_norm/ae"] == pytest.approx(whole["grad_norm/ae"], rel=1e-5)


def test_grad_accum_larger_than_batch_is_refused():
    with pytest.raises(ConfigError, match="grad_accum: must be <= batch_size"):
        TrainConfig(batch_size=4, grad_accum=8)


def _poisoned_toy(nan_at: int, *overrides: str) -> tuple[ToyTask, ToyExperimentConfig]:
    """A toy task whose loss is NaN from 0-based step `nan_at` on."""
    cfg = replace(
        ToyExperimentConfig(), [*TINY, "train.steps=20", "train.batch_size=16", *overrides]
    )
    task = ToyTask(cfg)
    original = task.loss

    def poisoned(name, batch, ctx):
        loss, logs = original(name, batch, ctx)
        return (loss * float("nan") if ctx.stage_step >= nan_at else loss), logs

    task.loss = poisoned
    return task, cfg


def test_nan_stop_message_names_only_a_checkpoint_that_exists(tmp_path):
    task, cfg = _poisoned_toy(3, "train.ckpt_every=5")
    trainer = Trainer(task, DAESchedule(cfg.schedule, 20), cfg.train, cfg.optim, run_dir=tmp_path)
    with pytest.raises(NonFiniteLossError) as err:
        trainer.fit()
    # The log has steps 1-3; the failing step is the 4th, and no checkpoint exists yet.
    assert [r["step"] for r in RunFolder(tmp_path).read_metrics()] == [1, 2, 3]
    assert "in step 4 " in str(err.value) and "no checkpoint was written yet" in str(err.value)
    assert not (tmp_path / "checkpoints" / "last.pt").exists()
    assert "kept at" not in str(err.value)


def test_nan_skip_warns_how_many_steps_were_skipped(tmp_path, capsys):
    args = ["train", "configs/toy_vae.yaml", "--out", str(tmp_path / "run")]
    for item in [
        *TINY,
        "train.steps=20",
        "train.batch_size=16",
        "train.on_nan=skip",
        "optim.lr=1e30",
    ]:
        args += ["--set", item]
    assert main(args) == 0
    err = capsys.readouterr().err
    skipped = sum(r.get("skipped_nonfinite", 0) for r in RunFolder(tmp_path / "run").read_metrics())
    assert skipped >= 10  # lr 1e30 blows the weights up within a step or two
    assert f"warning: {int(skipped)} of 20 steps were skipped for a non-finite loss" in err


def test_batch_larger_than_the_dataset_is_one_line(tmp_path, capsys):
    args = ["train", "configs/toy_vae.yaml", "--out", str(tmp_path / "run")]
    for item in [*TINY, "train.batch_size=128"]:  # data.n_train=64
        args += ["--set", item]
    assert main(args) == 2
    assert "train.batch_size: 128 x 1 process(es) is more than the dataset's 64 items" in (
        capsys.readouterr().err
    )


def test_tensorboard_has_each_step_once_after_a_resume(tmp_path):
    from collections import Counter

    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    from dae.config import to_dict

    cfg = replace(
        ToyExperimentConfig(),
        [
            *TINY,
            "train.steps=12",
            "train.ckpt_every=5",
            "train.batch_size=16",
            "train.tensorboard=true",
        ],
    )

    class Crash(Exception):
        """A kill after step 8: steps 6-8 were logged after the last checkpoint (step 5)."""

    def fit(resume: bool, crash_at: int | None) -> None:
        def crash(trainer, logs):
            if trainer.step == crash_at:
                raise Crash

        trainer = Trainer(
            ToyTask(cfg),
            DAESchedule(cfg.schedule, 12),
            cfg.train,
            cfg.optim,
            run_dir=tmp_path,
            config=to_dict(cfg),
            resume=resume,
            hooks=[crash],
        )
        try:
            trainer.fit()
        except Crash:
            pass

    fit(resume=False, crash_at=8)
    fit(resume=True, crash_at=None)
    points = Counter()
    for path in (tmp_path / "tb").glob("events.out.tfevents.*"):
        for event in LegacyEventFileLoader(str(path)).Load():
            points.update(event.step for v in event.summary.value if v.tag == "loss")
    assert points == Counter(range(1, 13))  # every step once, none twice


def test_a_kill_while_the_log_is_rewound_keeps_the_whole_log(tmp_path, monkeypatch):
    """On resume the logger drops the rows logged after the checkpoint by rewriting
    metrics.jsonl. That rewrite is atomic: a kill in the middle leaves the old file whole (a plain
    write_text truncated it first, and the run lost its history)."""
    from pathlib import Path

    from dae.train.logger import MetricsLogger

    log = tmp_path / "metrics.jsonl"
    rows = "".join(f'{{"step": {s}, "loss": {s / 10}}}\n' for s in range(1, 9))
    log.write_text(rows)
    real = Path.write_text

    def killed_mid_write(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        MetricsLogger(tmp_path, resume_step=5, tensorboard=False)
    monkeypatch.undo()
    assert log.read_text() == rows and sorted(p.name for p in tmp_path.iterdir()) == [log.name]
    MetricsLogger(tmp_path, resume_step=5, tensorboard=False)
    assert [r["step"] for r in RunFolder(tmp_path).read_metrics()] == [1, 2, 3, 4, 5]
