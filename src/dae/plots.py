"""matplotlib for every figure dae draws: imported when a figure is drawn (the tables and JSON
need none, and a machine without it still gets them), headless, and each PNG written atomically
so that a killed run never leaves half an image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dae.files import atomic_write


def pyplot():
    """`matplotlib.pyplot` on the Agg backend; ImportError where matplotlib is missing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Path, dpi: int = 110, layout: bool = True) -> None:
    """Write `fig` to `path` atomically and close it; `layout=False` for a figure that laid
    itself out (`tight_layout` with its own margins)."""
    if layout:
        fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    pyplot().close(fig)
