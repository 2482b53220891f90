"""Progress bars for long work: live on a terminal, one plain line now and then in a log file.

tqdm redraws a bar in place with carriage returns, several times a second. Sent to a file (a
background run's log, `nohup ... > run.log`), that makes one line of megabytes that `tail` cannot
show. So a bar that does not write to a terminal writes whole lines, at most every
`LOG_INTERVAL_S` seconds, and its last state when it closes.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import autonotebook, std
from tqdm.auto import tqdm

LOG_INTERVAL_S = 30.0


class _Lines:
    """A file for tqdm that turns each in-place redraw into one whole line."""

    def __init__(self, file: TextIO):
        self.file = file

    def write(self, s: str) -> None:
        text = s.replace("\r", "").rstrip()
        if text:
            self.file.write(text + "\n")

    def flush(self) -> None:
        self.file.flush()


class _LogBar(std.tqdm):
    """A bar whose postfix updates wait for the next timed line instead of forcing one each."""

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        super().set_postfix_str(s, refresh=False)


def progress_bar(iterable: Any = None, **kwargs: Any) -> Any:
    """`tqdm(iterable, **kwargs)`, writing sparse whole lines when its file is not a terminal."""
    file = kwargs.get("file") or sys.stderr
    is_tty = getattr(file, "isatty", lambda: False)()
    if is_tty or autonotebook.tqdm is not std.tqdm:  # a terminal or a notebook: tqdm's display
        return tqdm(iterable, **kwargs)
    interval = max(LOG_INTERVAL_S, kwargs.pop("mininterval", 0.0))
    kwargs.update(file=_Lines(file), mininterval=interval, maxinterval=interval, ascii=True)
    kwargs.pop("dynamic_ncols", None)  # no terminal to measure
    return _LogBar(iterable, **kwargs)
