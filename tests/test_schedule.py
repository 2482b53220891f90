import pytest
import torch
from torch import nn

from dae.autoencoder.toy_vae import ToyVAE, ToyVAEConfig
from dae.config import replace
from dae.schedule import DAESchedule, ScheduleConfig
from dae.train.optim import OptimConfig, build_optimizer


def make(mode="dae", weak="aux", steps=10, **kw):
    cfg = replace(
        ScheduleConfig(),
        [f"mode={mode}", f"weak_decoder={weak}"] + [f"{k}={v}" for k, v in kw.items()],
    )
    torch.manual_seed(0)
    model = ToyVAE(ToyVAEConfig(enc_hidden=16, dec_hidden=16))
    schedule = DAESchedule(cfg, steps)
    schedule.prepare(model)
    return schedule, model


def test_stage_boundaries():
    schedule, _ = make("baseline", steps=7)
    assert [schedule.stage_at(s) for s in range(7)] == ["joint"] * 7
    schedule, _ = make(steps=10)
    assert [schedule.stage_at(s) for s in range(10)] == ["stage1"] * 5 + ["stage2"] * 5
    schedule, _ = make(steps=10, stage1_fraction=0.3)
    assert schedule.bounds("stage1") == (0, 3) and schedule.bounds("stage2") == (3, 10)
    # Each stage keeps at least one step, whatever the fraction rounds to.
    schedule, _ = make(steps=3, stage1_fraction=0.01)
    assert schedule.bounds("stage1") == (0, 1)
    schedule, _ = make(steps=3, stage1_fraction=0.99)
    assert schedule.bounds("stage2") == (2, 3)
    with pytest.raises(ValueError):
        schedule.stage_at(3)


def test_stage2_mode_is_stage_two_throughout():
    """`mode: stage2` (a pretrained encoder): every step is stage 2, no aux decoder is built."""
    schedule, model = make("stage2", steps=4)
    assert [schedule.stage_at(s) for s in range(4)] == ["stage2"] * 4
    assert schedule.bounds("stage2") == (0, 4) and model.aux_decoder is None
    plan = schedule.enter(model, "stage2", fresh=True)
    assert (plan.start, plan.end) == (0, 4)
    assert names(model, plan.trainable) == ["decoder"] and names(model, plan.frozen) == ["encoder"]
    assert not any(p.requires_grad for p in model.encoder.parameters())


def names(model, modules):
    lookup = {id(m): n for n, m in model.named_modules()}
    return sorted(lookup[id(m)] for m in modules)


def test_aux_plan():
    schedule, model = make("dae", "aux")
    assert model.aux_decoder is not None
    assert model.aux_decoder[0].out_features == 8  # half of 16
    plan = schedule.enter(model, "stage1")
    assert names(model, plan.trainable) == ["aux_decoder", "encoder"]
    assert names(model, plan.frozen) == ["decoder"]
    assert model.use_aux_decoder
    assert not any(p.requires_grad for p in model.decoder.parameters())
    plan = schedule.enter(model, "stage2")
    assert names(model, plan.trainable) == ["decoder"]
    assert names(model, plan.frozen) == ["aux_decoder", "encoder"]
    assert not model.use_aux_decoder and not model.encoder.training
    assert all(p.requires_grad for p in model.decoder.parameters())
    assert not any(p.requires_grad for p in model.encoder.parameters())


def test_dropout_plan_sets_and_clears_dropout():
    schedule, model = make("dae", "dropout2d", dropout_p=0.3)
    assert model.aux_decoder is None
    schedule.enter(model, "stage1")
    drops = [m for m in model.decoder.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(d.p == 0.3 for d in drops)
    assert all(d.p == 0.0 for d in model.encoder.modules() if isinstance(d, nn.Dropout))
    schedule.enter(model, "stage2")
    assert all(m.p == 0.0 for m in model.decoder.modules() if isinstance(m, nn.Dropout))


@pytest.mark.parametrize("init, changed", [("scratch", True), ("continue", False)])
def test_stage2_decoder_init(init, changed):
    schedule, model = make("dae", "dropout2d", **{"stage2.decoder_init": init})
    schedule.enter(model, "stage1")
    before = [p.clone() for p in model.decoder.parameters()]
    schedule.enter(model, "stage2", fresh=True)
    after = list(model.decoder.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after)) == changed
    # Resuming inside stage 2 never re-initialises.
    before = [p.clone() for p in model.decoder.parameters()]
    schedule.enter(model, "stage2", fresh=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.decoder.parameters()))


def test_optimizer_sees_exactly_the_trainable_parameters():
    schedule, model = make("dae", "aux")
    for stage in ("stage1", "stage2"):
        plan = schedule.enter(model, stage)
        opt = build_optimizer(OptimConfig(), plan.parameters())
        in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
        trainable = {id(p) for p in model.parameters() if p.requires_grad}
        assert in_opt == trainable and len(in_opt) == len(plan.parameters())


def test_set_train_mode_keeps_frozen_in_eval():
    schedule, model = make("dae", "aux")
    plan = schedule.enter(model, "stage2")
    model.eval()
    plan.set_train_mode(model)
    assert model.decoder.training and not model.encoder.training and not model.aux_decoder.training
