"""benchmarks/vs_taming.py: runs without taming-transformers, and its timing loop works."""

import sys

import pytest

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks"))
import vs_taming  # noqa: E402


def test_says_so_and_exits_cleanly_without_taming(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "taming", None)  # `import taming...` raises ImportError
    assert vs_taming.import_taming() is None
    assert vs_taming.main(["--rounds", "1"]) == 0
    assert "taming-transformers is not importable" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_compare_times_each_precision_and_contender_interleaved():
    arch = {
        "ch": 32,
        "ch_mult": [1],
        "num_res_blocks": 1,
        "attn_resolutions": [],
        "resolution": 8,
        "z_channels": 4,
        "n_embed": 8,
        "embed_dim": 4,
    }
    builders = {"taming": lambda: vs_taming.DaeVQ(arch), "dae": lambda: vs_taming.DaeVQ(arch)}
    times = vs_taming.compare(
        builders, batch=2, rounds=2, precisions=["fp32", "bf16"], resolution=8
    )
    assert {p: {n: len(t) for n, t in d.items()} for p, d in times.items()} == {
        p: {"taming": 2, "dae": 2} for p in ("fp32", "bf16")
    }
    assert all(s > 0 for d in times.values() for t in d.values() for s in t)
    assert "dae speed vs taming" in vs_taming.report(times)
