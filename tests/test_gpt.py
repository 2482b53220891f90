import pytest
import torch

from dae.config import ConfigError, from_dict
from dae.priors.gpt import GPT, GPTConfig
from dae.priors.sampling import TokenSamplingConfig, filter_logits, generate

V, L, NC = 11, 12, 3


def tiny(n_classes: int = 0) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(n_layer=2, n_head=2, n_embd=16), V, L, n_classes).eval()


def test_causal_masking_later_tokens_do_not_change_earlier_outputs():
    model = tiny()
    idx = torch.randint(V, (2, L))
    changed = idx.clone()
    t = 5
    changed[:, t + 1 :] = (changed[:, t + 1 :] + 3) % V
    a, _ = model(idx)
    b, _ = model(changed)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :])


def test_kv_cache_logits_equal_full_forward():
    model = tiny(NC)
    idx = torch.cat(
        [model.cond_tokens(torch.tensor([0, 2]), 2, "cpu"), torch.randint(V, (2, L - 1))], 1
    )
    full, _ = model(idx)
    past, steps = None, []
    for i in range(L):
        logits, past = model(idx[:, i : i + 1], past)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("top_k,top_p", [(0, 1.0), (4, 1.0), (0, 0.8)])
def test_cached_sampler_equals_uncached(top_k, top_p):
    model = tiny(NC)
    labels = torch.tensor([0, 1, 2, 1])
    out = []
    for cache in (True, False):
        cfg = TokenSamplingConfig(temperature=0.9, top_k=top_k, top_p=top_p, kv_cache=cache)
        out.append(generate(model, 4, cfg, labels, torch.Generator().manual_seed(3)))
    assert out[0].shape == (4, L) and out[0].max() < V
    assert torch.equal(out[0], out[1])


def test_filter_logits_top_k_and_top_p_known_values():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    # nucleus 0.75: 0.5 alone < 0.75, 0.5 + 0.3 >= 0.75 -> keep two
    assert torch.isinf(filter_logits(logits, top_p=0.75)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.5)).tolist() == [[False, True, True, True]]


def test_weight_decay_only_on_linear_weights():
    model = tiny(NC)
    decay, rest = model.param_groups(0.1)
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear)}
    assert {id(p) for p in decay["params"]} == linear_weights
    assert id(model.tok_emb.weight) in {id(p) for p in rest["params"]} and rest["weight_decay"] == 0
    assert len(decay["params"]) + len(rest["params"]) == len(list(model.parameters()))


def test_loss_is_log_vocab_at_init_and_config_is_checked():
    model = tiny()
    loss = model.loss(torch.randint(V, (4, L)))
    assert abs(loss.item() - torch.log(torch.tensor(float(V))).item()) < 0.1
    with pytest.raises(ConfigError, match="n_embd"):
        from_dict(GPTConfig, {"n_embd": 10, "n_head": 3})
    with pytest.raises(ValueError, match="class-conditional"):
        tiny(NC).cond_tokens(None, 2, "cpu")
