"""Progress bars: live on a terminal, sparse whole lines in a log file."""

from __future__ import annotations

import io

from dae.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_into_a_log_writes_whole_lines_and_its_last_state():
    log = io.StringIO()
    bar = progress_bar(range(5000), file=log, desc="train", unit="step")
    for i in bar:
        bar.set_postfix(l1=f"{1 / (i + 1):.4f}")  # a postfix update does not force a line
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    # the first draw and the last state: a fast loop never reaches the log interval in between
    assert len(lines) == 2, lines
    assert lines[0].startswith("train:   0%")
    assert "5000/5000" in lines[-1] and "l1=0.0002" in lines[-1] and text.endswith("\n")


def test_a_closed_bar_that_does_not_stay_leaves_no_blank_lines():
    log = io.StringIO()
    for _ in progress_bar(range(10), file=log, leave=False):
        pass
    assert all(line.strip() for line in log.getvalue().splitlines())


def test_a_bar_on_a_terminal_redraws_in_place():
    term = _Terminal()
    for _ in progress_bar(range(10), file=term):
        pass
    assert "\r" in term.getvalue()
