"""Work a run hands to a background thread: the lines of its record files, and the sync that
makes its final record durable.

A run adds two or three lines per step to ``events.jsonl``; writing and flushing each one
would cost more than the step itself for small steps. A :class:`LineFile` queues
its lines, and the background thread writes what is queued in one ``write`` at most
:data:`FLUSH_INTERVAL` seconds after the first queued line, so a reader following the file
(``%qflow watch``, a test waiting for a step) sees each line within that interval.
``flush()`` and ``close()`` write at once; the run recorder closes its files when a run ends,
however it ends (success, failure, Ctrl-C, SIGTERM).

A run record is replaced atomically (written aside, renamed) and then made durable by
:func:`sync_soon`: the ``fsync`` of the file and of its folder — two journal commits, several
milliseconds on a busy disk — run on the background thread, so a notebook cell or a tuner's
trial does not wait for them.

The run driver writes the queued lines at once (:func:`flush_lines`) before a step computes
in its process and before it lets go of the store's lock. At interpreter exit, whatever is
still queued is done before the process ends (:func:`finish`), so ``qflow run`` and ``python
workflow.py`` end with every line written and the final record durable. Only a process
killed outright from outside (SIGKILL) or a power cut can lose lines, those of its last
:data:`FLUSH_INTERVAL` seconds; a power cut within milliseconds of a run's end can also
leave its record unreadable (then it is listed as neither finished nor running). The
artifacts are never concerned: the store syncs them before the run ends.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

FLUSH_INTERVAL = 0.1
"""Seconds a queued line may wait before it is written."""


class LineFile:
    """A text file that lines are appended to, in batches (see the module's docstring)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._pending: list[str] = []
        self._due = False  # a job of the background thread will write this file
        self._lock = threading.Lock()  # one batch at a time, in order
        self._fd: int | None = None
        self._error: OSError | None = None  # of a batch the background thread could not write

    def write(self, line: str) -> None:
        """Queue ``line`` (with its newline); it reaches the file within the interval."""
        with self._lock:
            if not self._pending:
                _QUEUED[self] = None
            self._pending.append(line)
            if self._due:
                return
            self._due = True
        _WORKER.later(self._flush_later)

    def flush(self) -> None:
        """Write what is queued now."""
        with self._lock:
            _QUEUED.pop(self, None)
            if not self._pending:
                return
            data, self._pending = "".join(self._pending).encode(), []
            if self._fd is None:
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
                try:
                    self._fd = os.open(self.path, flags, 0o644)
                except FileNotFoundError:  # its folder is made only when missing
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._fd = os.open(self.path, flags, 0o644)
            view = memoryview(data)
            while view:  # one write, unless the disk is full or a signal cut it short
                view = view[os.write(self._fd, view):]

    def close(self) -> None:
        """Write what is queued and close the file (a later line opens it again).

        Raises the ``OSError`` of a batch the background thread could not write (a full
        disk), if any, once the file is closed.
        """
        try:
            self.flush()
        finally:
            with self._lock:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                error, self._error = self._error, None
        if error is not None:
            raise error

    def _flush_later(self) -> None:
        with self._lock:
            self._due = False
        self._flush_reporting()

    def _flush_reporting(self) -> None:
        try:
            self.flush()
        except OSError as exc:  # the run goes on; close() reports it
            self._error = exc


class Deferred:
    """A write done when first needed: by :func:`flush_lines` (so before a step computes and
    before the run driver lets go of the store's lock), else on the background thread within
    :data:`FLUSH_INTERVAL` seconds, else when the interpreter exits; or never, if
    :meth:`cancel` comes first (a later write makes it pointless). The run recorder writes the
    record a run starts with this way: a fully cached run that ends sooner writes one record."""

    def __init__(self, write: Callable[[], None]) -> None:
        self._write: Callable[[], None] | None = write
        self._lock = threading.Lock()  # held while writing: cancel() waits for a write begun
        _QUEUED[self] = None
        _WORKER.later(self._flush_reporting)

    def _flush_reporting(self) -> None:
        with self._lock:
            if self._write is None:
                return
            try:
                self._write()
            except OSError:  # given up, as a record that cannot be synced
                pass
            except Exception:  # noqa: BLE001 - raced with what it writes changing (the
                return  # background thread): the next flush_lines() writes it
            _QUEUED.pop(self, None)
            self._write = None

    def cancel(self) -> None:
        """Drop the write if it has not been done (once a write has begun, wait for it)."""
        with self._lock:
            _QUEUED.pop(self, None)
            self._write = None


def flush_lines() -> None:
    """Write the queued lines of every line file of this process now, and the deferred writes
    (in the order they were queued): the run driver does before a step computes, and before
    it lets go of the store's lock (the lines name the keys a run took from the store). A file
    that cannot be written reports it when closed."""
    for lines in list(_QUEUED):
        lines._flush_reporting()


def sync_soon(path: Path) -> None:
    """Make the file ``path`` and its entry in its folder durable, on the background thread
    (at the latest when the interpreter exits)."""
    _WORKER.later(lambda: _sync(path))


def _sync(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def finish() -> None:
    """Do every queued piece of work now (also done when the interpreter exits)."""
    _WORKER.drain()


class _Worker:
    """The thread that does this process's queued work, each piece within the interval."""

    def __init__(self) -> None:
        self._jobs: list[Callable[[], None]] = []
        self._wake = threading.Condition()
        self._busy = threading.Lock()  # held while a batch of jobs runs
        self._thread: threading.Thread | None = None

    def later(self, job: Callable[[], None]) -> None:
        with self._wake:
            self._jobs.append(job)
            if self._thread is None or not self._thread.is_alive():  # also after a fork
                self._thread = threading.Thread(target=self._run, name="qflow-background",
                                                daemon=True)
                self._thread.start()
            self._wake.notify()

    def drain(self) -> None:
        with self._busy:  # after the batch in progress, if any
            with self._wake:
                jobs, self._jobs = self._jobs, []
            for job in jobs:
                with contextlib.suppress(OSError):  # a record that cannot be synced: history
                    job()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._jobs:
                    self._wake.wait()
            time.sleep(FLUSH_INTERVAL)  # work queued meanwhile joins this batch
            self.drain()


_WORKER = _Worker()
_QUEUED: dict[LineFile | Deferred, None] = {}  # line files with lines waiting, deferred writes
atexit.register(finish)
