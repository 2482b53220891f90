import json

import pytest
import torch

from dae.config import replace, to_dict
from dae.errors import CheckpointError
from dae.files import load_checkpoint, save_checkpoint
from dae.reproduce.toy import ToyExperimentConfig, ToyTask
from dae.run_folder import RunFolder
from dae.schedule import DAESchedule
from dae.train.trainer import NonFiniteLossError, Trainer

TINY = [
    "data.n_train=256",
    "data.n_test=64",
    "model.enc_hidden=16",
    "model.dec_hidden=16",
    "train.batch_size=32",
    "train.progress=false",
    "train.tensorboard=false",
    "train.log_every=1",
]


def tiny_cfg(*overrides):
    return replace(ToyExperimentConfig(), TINY + list(overrides))


class Crash(Exception):
    """Stands in for a SIGKILL: nothing is saved on the way out."""


def run(cfg, run_dir=None, resume=False, crash_at=None, hooks=()):
    task = ToyTask(cfg)

    def crash(trainer, logs):
        if trainer.step == crash_at:
            raise Crash

    trainer = Trainer(
        task,
        DAESchedule(cfg.schedule, cfg.train.steps),
        cfg.train,
        cfg.optim,
        run_dir=run_dir,
        config=to_dict(cfg),
        resume=resume,
        hooks=[crash, *hooks],
    )
    trainer.fit()
    return task, trainer


def state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("weak", ["aux", "dropout2d"])
def test_stage2_keeps_encoder_bit_identical(weak):
    cfg = tiny_cfg("train.steps=20", "schedule.mode=dae", f"schedule.weak_decoder={weak}")
    snapshots = {}

    def snap(trainer, logs):
        if trainer.step == 10:  # end of stage 1
            snapshots["enc"] = state(trainer.task.model.encoder)
            snapshots["dec"] = state(trainer.task.model.decoder)
            if weak == "aux":
                snapshots["aux"] = state(trainer.task.model.aux_decoder)

    cfg = replace(cfg, ["train.ema_decay=0.9"])
    task, trainer = run(cfg, hooks=[snap])
    assert_same(snapshots["enc"], state(task.model.encoder))
    # The EMA copy of a frozen encoder is the frozen encoder itself, not a running average.
    ema_enc = {
        k[len("encoder.") :]: v for k, v in trainer.ema.shadow.items() if k.startswith("encoder.")
    }
    assert_same(snapshots["enc"], ema_enc)
    if weak == "aux":
        assert_same(snapshots["aux"], state(task.model.aux_decoder))
    # ...while the decoder did train.
    assert any(
        not torch.equal(v, task.model.decoder.state_dict()[k]) for k, v in snapshots["dec"].items()
    )


def test_baseline_trains_encoder_throughout():
    cfg = tiny_cfg("train.steps=10")
    task = ToyTask(cfg)
    before = state(task.model.encoder)
    Trainer(task, DAESchedule(cfg.schedule, 10), cfg.train, cfg.optim).fit()
    assert any(not torch.equal(v, task.model.encoder.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize(
    "mode, crash_at",
    [("baseline", 13), ("dae", 7), ("dae", 10), ("dae", 17)],  # stage 1, boundary, stage 2
)
def test_resume_equals_uninterrupted(tmp_path, mode, crash_at):
    cfg = tiny_cfg(
        "train.steps=24",
        "train.ckpt_every=5",
        f"schedule.mode={mode}",
        "schedule.weak_decoder=dropout2d",
        "schedule.dropout_p=0.5",
        "train.ema_decay=0.9",
    )
    full, _ = run(cfg, tmp_path / "full")
    with pytest.raises(Crash):
        run(cfg, tmp_path / "cut", crash_at=crash_at)
    resumed, _ = run(cfg, tmp_path / "cut", resume=True)
    assert_same(state(full.model), state(resumed.model))
    full_ckpt = load_checkpoint(tmp_path / "full/checkpoints/last.pt")
    cut_ckpt = load_checkpoint(tmp_path / "cut/checkpoints/last.pt")
    assert_same(full_ckpt["ema"], cut_ckpt["ema"])
    # The metrics log has every step exactly once, with the same values.
    rows_full, rows_cut = (
        RunFolder(tmp_path / "full").read_metrics(),
        RunFolder(tmp_path / "cut").read_metrics(),
    )
    assert [r["step"] for r in rows_cut] == list(range(1, 25))
    assert rows_full == rows_cut


def test_nan_stops_and_keeps_last_checkpoint(tmp_path):
    cfg = tiny_cfg("train.steps=20", "train.ckpt_every=5")
    task = ToyTask(cfg)
    original = task.loss

    def poisoned(name, batch, ctx):
        loss, logs = original(name, batch, ctx)
        return (loss * float("nan") if ctx.stage_step == 12 else loss), logs

    task.loss = poisoned
    trainer = Trainer(task, DAESchedule(cfg.schedule, 20), cfg.train, cfg.optim, run_dir=tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"in step 13 .*checkpoint \(step 10\)"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "checkpoints/last.pt")["step"] == 10


def test_nan_skip_policy_skips_the_step():
    cfg = tiny_cfg("train.steps=6", "train.on_nan=skip")
    task = ToyTask(cfg)
    original = task.loss
    seen = {}

    def poisoned(name, batch, ctx):
        loss, logs = original(name, batch, ctx)
        if ctx.stage_step == 3:
            seen["before"] = state(task.model)
            return loss * float("nan"), logs
        if ctx.stage_step == 4:
            seen["after"] = state(task.model)
        return loss, logs

    task.loss = poisoned
    rows = Trainer(task, DAESchedule(cfg.schedule, 6), cfg.train, cfg.optim).fit()
    assert rows[3]["skipped_nonfinite"] == 1.0
    assert_same(seen["before"], seen["after"])


def test_checkpoint_refuses_pickled_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (exec, ("open('PWNED', 'w').write('x')",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_checkpoint_truncated_and_atomic(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"w": torch.ones(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)
    save_checkpoint(path, {"w": torch.zeros(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp files left behind


def test_resume_rejects_checkpoint_of_another_model(tmp_path):
    cfg = tiny_cfg("train.steps=4")
    run(cfg, tmp_path)
    other = tiny_cfg("train.steps=4", "model.enc_hidden=24")
    with pytest.raises(CheckpointError, match="does not fit this model"):
        run(other, tmp_path, resume=True)


def test_metrics_jsonl_rows(tmp_path):
    cfg = tiny_cfg("train.steps=6", "schedule.mode=dae")
    run(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in rows] == ["stage1"] * 3 + ["stage2"] * 3
    assert all({"loss", "recon", "kl"} <= r.keys() for r in rows)


def test_cosine_lr_known_values():
    from dae.train.optim import OptimConfig, lr_scale

    cfg = OptimConfig(decay="cosine", final_lr_fraction=0.1)
    # 11 steps: the half cosine runs from 1 at step 0 to the floor at step 10, 0.55 half-way.
    assert lr_scale(cfg, 0, 11) == pytest.approx(1.0)
    assert lr_scale(cfg, 5, 11) == pytest.approx(0.55)
    assert lr_scale(cfg, 10, 11) == pytest.approx(0.1)
    warm = OptimConfig(decay="cosine", final_lr_fraction=0.0, warmup_steps=4)
    # Warm-up over steps 0-3, then the half cosine from step 4 to the last step, 12.
    assert [lr_scale(warm, s, 13) for s in (0, 1, 3, 4)] == pytest.approx([0.25, 0.5, 1, 1])
    assert lr_scale(warm, 8, 13) == pytest.approx(0.5)
    assert lr_scale(warm, 12, 13) == pytest.approx(0.0)
    assert lr_scale(OptimConfig(), 7, 11) == 1.0  # no decay: constant


def test_cosine_decay_restarts_in_stage_two(tmp_path):
    # The DAE stage-2 decoder is fresh, so it gets the whole schedule again, as a baseline does.
    cfg = tiny_cfg(
        "train.steps=20", "schedule.mode=dae", "optim.decay=cosine", "optim.final_lr_fraction=0.2"
    )
    run(cfg, tmp_path / "r")
    lr = {r["step"]: r["lr"] for r in RunFolder(tmp_path / "r").read_metrics()}
    base = cfg.optim.lr
    assert lr[1] == pytest.approx(base) and lr[11] == pytest.approx(base)  # each stage starts high
    assert lr[10] == pytest.approx(0.2 * base) and lr[20] == pytest.approx(0.2 * base)
    assert lr[5] > lr[6] > lr[7]


@pytest.mark.parametrize("crash_at", [6, 13])
def test_cosine_resume_equals_uninterrupted(tmp_path, crash_at):
    cfg = tiny_cfg(
        "train.steps=20", "train.ckpt_every=4", "schedule.mode=dae", "optim.decay=cosine"
    )
    full, _ = run(cfg, tmp_path / "full")
    with pytest.raises(Crash):
        run(cfg, tmp_path / "cut", crash_at=crash_at)
    resumed, _ = run(cfg, tmp_path / "cut", resume=True)
    assert_same(state(full.model), state(resumed.model))
    assert RunFolder(tmp_path / "full").read_metrics() == RunFolder(tmp_path / "cut").read_metrics()


def test_ema_that_would_keep_the_init_is_flagged(capsys):
    from dae.train.optim import ema_init_share, ema_note

    # 0.999 over 1,500 steps still holds 22 % of the initial weights (the DiT-prior trap).
    assert ema_init_share(0.999, 1500) == pytest.approx(0.2229, abs=1e-4)
    note = ema_note(0.999, 1500)
    assert "end with 22 % of the initial weights" in note and "ema_decay <= 0.9969" in note
    assert ema_note(0.99, 1500) is None and ema_note(0.0, 10) is None
    # With the warm-up the init is gone after a few steps: 1/10 * 2/11 * 3/12 = 1/220.
    assert ema_init_share(0.999, 3, warmup=True) == pytest.approx(1 / 220)
    assert ema_note(0.999, 1500, warmup=True) is None
    # The trainer says so on stderr when it starts (only without the warm-up).
    cfg = tiny_cfg("train.steps=10", "train.ema_decay=0.9", "train.ema_warmup=false")
    task = ToyTask(cfg)
    Trainer(task, DAESchedule(cfg.schedule, 10), cfg.train, cfg.optim)
    assert "warning: train.ema_decay=0.9 over train.steps=10" in capsys.readouterr().err
    cfg = tiny_cfg("train.steps=10", "train.ema_decay=0.9")
    Trainer(ToyTask(cfg), DAESchedule(cfg.schedule, 10), cfg.train, cfg.optim)
    assert "warning" not in capsys.readouterr().err


def test_ema_warmup_averages_with_known_weights():
    """Decays 0.1, 2/11, ... up to ema_decay (latent-diffusion's LitEma); the first update keeps
    a tenth of the init. Without the warm-up the decay is fixed from step 0."""
    from dae.train.optim import EMA, ema_decay_at

    assert ema_decay_at(0.999, 0, True) == pytest.approx(0.1)
    assert ema_decay_at(0.9, 80, True) == pytest.approx(0.9)  # 81 / 90: the warm-up ends here
    assert ema_decay_at(0.9, 500, True) == 0.9 and ema_decay_at(0.9, 0, False) == 0.9
    module = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        module.weight.fill_(1.0)
    warm, fixed = EMA(module, 0.9, warmup=True), EMA(module, 0.9, warmup=False)
    with torch.no_grad():
        module.weight.fill_(3.0)
    warm.update(module, 0)
    fixed.update(module, 0)
    assert warm.shadow["weight"].item() == pytest.approx(0.1 * 1 + 0.9 * 3)
    assert fixed.shadow["weight"].item() == pytest.approx(0.9 * 1 + 0.1 * 3)
    warm.update(module, 1)  # decay 2/11 towards 3 again
    assert warm.shadow["weight"].item() == pytest.approx(2 / 11 * 2.8 + 9 / 11 * 3)


def test_ema_averages_floats_copies_frozen_and_integer_tensors():
    """Trainable weights and float buffers are averaged; a frozen parameter (DAE stage 2's encoder)
    and an integer buffer are copied exactly; a layer replaced with another shape is re-seeded."""
    from dae.train.optim import EMA

    module = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    with torch.no_grad():
        for t in module.state_dict().values():
            t.fill_(1)
    ema = EMA(module, 0.75)
    module[0].bias.requires_grad_(False)
    with torch.no_grad():
        for t in module.state_dict().values():
            t.fill_(5)
    ema.update(module, 0)
    s = ema.shadow
    assert torch.equal(s["0.weight"], torch.full((2, 2), 2.0))  # 0.75 * 1 + 0.25 * 5
    assert torch.equal(s["1.running_mean"], torch.full((2,), 2.0))
    assert torch.equal(s["0.bias"], torch.full((2,), 5.0))  # frozen: copied
    assert s["1.num_batches_tracked"].item() == 5 and s["1.num_batches_tracked"].dtype == torch.long
    module[0] = torch.nn.Linear(3, 2, bias=False)  # a new shape: nothing to average with
    ema.update(module, 1)
    assert torch.equal(ema.shadow["0.weight"], module[0].weight)
    assert ema.shadow["0.weight"] is not module[0].weight  # a copy, not the live tensor


@pytest.mark.parametrize("until", [7, 10, 17])  # stage 1, the boundary, stage 2
def test_until_stops_with_a_checkpoint_and_resume_equals_uninterrupted(tmp_path, until):
    cfg = tiny_cfg(
        "train.steps=24",
        "train.ckpt_every=5",
        "schedule.mode=dae",
        "schedule.weak_decoder=dropout2d",
        "schedule.dropout_p=0.5",
        "optim.decay=cosine",
    )
    full, _ = run(cfg, tmp_path / "full")
    task = ToyTask(cfg)
    schedule = DAESchedule(cfg.schedule, 24)
    cut = Trainer(task, schedule, cfg.train, cfg.optim, run_dir=tmp_path / "cut")
    cut.fit(until=until)
    assert cut.step == until and not cut.finished
    assert load_checkpoint(tmp_path / "cut/checkpoints/last.pt")["step"] == until
    # the lr is the 24-step schedule's at `until`, not a schedule that ends there
    rows = RunFolder(tmp_path / "cut").read_metrics()
    assert rows == RunFolder(tmp_path / "full").read_metrics()[:until]
    with pytest.raises(ValueError, match=f"stop after step {until - 1}, but the run is at"):
        cut.fit(until=until - 1)
    resumed, trainer = run(cfg, tmp_path / "cut", resume=True)
    assert trainer.finished
    assert_same(state(full.model), state(resumed.model))
    assert RunFolder(tmp_path / "cut").read_metrics() == RunFolder(tmp_path / "full").read_metrics()


def test_data_seed_changes_the_batches_not_the_init():
    base = tiny_cfg("train.steps=6", "train.seed=3")
    cfgs = {"base": base, "same": replace(base, ["train.data_seed=3"])}
    cfgs["other"] = replace(base, ["train.data_seed=4"])
    assert base.train.batch_seed == 3 and cfgs["other"].train.batch_seed == 4
    inits, first, trained = {}, {}, {}
    for name, c in cfgs.items():  # one at a time: init and training noise come from `seed`
        task = ToyTask(c)
        inits[name], first[name] = state(task.model), task.batch(0)
        Trainer(task, DAESchedule(c.schedule, 6), c.train, c.optim).fit()
        trained[name] = state(task.model)
    assert_same(inits["base"], inits["other"])  # one init
    assert torch.equal(first["base"], first["same"])
    assert not torch.equal(first["base"], first["other"])
    assert_same(trained["base"], trained["same"])
    assert any(not torch.equal(trained["base"][k], trained["other"][k]) for k in trained["base"])


def test_cli_until_writes_no_final_weights_and_resume_finishes(tmp_path, capsys):
    from dae.cli import main

    run_dir = tmp_path / "run"
    args = ["train", "configs/toy_vae.yaml", "--out", str(run_dir)]
    args += ["--set", "train.steps=6", "--set", "train.progress=false"]
    args += ["--set", "train.tensorboard=false", "--set", "train.log_every=1"]
    assert main([*args, "--until", "4"]) == 0
    assert f"stopped after step 4 of 6; --resume continues {run_dir}" in capsys.readouterr().out
    assert not (run_dir / "model.safetensors").exists()
    assert main([*args, "--resume", "--until", "3"]) == 2
    assert "--until: must not be before step 4" in capsys.readouterr().err
    checkpoint = (run_dir / "checkpoints/last.pt").read_bytes()
    rows = RunFolder(run_dir).read_metrics()
    # a kill after the checkpoint leaves rows past it; a rerun that is already there cuts them
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 5, "loss": 1.0}) + "\n")
    assert main([*args, "--resume", "--until", "4"]) == 0  # already there: left as it is
    assert (run_dir / "checkpoints/last.pt").read_bytes() == checkpoint
    assert RunFolder(run_dir).read_metrics() == rows and rows[-1]["step"] == 4
    assert "stopped after step 4 of 6" in capsys.readouterr().out
    assert main([*args, "--resume"]) == 0
    assert (run_dir / "model.safetensors").exists()
    assert main([*args, "--resume", "--until", "5"]) == 2
    assert f"must not be before step 6, where {run_dir} is (finished)" in capsys.readouterr().err
    # refused before the folder is claimed: no config.yaml is left behind
    fresh = tmp_path / "fresh"
    assert main([*args[:3], str(fresh), *args[4:], "--until", "0"]) == 2
    assert "--until: must be >= 1, got 0" in capsys.readouterr().err
    assert not fresh.exists()
