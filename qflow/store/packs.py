"""Packs: the store's small objects, appended to one file per writer and found through one index.

A step whose result is small (a number, a short list, a dict of metrics) would cost a new
file of its own, and often a new folder: creating them costs more than most such steps
compute, and a store of many small files is slow to list, copy and back up. So objects of
at most :data:`PACK_MAX` bytes are appended to packs instead (git does the same):

- ``packs/<writer>.pack`` — the records one :class:`Packs` (one open store, in one process)
  appended, and only it: each record is the object's manifest as one JSON line, then its
  payload, exactly what a ``.blob`` file holds.
- ``packs/index`` — one line per record, appended by every writer in one ``write``:
  ``<key> <writer> <offset> <length>``. A line ``<key> - 0 0`` withdraws the key (removed
  or quarantined); it may then be written again. The first line of a key wins, as for loose
  objects the first publisher does: what a key names never changes while it is stored.

Crash safety. A record is written before its index line, so a writer killed between the two
leaves a record no line names (space that :meth:`Packs.compact` reclaims), and a reader never
sees a line before its record. A power cut before the store's sync may lose the tail of
either file or leave a torn line: lines that do not parse are skipped, and a record is
checked against its manifest's size and checksum whenever it is read, so an object that did
not reach the disk reads as damaged and is recomputed, never trusted.

Readers keep the index in memory and read only what was appended since (one ``stat`` when a
key is not known). :meth:`Packs.compact` (``qflow cache gc``) rewrites the records that are
still named, from the packs of writers that have ended, into one new pack, and replaces the
index atomically; writers append records and index lines holding ``packs/lock`` shared
(having taken in the index's new lines, so a key another writer named first is not written
again), compaction holds it exclusively, so no line is lost. A reader that finds its index
replaced, or a pack gone, reads the index again.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

from qflow.store.atomic import HOST, atomic_write_bytes, file_lock, process_alive

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

PACK_MAX = 64 * 1024
"""Objects (manifest line and payload) of at most this many bytes are packed."""
INDEX = "index"
_LINE = re.compile(r"^\0*([0-9a-f]{8,}) ([A-Za-z0-9_.-]+) ([0-9]+) ([0-9]+)\0*$", re.MULTILINE)
"""An index line (a power cut may leave zeros around it); any other line is skipped."""
_WITHDRAWN = "-"

Entry = tuple[str, int, int]
"""Where a packed object is: ``(writer, offset, length)``."""


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written < len(data):  # a signal or a full disk cut it short
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view):]


class Packs:
    """The packs of the store at ``root`` (see the module's docstring). This instance's own
    pack is created on its first :meth:`append`, named ``<pid>-<host>-<random>`` (a forked
    process starts a pack of its own)."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "packs"
        self._index_path = str(self.folder / INDEX)
        self._entries: dict[str, Entry] = {}
        self._inode = -1  # of the index file read so far
        self._offset = 0  # bytes of it read
        self._pid = -1  # the process that opened this writer's files
        self.writer = ""
        self._pack_fd: int | None = None
        self._index_fd: int | None = None
        self._index_ino = -1  # of the index file _index_fd has open
        self._lock_fd: int | None = None

    def close(self) -> None:
        """Close this writer's files (a later append opens them again)."""
        if self._pid == os.getpid():
            for fd in (self._pack_fd, self._index_fd, self._lock_fd):
                if fd is not None:
                    os.close(fd)
        self._pack_fd = self._index_fd = self._lock_fd = None
        self._index_ino = -1

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def pack_path(self, writer: str) -> Path:
        """The pack file of ``writer``."""
        return self.folder / f"{writer}.pack"

    # -- reading the index --------------------------------------------------------------------
    def refresh(self) -> None:
        """Take in the index lines appended since the last look (all of them if the index
        was replaced)."""
        self._take_in(_stat(self._index_path))

    def _take_in(self, stat: os.stat_result | None) -> None:
        """Take in what the index whose ``stat`` this is holds beyond what was read."""
        if stat is None:
            self._entries.clear()
            self._inode, self._offset = -1, 0
            return
        if stat.st_ino != self._inode:
            self._entries.clear()
            self._inode, self._offset = stat.st_ino, 0
        if stat.st_size <= self._offset:
            return
        try:
            with open(self._index_path, "rb") as f:
                f.seek(self._offset)
                data = f.read(stat.st_size - self._offset)
        except FileNotFoundError:  # replaced meanwhile: the next look reads the new one
            self._inode = -1
            return
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._offset += end
        self._apply(data[:end])

    def _apply(self, data: bytes) -> None:
        entries = self._entries
        for key, writer, offset, length in _LINE.findall(data.decode("latin-1")):
            if writer == _WITHDRAWN:
                entries.pop(key, None)
            elif key not in entries:
                entries[key] = (writer, int(offset), int(length))

    def find(self, key: str, *, fresh: bool = False) -> Entry | None:
        """Where ``key`` is packed, or ``None``; ``fresh`` takes in the index's new lines
        first (a key another process withdrew is then gone), else only when ``key`` is not
        known."""
        entry = None if fresh else self._entries.get(key)
        if entry is None:
            self.refresh()
            entry = self._entries.get(key)
        return entry

    def keys(self) -> list[str]:
        """Every packed key."""
        self.refresh()
        return list(self._entries)

    def read(self, key: str) -> bytes | None:
        """The record of ``key`` (manifest line and payload), or ``None`` if not packed. A
        short read is returned as is: the caller checks the record against its manifest."""
        for _ in range(2):
            entry = self.find(key)
            if entry is None:
                return None
            writer, offset, length = entry
            try:
                fd = os.open(self.pack_path(writer), os.O_RDONLY)
            except FileNotFoundError:  # compacted since: its new place is in the new index
                self._entries.pop(key, None)
                self._inode = -1
                continue
            try:
                return os.pread(fd, length, offset)
            finally:
                os.close(fd)
        return None

    # -- writing ------------------------------------------------------------------------------
    def append(self, key: str, record: bytes) -> None:
        """Append ``record`` for ``key`` to this writer's pack and name it in the index,
        unless the index names ``key`` already (the first publisher wins). Both are written
        holding the packs' lock shared, so compaction, which replaces the index, loses no
        line; holding it, the index's new lines are taken in first."""
        if self._pid != os.getpid():  # the first append, or a forked process's
            self._pack_fd = self._index_fd = self._lock_fd = None
            self._pid = os.getpid()
            self.writer = f"{self._pid}-{HOST}-{uuid.uuid4().hex[:12]}"
        lock = self._locked()
        try:
            stat = _stat(self._index_path)
            self._take_in(stat)
            if key in self._entries:
                return
            if self._pack_fd is None:
                self._pack_fd = os.open(self.pack_path(self.writer),
                                        os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            _write_all(self._pack_fd, record)  # a part may stay (a full disk): no line names it
            offset = os.lseek(self._pack_fd, 0, os.SEEK_CUR) - len(record)
            self._append_line(f"{key} {self.writer} {offset} {len(record)}\n", stat)
            self._entries[key] = (self.writer, offset, len(record))
        finally:
            _flock(lock, release=True)

    def withdraw(self, key: str) -> bool:
        """Withdraw ``key`` (its record stays until compacted); ``False`` if not packed."""
        if self.find(key) is None:
            return False
        lock = self._locked()
        try:
            self._append_line(f"{key} {_WITHDRAWN} 0 0\n", _stat(self._index_path))
        finally:
            _flock(lock, release=True)
        self._entries.pop(key, None)
        return True

    def _locked(self) -> int:
        """Take the packs' lock shared (compaction takes it exclusively); its file."""
        if self._lock_fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        _flock(self._lock_fd)
        return self._lock_fd

    def _append_line(self, line: str, stat: os.stat_result | None) -> None:
        """Append ``line`` to the index, whose ``stat`` was just taken holding the packs'
        lock (a new index, written by compaction, is opened)."""
        if self._index_fd is not None and self._index_ino != (stat.st_ino if stat else -1):
            os.close(self._index_fd)  # replaced by compaction: append to the new one
            self._index_fd = None
        if self._index_fd is None:
            self._index_fd = os.open(self._index_path,
                                     os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._index_ino = os.fstat(self._index_fd).st_ino
        data = line.encode()
        _write_all(self._index_fd, data)
        end = os.lseek(self._index_fd, 0, os.SEEK_CUR)
        if end - len(data) == self._offset and self._inode == self._index_ino:
            self._offset = end  # nobody appended since the last read: nothing new to read

    def files(self) -> list[Path]:
        """What :meth:`append` wrote to: this writer's pack and the index (for the sync)."""
        return [self.pack_path(self.writer), Path(self._index_path)]

    # -- compaction ---------------------------------------------------------------------------
    def compact(self) -> int:
        """Rewrite the named records of ended writers' packs into one new pack and replace the
        index with one line per stored key; remove the packs left unnamed. Returns the bytes
        freed. Records are copied as they are (a damaged one stays damaged, and is found
        damaged when read). Packs of writers still running are left as they are."""
        if not self.folder.is_dir():
            return 0
        with file_lock(self.folder / "lock"):
            self._inode = -1
            self.refresh()
            packs = {p.stem: p for p in self.folder.glob("*.pack")}
            ended = {w for w in packs if w != self.writer and not _running(w)}
            before = sum(packs[w].stat().st_size for w in ended)
            writer = f"{os.getpid()}-{HOST}-{uuid.uuid4().hex[:12]}"
            moved: dict[str, Entry] = {}
            path = self.pack_path(writer)
            tmp = path.with_name(f".{path.name}.tmp")
            with open(tmp, "wb") as out:
                offset = 0
                for key, (owner, at, length) in sorted(self._entries.items(),
                                                       key=lambda e: e[1]):
                    if owner not in ended:
                        continue
                    with open(packs[owner], "rb") as f:
                        f.seek(at)
                        out.write(f.read(length))
                    moved[key] = (writer, offset, length)
                    offset += length
                out.flush()
                os.fsync(out.fileno())
            if moved:
                os.replace(tmp, path)
            else:
                tmp.unlink()
            entries = {**self._entries, **moved}
            atomic_write_bytes(Path(self._index_path), "".join(
                f"{k} {w} {o} {n}\n" for k, (w, o, n) in entries.items()).encode())
            for owner in ended:
                packs[owner].unlink(missing_ok=True)
            self._inode = -1
            self.refresh()
        return before - (offset if moved else 0)

    def pack_bytes(self) -> Iterator[tuple[str, int]]:
        """``(writer, size)`` of every pack file."""
        for path in self.folder.glob("*.pack"):
            with contextlib.suppress(FileNotFoundError):
                yield path.stem, path.stat().st_size


def _flock(fd: int, *, release: bool = False) -> None:
    """Hold the lock of the open file ``fd`` shared, or let go of it (``release``); nothing
    where ``fcntl`` is missing."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN if release else fcntl.LOCK_SH)


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _running(writer: str) -> bool:
    """Whether the process that writes the pack ``writer`` (``<pid>-<host>-...``) may still
    be running: its pid is alive on this machine, or it ran on another machine."""
    pid, _, rest = writer.partition("-")
    if not pid.isdigit():
        return False
    if not rest.startswith(f"{HOST}-"):
        return True  # another machine's writer (a shared folder): never touched
    return process_alive(int(pid))
