"""Ctrl-C at step boundaries: the first SIGINT lets the running step finish, a second one aborts.

A checkpoint taken in the middle of a step would hold half-advanced state (buffers such as a VQ
codebook's usage clock, optimiser moments, BN statistics, RNG) next to a step counter that still
points at that step, so its resume would differ from an uninterrupted run. The loops therefore ask
`requested` after each whole step and save there.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from dae.train.distributed import dist_info, gather_objects


class StepBoundaryInterrupt:
    """Context manager: SIGINT sets `requested`; a second SIGINT raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StepBoundaryInterrupt:
        # Signal handlers can only be set from the main thread; elsewhere Ctrl-C aborts as usual.
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\ninterrupted: finishing this step, then saving a checkpoint "
            "(Ctrl-C again to stop now without saving)",
            file=sys.stderr,
            flush=True,
        )

    def stop_if_asked(self, save: Callable[[], None], step: int, run_dir: Any) -> None:
        """Call at a step boundary: if Ctrl-C was pressed, `save()` and raise `Interrupted`.

        Under DDP every rank agrees (any rank was asked), so all of them save and stop together.
        """
        asked = any(gather_objects(self.requested)) if dist_info().enabled else self.requested
        if asked:
            save()  # a step boundary: resuming from here is exact
            raise Interrupted(step, run_dir)


class Interrupted(KeyboardInterrupt):
    """Stopped by Ctrl-C at a step boundary, after saving; the message says how to continue."""

    def __init__(self, step: int, run_dir: Any = None):
        where = f"; checkpoint saved in {run_dir}, --resume continues" if run_dir else ""
        super().__init__(f"stopped after step {step}{where}")
