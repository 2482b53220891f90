"""dae.plots: every figure is written whole (atomically) and its figure closed."""

from __future__ import annotations

from dae.plots import pyplot, save_png


def test_save_png_writes_a_whole_png_and_closes_the_figure(tmp_path):
    plt = pyplot()
    assert plt.get_backend().lower() == "agg"
    for layout in (True, False):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        path = tmp_path / f"f{layout}.png"
        save_png(fig, path, dpi=50, layout=layout)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert not plt.fignum_exists(fig.number)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fFalse.png", "fTrue.png"]  # no temp
