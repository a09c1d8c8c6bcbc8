"""Durable, atomic publication of files and folders: write aside, fsync, rename.

Folders of new artifacts are committed by a background thread in batches: one ``syncfs``
(or an ``fsync`` per file where ``syncfs`` is missing) makes a whole batch durable before any
of its folders is renamed into place, so the cost of durability does not grow with the
number of small steps and a crash never leaves a half-written artifact under its final name.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import queue
import shutil
import threading
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make the entries of folder ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def _load_syncfs():  # type: ignore[no-untyped-def]
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _load_syncfs()


def sync_tree(root: Path, folders: list[Path]) -> None:
    """Flush every file under ``folders`` (all on ``root``'s file system) to disk."""
    if _SYNCFS is not None:
        fd = os.open(root, os.O_RDONLY)
        try:
            if _SYNCFS(fd) == 0:
                return
        finally:
            os.close(fd)
    for folder in folders:
        for dirpath, _, filenames in os.walk(folder):
            for filename in filenames:
                with open(os.path.join(dirpath, filename), "rb") as f:
                    os.fsync(f.fileno())


class Committer:
    """Renames finished temporary folders to their final names, durably, in a background thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._queue: queue.Queue[tuple[Path, Path]] = queue.Queue()
        self._pending: dict[Path, Path] = {}
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(self, tmp: Path, final: Path) -> None:
        """Queue ``tmp`` to become ``final``; returns at once."""
        with self._lock:
            self._pending[final] = tmp
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="qflow-commit", daemon=True)
                self._thread.start()
        self._queue.put((tmp, final))

    def pending(self, final: Path) -> Path | None:
        """The temporary folder that will become ``final``, if it is not committed yet."""
        return self._pending.get(final)

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._commit(batch)
            except BaseException as exc:  # reported by flush()
                self._error = exc
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _commit(self, batch: list[tuple[Path, Path]]) -> None:
        sync_tree(self.root, [tmp for tmp, _ in batch])
        parents = set()
        for tmp, final in batch:
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.exists():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # another process committed it first
            parents.add(final.parent)
            with self._lock:
                self._pending.pop(final, None)
        for parent in parents:
            fsync_dir(parent)

    def flush(self) -> None:
        """Wait until everything submitted is committed; re-raise a commit failure."""
        self._queue.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
