import importlib.util
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# `train.precision: auto` resolves to fp32 in the suite on every CPU, so results do not depend on
# the machine (and subprocesses inherit it); tests/test_precision.py sets both values itself.
os.environ.setdefault("DAE_CPU_BF16", "0")


# Small nets: one thread is fastest and keeps results independent of the core count. Set at
# import too: a module- or session-scoped fixture (tests/test_probe.py's trained `runs`) is built
# before any function-scoped one, so a file run on its own would otherwise train it on every core.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(1)  # again for each test: a test may change it
    yield


@pytest.fixture
def data_root() -> Path:
    """The real datasets (CI: ../shared/data); tests that need them skip when absent."""
    root = Path(os.environ.get("DAE_DATA", REPO.parent / "shared" / "data"))
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set DAE_DATA)")
    return root


@pytest.fixture(scope="session")
def load_script():
    """`load_script("plot_mode")` imports scripts/plot_mode.py (scripts/ is not a package)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, REPO / f"scripts/{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
