"""SIGTERM handled like Ctrl-C: the run stops where it is, is recorded ``killed``, exits 143.

A process manager (``kill``, ``docker stop``, a batch scheduler, ``timeout``) asks a process
to stop with SIGTERM, whose default action ends Python at once: the run record would stay
``running`` and the tracker's run open. The front ends that own the process (``qflow run``,
``python workflow.py``) turn the signal into :class:`Terminated`, a ``KeyboardInterrupt``, so
everything that cleans up after Ctrl-C (the driver's run record, a staged artifact's
temporary files) does so after SIGTERM too. Steps that finished are in the store, so the
next run reuses them. The library itself installs no handler: in a notebook kernel the
kernel owns the signals.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (or another terminating signal) while a run computed."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")


def exit_code(exc: KeyboardInterrupt) -> int:
    """The shell's exit code for an interruption: 143 for SIGTERM, 130 for Ctrl-C."""
    return 128 + getattr(exc, "signum", signal.SIGINT)


def describe(exc: KeyboardInterrupt) -> str:
    """How a run record and the console name the interruption."""
    return str(exc) if isinstance(exc, Terminated) else "interrupted"


def _raise(signum: int, frame: Any) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install handlers
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
