"""Atomic publication of files and folders (write aside, rename) and durability (sync).

An artifact's folder is written under a temporary name and renamed into place when complete,
so a killed process never leaves a half-written artifact under its final name. Making the
bytes durable against power loss is done once per run, not once per step: one ``syncfs`` of
the store's file system (or an ``fsync`` per file where ``syncfs`` is missing) when the run
ends. Artifacts are verified against their checksums when loaded, so one damaged by a power
cut before that sync is detected and recomputed, never trusted.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"
"""This machine's name as it appears in the names of files a process owns (``<pid>-<host>-...``)."""


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (owners of temporary files, runs)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_dir(path: Path) -> None:
    """Make the entries of folder ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new content, never a mix.

    With ``sync`` the new content is durable when this returns; without, a power cut may lose
    it (for documents that only save work, such as caches of what is known).
    """
    tmp = path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        try:
            f = open(tmp, "wb")
        except FileNotFoundError:  # its folder is made only when missing (one call less)
            path.parent.mkdir(parents=True, exist_ok=True)
            f = open(tmp, "wb")
        with f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync:
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
    """Flush ``folders`` and files (all on ``root``'s file system) and their entries to disk."""
    if _SYNCFS is not None:
        fd = os.open(root, os.O_RDONLY)
        try:
            if _SYNCFS(fd) == 0:
                return
        finally:
            os.close(fd)
    for folder in folders:
        if folder.is_file():
            with open(folder, "rb") as f:
                os.fsync(f.fileno())
            continue
        for dirpath, _, filenames in os.walk(folder):
            for filename in filenames:
                with open(os.path.join(dirpath, filename), "rb") as f:
                    os.fsync(f.fileno())
            fsync_dir(Path(dirpath))
    for parent in {f.parent for f in folders}:
        fsync_dir(parent)


def publish(tmp: Path, final: Path, *, folder: bool | None = None) -> bool:
    """Rename the finished file or folder ``tmp`` to ``final``; ``False`` if another was first.

    Readers see the whole object or nothing: a killed process leaves only ``tmp`` behind.
    Concurrency contract: when several processes publish the same key, the first one wins and
    the object under ``final`` never changes afterwards (a reader that opens it twice, for the
    manifest and then the payload, reads one writer's bytes). A folder cannot be renamed onto
    a full one; a file is hard-linked, which fails if ``final`` exists, where ``rename`` would
    silently replace it. ``folder`` says what ``tmp`` is when the caller knows; the parent
    folder of ``final`` is created when missing.
    """
    if folder is None:
        folder = tmp.is_dir()
    try:
        return _publish(tmp, final, folder)
    except FileNotFoundError:
        if not os.path.lexists(tmp):
            raise
        # the parent was missing (another writer may have made it since): make sure, retry
        final.parent.mkdir(parents=True, exist_ok=True)
        return _publish(tmp, final, folder)


def _publish(tmp: Path, final: Path, folder: bool) -> bool:
    if not folder:
        try:
            os.link(tmp, final)
        except FileExistsError:
            os.unlink(tmp)  # the same content, committed by someone else
            return False
        except FileNotFoundError:
            raise
        except OSError:  # a file system without hard links: rename, last writer wins
            os.replace(tmp, final)
            return True
        os.unlink(tmp)
        return True
    try:
        os.rename(tmp, final)
    except FileNotFoundError:
        raise
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # the same content, committed by someone else
        return False
    return True


@contextlib.contextmanager
def file_lock(path: Path, *, shared: bool = False, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive (or ``shared``) lock on ``path`` (created if missing) while the block
    runs; shared holders exclude an exclusive one, not each other.

    An OS lock (``flock``): the kernel releases it when the holder dies, so no lock is ever
    stale. Yields whether the lock is held: always ``True`` when ``wait`` (the default) blocks
    until it is free; ``False`` when ``wait=False`` and another process holds it (the block
    then runs unlocked and should do nothing guarded). Where ``fcntl`` is missing (Windows)
    the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield True
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
                        | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock
