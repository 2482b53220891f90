import pytest
import torch

from dae.config import ConfigError, from_dict
from dae.priors.dit import DIT_MODELS, DiT, DiTConfig


def tiny(learn_sigma: bool = True) -> DiT:
    torch.manual_seed(0)
    cfg = DiTConfig(arch="DiT-S/2", depth=2, hidden_size=32, num_heads=2, learn_sigma=learn_sigma)
    return DiT(cfg, input_size=8, in_channels=4, n_classes=10)


def test_adaln_zero_output_is_zero_and_blocks_are_identity_at_init():
    model = tiny()
    x, t, y = torch.randn(3, 4, 8, 8), torch.tensor([0, 500, 999]), torch.tensor([1, 2, 10])
    out = model(x, t, y)
    assert out.shape == (3, 8, 8, 8)
    assert torch.count_nonzero(out) == 0
    h = torch.randn(3, 16, 32)
    c = torch.randn(3, 32)
    for block in model.blocks:
        assert torch.equal(block(h, c), h)
    # Gradients still reach the zero-initialised layers, so training can leave zero.
    model(x, t, y).sum().backward()
    assert model.final_layer.linear.weight.grad.abs().sum() > 0


def test_output_depends_on_input_label_and_time_after_a_perturbation():
    model = tiny(learn_sigma=False)
    for p in model.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    x, t, y = torch.randn(2, 4, 8, 8), torch.tensor([10, 10]), torch.tensor([3, 3])
    base = model(x, t, y)
    assert base.shape == x.shape
    assert not torch.allclose(base, model(x, t, torch.tensor([4, 4])))
    assert not torch.allclose(base, model(x, torch.tensor([900, 900]), y))
    # Label dropout maps a label to the null class.
    dropped = model(x, t, y, drop=torch.tensor([True, False]))
    torch.testing.assert_close(dropped[0], model(x, t, torch.tensor([10, 3]))[0])
    torch.testing.assert_close(dropped[1], base[1])
    # No mixing across the batch.
    x2 = x.clone()
    x2[1] += 1
    torch.testing.assert_close(model(x2, t, y)[0], base[0])


def test_registry_sizes_match_the_dit_paper():
    assert len(DIT_MODELS) == 16  # the paper's 12 (patch 2, 4, 8) and patch 1 for odd latents
    with torch.device("meta"):
        xl = DiT(DiTConfig(arch="DiT-XL/2"), input_size=32, in_channels=4, n_classes=1000)
        large4 = DiT(DiTConfig(arch="DiT-L/4"), input_size=32, in_channels=4, n_classes=1000)
    # DiT paper Table 4: XL/2 675M, L/4 458M parameters.
    assert round(sum(p.numel() for p in xl.parameters()) / 1e6) == 675
    assert round(sum(p.numel() for p in large4.parameters()) / 1e6) == 458
    assert large4.grid == 8  # (32 / 4)^2 = 64 tokens


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="arch"):
        from_dict(DiTConfig, {"arch": "DiT-M/2"})
    with pytest.raises(ConfigError, match="model.arch"):
        DiT(DiTConfig(arch="DiT-S/8"), input_size=4, in_channels=4, n_classes=0)
