"""File checksums: the hash the store records for every file, computed as the bytes are written.

:data:`ALGORITHM` (XXH3-128, from ``xxhash``) is what new manifests record; it hashes at
memory speed, so checking an artifact costs little next to reading it. Manifests written
before it name no algorithm and were made with SHA-256: :func:`hasher` still knows it, so an
old object is verified with the algorithm it was recorded with, never trusted blindly.

A factory opens its files with :func:`written`: the bytes are hashed on their way to the file
(no second pass, no copy), and while the store is :func:`recording`, each file's size,
checksum and ``stat`` are handed to it. Files a factory writes any other way are hashed by
the store afterwards (:func:`file_digest`), so third-party factories need nothing new.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, BinaryIO

ALGORITHM = "xxh3_128"
"""The checksum new manifests record."""
LEGACY = "sha256"
"""The checksum of manifests that name none (written before :data:`ALGORITHM`)."""

Stat = tuple[int, int, int, int]
"""What identifies a file's state: ``(inode, size, mtime_ns, ctime_ns)``."""

_RECORDING: ContextVar[dict[str, tuple[int, str, Stat]] | None] = ContextVar(
    "qflow_checksum_recording", default=None)


def hasher(algorithm: str = ALGORITHM) -> Any:
    """A new hash object (``update``, ``hexdigest``) for ``algorithm``."""
    if algorithm == ALGORITHM:
        import xxhash

        return xxhash.xxh3_128()
    if algorithm == LEGACY:
        return hashlib.sha256()
    raise ValueError(f"unknown checksum algorithm {algorithm!r}")


def digest(data: Any, algorithm: str = ALGORITHM) -> str:
    """The checksum of the bytes-like ``data``."""
    if algorithm == ALGORITHM:  # in one call: a value of a few bytes is hashed per step
        import xxhash

        return str(xxhash.xxh3_128_hexdigest(data))
    h = hasher(algorithm)
    h.update(data)
    return str(h.hexdigest())


def file_digest(path: Path | str, algorithm: str = ALGORITHM) -> str:
    """The checksum of the file at ``path``, read through a memory map (no copy)."""
    h = hasher(algorithm)
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
                h.update(view)
    return str(h.hexdigest())


def stat_of(result: os.stat_result) -> Stat:
    """The :data:`Stat` of a ``stat`` result."""
    return (result.st_ino, result.st_size, result.st_mtime_ns, result.st_ctime_ns)


class _HashingFile:
    """A binary file open for writing that hashes what goes through ``write``."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._hash = hasher()
        self.size = 0

    def write(self, data: Any) -> int:
        written = self._file.write(data)
        self._hash.update(data)
        self.size += written
        return written

    def hexdigest(self) -> str:
        return str(self._hash.hexdigest())

    def __getattr__(self, name: str) -> Any:  # flush, fileno... of the real file
        if name in ("seek", "truncate"):  # would make the running hash wrong
            raise AttributeError(name)
        return getattr(self._file, name)


@contextlib.contextmanager
def written(path: Path) -> Iterator[Any]:
    """Open ``path`` for writing; its bytes are hashed as they are written.

    Only ``write`` is offered to change the file (no ``seek``): the checksum is of the bytes
    in the order they were written. While the store records, the file's size, checksum and
    ``stat`` are handed to it when the block ends.
    """
    with open(path, "wb") as f:
        out = _HashingFile(f)
        yield out
        f.flush()
        result = os.fstat(f.fileno())
    record = _RECORDING.get()
    if record is not None and result.st_size == out.size:
        record[os.path.abspath(path)] = (out.size, out.hexdigest(), stat_of(result))


@contextlib.contextmanager
def recording() -> Iterator[dict[str, tuple[int, str, Stat]]]:
    """Collect, by absolute path, what :func:`written` files report while the block runs."""
    record: dict[str, tuple[int, str, Stat]] = {}
    token = _RECORDING.set(record)
    try:
        yield record
    finally:
        _RECORDING.reset(token)
