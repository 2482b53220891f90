"""benchmarks/bench.py runs: a 2-step toy measurement has its fields, exact FLOPs, a table row."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench  # noqa: E402


def test_toy_two_steps():
    results = bench.bench(["toy"], ["fp32", "channels_last"], steps=2, threads=1, quick=True)
    for dtype in ("fp32", "bf16"):
        assert results["peak"][dtype]["gflops_per_s"] > 0
    row, channels_last = results["train"]
    assert channels_last["status"].startswith("n/a")  # an MLP has no 4-D activations
    assert row["status"] == "ok" and row["batch_size"] == 128
    assert len(row["step_s_all"]) == 2
    # The toy VAE's MLPs 10-128-128-4 and 2-128-128-10: forward 2 x weights x batch FLOPs,
    # backward twice that, less the input gradient of the first layer (data needs none).
    weights = (10 * 128 + 128 * 128 + 128 * 4) + (2 * 128 + 128 * 128 + 128 * 10)
    assert row["flops_per_step"] == 3 * 2 * weights * 128 - 2 * 128 * 10 * 128
    assert row["images_per_s"] == row["batch_size"] / row["step_s"]
    assert 0 < row["peak_fraction"] == row["gflops_per_s"] / results["peak"]["fp32"]["gflops_per_s"]
    assert row["peak_mem_mb"] > 0
    assert results["profile"]["toy fp32"] and results["machine"]["cores"] >= 1
    assert "| toy | fp32 | 128 |" in bench.markdown(results)
