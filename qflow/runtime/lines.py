"""Append-only files of lines written in batches: a run's ``nodes.jsonl`` and ``events.jsonl``.

A run adds two or three lines per step; writing and flushing each one cost more than the
step itself for small steps. A :class:`LineFile` queues its lines and a background thread
writes what is queued in one ``write`` at most :data:`FLUSH_INTERVAL` seconds after the
first queued line, so a reader following the file (``%qflow watch``, a test waiting for a
step) sees each line within that interval. ``flush()`` and ``close()`` write at once; the
run recorder closes its files when a run ends, whether it succeeded, failed or was stopped
(Ctrl-C, SIGTERM), and what is queued at interpreter exit is written too. Only a process
killed outright (SIGKILL, power loss) can lose lines: those of its last
:data:`FLUSH_INTERVAL` seconds.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from pathlib import Path
from typing import Any

FLUSH_INTERVAL = 0.1
"""Seconds a queued line may wait before it is written."""


class LineFile:
    """A text file that lines are appended to, in batches (see the module's docstring)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._pending: list[str] = []
        self._due = False  # the flusher will write this file
        self._lock = threading.Lock()  # one batch at a time, in order
        self._file: Any = None
        self._error: OSError | None = None  # of a batch the flusher could not write
        _OPEN.add(self)

    def write(self, line: str) -> None:
        """Queue ``line`` (with its newline); it reaches the file within the interval."""
        with self._lock:
            self._pending.append(line)
            if self._due:
                return
            self._due = True
        _FLUSHER.due(self)

    def flush(self) -> None:
        """Write what is queued now."""
        with self._lock:
            self._due = False
            if not self._pending:
                return
            text, self._pending = "".join(self._pending), []
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
            self._file.write(text)
            self._file.flush()

    def close(self) -> None:
        """Write what is queued and close the file (a later line opens it again).

        Raises the ``OSError`` of a batch the background thread could not write (a full
        disk), if any, once the file is closed.
        """
        try:
            self.flush()
        finally:
            with self._lock:
                if self._file is not None:
                    self._file.close()
                    self._file = None
                error, self._error = self._error, None
        if error is not None:
            raise error

    def _flush_later(self) -> None:
        try:
            self.flush()
        except OSError as exc:  # the run goes on; close() reports it
            self._error = exc


class _Flusher:
    """The thread that writes the queued lines of every :class:`LineFile` of this process."""

    def __init__(self) -> None:
        self._due: list[LineFile] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def due(self, lines: LineFile) -> None:
        with self._wake:
            self._due.append(lines)
            if self._thread is None or not self._thread.is_alive():  # also after a fork
                self._thread = threading.Thread(target=self._run, name="qflow-lines",
                                                daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due:
                    self._wake.wait()
            time.sleep(FLUSH_INTERVAL)  # lines queued meanwhile join this batch
            with self._wake:
                due, self._due = self._due, []
            for lines in due:
                lines._flush_later()


_FLUSHER = _Flusher()
_OPEN: weakref.WeakSet[LineFile] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for lines in list(_OPEN):
        lines._flush_later()
