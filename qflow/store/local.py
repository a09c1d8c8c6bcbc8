"""The local artifact store: every node's outputs under its cache key, checksummed.

Three shapes of object:

- a *packed* blob — a single output whose factory serialises in memory (JSON, bytes,
  pydantic, pickle) to at most ``PACK_MAX`` bytes, manifest included: a JSON manifest line,
  then the payload, appended to this store's pack and named in the packs' index
  (:mod:`qflow.store.packs`). No file to create per step: a small step's result costs two
  appends.
- ``objects/<k[:2]>/<key>.blob`` — the same record, larger, as one file published by an
  atomic rename (also what :meth:`Store.stage` writes for a remote store's upload).
- ``objects/<k[:2]>/<key>/`` — a folder: the files the factories wrote (``out0/``, ``out1/``...
  for several outputs) and ``manifest.json``, written last, published by an atomic rename.

Checksums. A manifest records every file's size and checksum, and the algorithm (``hash``):
XXH3-128 for new objects, hashed while the bytes are written (no second pass over the data,
no copy; :mod:`qflow.artifacts.checksum`). A manifest without ``hash`` predates it and holds
SHA-256 checksums, which are still verified with SHA-256: a new algorithm invalidates nothing
silently. Whether a key is cached is a ``stat`` or two: nothing is read or hashed until a
value is needed.

Verification on load. A blob's payload is always hashed (it is read whole anyway). A folder's
files are checked for size, and hashed unless a *stamp* vouches for them: once a file of at
least ``STAMP_MIN`` bytes is known good and durable — written and hashed by this store and
then synced by :meth:`Store.flush`, or verified in full and then ``fsync``-ed — its
``(inode, size, mtime_ns, ctime_ns)`` is recorded in ``stamps/<k[:2]>/<key>.json``. A file
whose ``stat`` still matches its stamp has not been written, truncated, replaced or moved
since (any of these changes its ``ctime``, which no user can set back), so it is not read
again; one that differs is hashed in full, and a mismatch moves the object to
``quarantine/`` and raises :class:`~qflow.errors.IntegrityError`, so the caller recomputes.
A power cut before the sync leaves no stamp, so such files are hashed when next loaded. A
stamp does not see a change made below the file system (a failing disk); ``verify(key,
full=True)`` ignores stamps and hashes everything. Small files are always hashed.

Objects are written aside (:meth:`Store.stage`) and published under their key
(:meth:`Store.commit`); the remote store uses these steps to upload an object before the local
copy becomes visible, and :meth:`Store.adopt` to publish a downloaded one once it is checked.
A run's scratch store (``scratch/<run_id>/``) holds values that are not cached.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qflow.artifacts.base import BlobFactory
from qflow.artifacts.checksum import (
    ALGORITHM,
    LEGACY,
    Stat,
    digest,
    file_digest,
    recording,
    stat_of,
)
from qflow.artifacts.registry import FactoryRegistry, default_registry
from qflow.errors import FactoryError, IntegrityError, StoreError
from qflow.jsontext import compact
from qflow.store.atomic import (
    HOST,
    atomic_write_bytes,
    file_lock,
    process_alive,
    publish,
    sync_tree,
)
from qflow.store.packs import PACK_MAX, Packs

MANIFEST = "manifest.json"
BLOB = ".blob"
STAMP_MIN = 1 << 20
"""Files from this size on are vouched for by a stamp; smaller ones are always hashed."""
FORMAT = 1
_RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_KEY = re.compile(r"[0-9a-f]{8,}")


Stats = dict[str, Stat]
"""The :data:`~qflow.artifacts.checksum.Stat` of an object's files, by relative path."""


def _checksums(folder: str, prefix: str, recorded: dict[str, Any], stats: Stats) -> Any:
    """``(relative path, [size, checksum])`` for every file under ``folder``: as the factory's
    :func:`~qflow.artifacts.checksum.written` reported it, else hashed now. The ``stat`` of
    each file of at least ``STAMP_MIN`` bytes goes to ``stats``."""
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            yield from _checksums(entry.path, f"{prefix}{entry.name}/", recorded, stats)
            continue
        stat = stat_of(entry.stat(follow_symlinks=False))
        known = recorded.get(os.path.abspath(entry.path))
        checksum = known[1] if known is not None and known[2] == stat else file_digest(entry.path)
        if stat[1] >= STAMP_MIN:
            stats[f"{prefix}{entry.name}"] = stat
        yield f"{prefix}{entry.name}", [stat[1], checksum]


def _read_blob_file(path: Path) -> tuple[dict[str, Any], bytes]:
    """The manifest line and the payload of the blob file ``path``."""
    with open(path, "rb") as f:
        header = f.readline()
        return json.loads(header), f.read()


def _algorithm(manifest: dict[str, Any]) -> str:
    """The checksum algorithm of ``manifest`` (SHA-256 for manifests older than the field)."""
    return str(manifest.get("hash", LEGACY))


def _blob_problem(data: bytes, manifest: dict[str, Any]) -> str | None:
    """What is wrong with a blob's payload ``data``, or ``None`` when it matches its manifest."""
    size, checksum = manifest["files"][BLOB]
    if len(data) != size:
        return f"blob has {len(data)} bytes, {size} were written"
    algorithm = _algorithm(manifest)
    if digest(data, algorithm) != checksum:
        return f"blob does not match its {algorithm} checksum"
    return None


def _folder_problem(base: Path, manifest: dict[str, Any], stamp: dict[str, Any] | None = None,
                    verified: Stats | None = None) -> str | None:
    """What is wrong with the files of the folder object at ``base``, or ``None``.

    Checks every file's size, and its checksum unless ``stamp`` (a stamp file's content)
    vouches for it; the ``stat`` of each file of at least ``STAMP_MIN`` bytes that was hashed
    and matched goes to ``verified``.
    """
    algorithm = _algorithm(manifest)
    stamped = stamp["files"] if stamp else {}
    for rel, (size, checksum) in manifest["files"].items():
        path = base / rel
        try:
            result = os.stat(path)
        except FileNotFoundError:
            return f"file {rel} is missing"
        if result.st_size != size:
            return f"file {rel} has {result.st_size} bytes, {size} were written"
        stat = stat_of(result)
        if stamp and result.st_dev == stamp["dev"] and stamped.get(rel) == list(stat):
            continue
        if file_digest(path, algorithm) != checksum:
            return f"file {rel} does not match its {algorithm} checksum"
        if verified is not None and size >= STAMP_MIN:
            verified[rel] = stat
    return None


def _file_size_limit() -> int | None:
    """This process's file-size limit in bytes (``ulimit -f``), or ``None`` when unlimited."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def write_error(exc: OSError, root: Path) -> StoreError:
    """A :class:`StoreError` saying why writing to the store at ``root`` failed, with a fix.

    Disk full, quota and file-size limit are named as such; a writer that reports a short
    write without an ``errno`` (``numpy.save``) is matched against the limit and free space.
    """
    fix = "nothing partial was kept, and the next run reuses the steps that finished."
    detail = f"{type(exc).__name__}: {exc}"
    limit = _file_size_limit()
    try:
        free: int | None = shutil.disk_usage(root).free
    except OSError:
        free = None
    code = exc.errno
    if code is None:
        if limit is not None:
            code = errno.EFBIG
        elif free is not None and free < 64 * 1024 * 1024:
            code = errno.ENOSPC
    if code == errno.EFBIG and limit is not None:
        return StoreError(f"writing to the store {root} hit the file-size limit (ulimit -f is "
                          f"{limit} bytes) ({detail})",
                          hint=f"Raise the limit (`ulimit -f unlimited`) or make the output "
                               f"smaller; {fix}")
    if code == errno.EFBIG:
        return StoreError(f"writing to the store {root} hit the largest file size its file "
                          f"system allows ({detail})",
                          hint=f"Point `paths.store` at another file system or make the output "
                               f"smaller; {fix}")
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        what = "disk quota is exhausted" if code != errno.ENOSPC else "disk is full"
        left = f", {free // (1024 * 1024)} MiB free" if free is not None else ""
        return StoreError(f"the {what} on the store {root}{left} ({detail})",
                          hint="Free some space (or point `paths.store` at a bigger disk) and "
                               f"run again; {fix}")
    return StoreError(f"writing to the store {root} failed ({detail})",
                      hint=f"Check the store's folder and disk; {fix}")


def check_run_id(run_id: str) -> str:
    """``run_id`` when it can name a scratch folder (no separators, no leading dot)."""
    if not _RUN_ID.fullmatch(run_id):
        raise StoreError(f"Invalid run id {run_id!r} for a scratch store.",
                         hint="Use letters, digits, '.', '_' and '-' only.")
    return run_id


class Store:
    """Artifacts on a local disk, addressed by cache key.

    ``read_only`` opens the store without creating or cleaning anything (``qflow plan``):
    whatever would write raises :class:`StoreError`.
    """

    def __init__(self, root: Path | str, registry: FactoryRegistry | None = None, *,
                 read_only: bool = False) -> None:
        self.root = Path(root)
        self.read_only = read_only
        self.registry = registry or default_registry
        self._objects = self.root / "objects"
        self._objects_str = str(self._objects)
        self._stamps = str(self.root / "stamps")
        self._tmp = self.root / "tmp"
        self._tmp_str = str(self._tmp)
        self._verified: set[str] = set()
        self._unsynced: list[Path] = []
        # staged object -> the stat of its large files (a folder), or None (a blob)
        self._staged: dict[Path, Stats | None] = {}
        self._stamp_later: dict[str, tuple[Stats, bool]] = {}  # key -> (stats, needs fsync)
        self._tmp_prefix = f"{os.getpid()}-{HOST}-{uuid.uuid4().hex[:12]}-"
        self._counter = itertools.count()
        self._packs = Packs(self.root)
        self._packed = False  # appended to the pack since the last flush
        self._loose = False  # the folder of loose objects was seen
        self._holding = 0  # how many holds of the store's lock this store is in
        if read_only:
            return
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the artifact store at {self.root}: {exc}.") from exc
        self._clean_tmp()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def _clean_tmp(self) -> None:
        """Remove what processes of this machine that died mid-write left in ``tmp/``."""
        for entry in os.scandir(self._tmp):
            pid, _, rest = entry.name.partition("-")
            if rest.startswith(f"{HOST}-") and pid.isdigit() and not process_alive(int(pid)):
                # another process may be cleaning the same leftovers at the same time
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    Path(entry.path).unlink(missing_ok=True)

    def _base(self, key: str) -> str:
        """Where the folder object ``key`` lives, as text (checked: keys are hex digests)."""
        if not _KEY.fullmatch(key):
            raise StoreError(f"Invalid artifact key {key!r}.")
        return f"{self._objects_str}/{key[:2]}/{key}"

    def path(self, key: str) -> Path:
        """Where the folder object ``key`` lives (a blob object adds ``.blob``)."""
        return Path(self._base(key))

    def _blob(self, key: str) -> Path:
        return Path(self._base(key) + BLOB)

    def has(self, key: str) -> bool:
        """Whether ``key`` is stored; no data is read."""
        if self._packs.find(key, fresh=not self._holding) is not None:
            return True  # (the packs' index holds valid keys only)
        base = self._base(key)
        if not self._loose:  # no loose object yet: one look at their folder until there is
            if not os.path.isdir(self._objects_str):
                return False
            self._loose = True  # (the folder is never removed)
        return os.path.exists(base + BLOB) or os.path.exists(f"{base}/{MANIFEST}")

    def _writable(self, doing: str) -> None:
        if self.read_only:
            raise StoreError(f"Cannot {doing} the store {self.root}: it was opened read-only.")

    # -- what the store holds (``qflow cache``) -----------------------------------------------
    def keys(self) -> Iterator[str]:
        """Every key stored, in no particular order; only committed objects are seen (never
        what is being written in ``tmp/``, nor ``scratch/`` and ``quarantine/``)."""
        packed = self._packs.keys()
        yield from packed
        try:
            shards = sorted(e.path for e in os.scandir(self._objects) if e.is_dir())
        except FileNotFoundError:
            return
        packed = set(packed)  # a key stored both ways (a download, then a save) is listed once
        for shard in shards:
            try:
                entries = list(os.scandir(shard))
            except FileNotFoundError:  # removed meanwhile
                continue
            for entry in entries:
                if entry.name in packed or entry.name[:-len(BLOB)] in packed:
                    continue
                if entry.name.endswith(BLOB):
                    yield entry.name[:-len(BLOB)]
                elif entry.is_dir() and os.path.exists(os.path.join(entry.path, MANIFEST)):
                    yield entry.name

    def size(self, key: str) -> int:
        """Bytes the object ``key`` takes on disk (its files and manifest)."""
        entry = self._packs.find(key)
        if entry is not None:
            return entry[2]
        try:
            return self._blob(key).stat().st_size
        except FileNotFoundError:
            pass
        total = 0
        for dirpath, _, filenames in os.walk(self.path(key)):
            for name in filenames:
                with contextlib.suppress(FileNotFoundError):
                    total += os.stat(os.path.join(dirpath, name)).st_size
        return total

    def remove(self, key: str) -> bool:
        """Delete the object ``key``; ``False`` if it was not there. It is withdrawn at once
        (renamed aside in one step), so readers see it whole or not at all."""
        self._writable("remove an object from")
        self._verified.discard(key)
        self._stamp_later.pop(key, None)
        self._stamp_path(key).unlink(missing_ok=True)
        packed = self._packs.withdraw(key)  # and any copy stored the other ways
        try:
            self._blob(key).unlink()
            return True
        except FileNotFoundError:
            pass
        aside = self.new_tmp()
        try:
            os.rename(self.path(key), aside)
        except FileNotFoundError:
            return packed
        shutil.rmtree(aside, ignore_errors=True)
        return True

    def compact(self) -> int:
        """Reclaim the space of removed packed objects (:meth:`Packs.compact
        <qflow.store.packs.Packs.compact>`); returns the bytes freed."""
        self._writable("compact")
        return self._packs.compact()

    @contextlib.contextmanager
    def lock(self, *, shared: bool = False) -> Iterator[None]:
        """The store's lock (the file ``lock`` in its folder). ``qflow cache gc`` holds it
        exclusively while it chooses and removes objects; a run holds it shared from finding
        a key in the store until its record names that key, so gc never removes an object
        that a run in flight uses.

        While it is held, :meth:`has` trusts the packs' index as read when it was taken: only
        gc withdraws keys that are sound (an object another process found damaged and
        withdrew is found damaged again when read, and recomputed)."""
        with file_lock(self.root / "lock", shared=shared):
            self._packs.refresh()
            self._holding += 1
            try:
                yield
            finally:
                self._holding -= 1

    # -- writing ------------------------------------------------------------------------------
    def new_tmp(self) -> Path:
        """A fresh path in ``tmp/`` owned by this process (removed if the process dies)."""
        self._writable("write to")
        return Path(f"{self._tmp_str}/{self._tmp_prefix}{next(self._counter)}")

    def save(self, key: str, outputs: list[tuple[Any, Any]], meta: dict[str, Any]) -> dict[str, Any]:
        """Store ``outputs`` (value, declared factory or None) under ``key``, atomically: a
        single value serialised in memory to at most ``PACK_MAX`` bytes is appended to this
        store's pack (:mod:`qflow.store.packs`), anything else is staged and committed.

        A failed write (disk full, file-size limit) raises :class:`StoreError` and leaves
        nothing behind, neither under the key nor in ``tmp/``.
        """
        chosen = self._choose(key, outputs)
        blob = None
        if len(outputs) == 1 and isinstance(chosen[0], BlobFactory):
            self._writable("write to")
            blob = self._blob_record(key, chosen[0], outputs[0][0], meta)
            if len(blob[1]) <= PACK_MAX:
                self._pack(key, blob[1])
                return blob[0]
        manifest, tmp = self._stage(key, chosen, outputs, meta, blob)
        self.commit(key, tmp)
        return manifest

    def _pack(self, key: str, record: bytes) -> None:
        """Append the blob ``record`` of ``key`` to this store's pack, unless ``key`` is packed
        already (the first publisher wins)."""
        try:
            self._packs.append(key, record)
        except OSError as exc:
            raise write_error(exc, self.root) from exc
        self._packed = True
        self._verified.add(key)

    def _choose(self, key: str, outputs: list[tuple[Any, Any]]) -> list[Any]:
        """The factory of each output (the key is checked before any factory runs)."""
        self._base(key)
        return [self.registry.choose(declared, value) for value, declared in outputs]

    def stage(self, key: str, outputs: list[tuple[Any, Any]],
              meta: dict[str, Any]) -> tuple[dict[str, Any], Path]:
        """Write the object for ``key`` aside: its manifest and the blob file or folder in ``tmp/``."""
        return self._stage(key, self._choose(key, outputs), outputs, meta)

    def _stage(self, key: str, chosen: list[Any], outputs: list[tuple[Any, Any]],
               meta: dict[str, Any], blob: tuple[dict[str, Any], bytes] | None = None
               ) -> tuple[dict[str, Any], Path]:
        tmp = self.new_tmp()
        try:
            if len(outputs) == 1 and isinstance(chosen[0], BlobFactory):
                manifest, record = blob or self._blob_record(key, chosen[0], outputs[0][0], meta)
                with open(tmp, "wb") as f:
                    f.write(record)
                self._staged[tmp] = None
            else:
                manifest = self._write_folder(tmp, key, chosen, outputs, meta)
        except OSError as exc:
            self.discard(tmp)
            raise write_error(exc, self.root) from exc
        except BaseException:
            self.discard(tmp)
            raise
        return manifest, tmp

    def discard(self, tmp: Path) -> None:
        """Delete an object staged at ``tmp`` that will not be committed."""
        self._staged.pop(tmp, None)
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)

    def commit(self, key: str, tmp: Path) -> None:
        """Publish the object staged at ``tmp`` (a blob file or a folder) under ``key``."""
        base = self._base(key)
        if tmp in self._staged:
            stats = self._staged[tmp]
            is_folder = stats is not None
        else:
            stats, is_folder = None, tmp.is_dir()
        final = Path(base if is_folder else base + BLOB)
        try:
            won = publish(tmp, final, folder=is_folder)
        except OSError as exc:
            self.discard(tmp)
            raise write_error(exc, self.root) from exc
        self._staged.pop(tmp, None)
        if won and stats:  # stamped once the sync has made them durable
            self._stamp_later[key] = (stats, False)
        self._unsynced.append(final)
        self._verified.add(key)

    def adopt(self, key: str, tmp: Path) -> dict[str, Any]:
        """Commit an object written at ``tmp`` by someone else (a download) once every file of it
        matches its manifest's size and checksum; else remove ``tmp`` and raise IntegrityError."""
        verified: Stats = {}
        try:
            if tmp.is_file():
                manifest, data = _read_blob_file(tmp)
                problem = _blob_problem(data, manifest)
            else:
                manifest = json.loads((tmp / MANIFEST).read_text())
                problem = _folder_problem(tmp, manifest, verified=verified)
            if manifest.get("key") != key:
                problem = f"its manifest names the key {manifest.get('key')!r}"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem = f"its manifest is unreadable ({type(exc).__name__}: {exc})"
        if problem is not None:
            self.discard(tmp)
            raise IntegrityError(f"Artifact {key}: {problem}.")
        if not tmp.is_file():
            self._staged[tmp] = verified
        self.commit(key, tmp)
        return manifest

    @staticmethod
    def _blob_record(key: str, factory: BlobFactory, value: Any,
                     meta: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """The manifest of a blob object and its bytes: the manifest line, then the payload."""
        data = factory.dumps(value)
        manifest = {"format": FORMAT, "key": key, "outputs": [factory.spec()],
                    "hash": ALGORITHM, "files": {BLOB: [len(data), digest(data)]},
                    "created": time.time(), **meta}
        return manifest, compact(manifest).encode() + b"\n" + data

    def _write_folder(self, tmp: Path, key: str, chosen: list[Any], outputs: list[tuple[Any, Any]],
                      meta: dict[str, Any]) -> dict[str, Any]:
        tmp.mkdir()
        dirs = ["."] if len(outputs) == 1 else [f"out{i}" for i in range(len(outputs))]
        with recording() as recorded:
            for factory, (value, _), folder in zip(chosen, outputs, dirs, strict=True):
                if folder != ".":
                    (tmp / folder).mkdir()
                factory.save(value, tmp / folder)
        stats: Stats = {}
        files = dict(_checksums(str(tmp), "", recorded, stats))
        if MANIFEST in files:
            raise FactoryError(f"Factory {chosen[0].name!r} wrote a file named {MANIFEST}, "
                               "a name the store reserves.")
        manifest = {"format": FORMAT, "key": key, "outputs": [f.spec() for f in chosen],
                    "dirs": dirs, "hash": ALGORITHM, "files": files, "created": time.time(),
                    **meta}
        (tmp / MANIFEST).write_text(json.dumps(manifest))
        self._staged[tmp] = stats
        return manifest

    # -- reading ------------------------------------------------------------------------------
    def _read_blob(self, key: str) -> tuple[dict[str, Any], bytes | None] | None:
        """The manifest of blob object ``key`` and, if packed, its payload (a loose blob's is
        read when needed); ``None`` if ``key`` is not a blob object."""
        try:
            record = self._packs.read(key)
            if record is not None:
                header, _, data = record.partition(b"\n")
                manifest = json.loads(header)
                if not isinstance(manifest, dict) or manifest.get("key") != key:
                    raise ValueError(f"the record names the key {manifest.get('key')!r}")
                return manifest, data
            with open(self._base(key) + BLOB, "rb") as f:
                header = f.readline()
                return json.loads(header), None
        except FileNotFoundError:
            return None
        except (ValueError, AttributeError) as exc:  # JSON, UTF-8, a record not of this key
            moved = self.quarantine(key)
            raise IntegrityError(f"Artifact {key} has an unreadable header: {exc}; "
                                 f"moved to {moved}.") from None

    def _manifest(self, key: str) -> tuple[dict[str, Any], bytes | None]:
        """The manifest of ``key``, with the payload of a packed blob object."""
        blob = self._read_blob(key)
        if blob is not None:
            return blob
        path = self.path(key) / MANIFEST
        try:
            return json.loads(path.read_text()), None
        except FileNotFoundError:
            raise StoreError(f"Artifact {key} is not in the store {self.root}.") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            moved = self.quarantine(key)
            raise IntegrityError(f"Manifest {path} is unreadable: {exc}; moved to {moved}.") from None

    def manifest(self, key: str) -> dict[str, Any]:
        """The manifest of ``key``: output factory specs, file checksums, metrics, provenance."""
        return self._manifest(key)[0]

    def _damaged(self, key: str, what: str) -> IntegrityError:
        moved = self.quarantine(key)
        return IntegrityError(f"Artifact {key}: {what}; moved to {moved}.",
                              hint="The step that made it will be recomputed.")

    def _blob_payload(self, key: str, manifest: dict[str, Any], data: bytes | None) -> bytes:
        """The payload of blob object ``key`` (``data`` if packed, else read from its file),
        checked against its manifest."""
        if data is None:
            with open(self._blob(key), "rb") as f:
                f.readline()
                data = f.read()
        problem = _blob_problem(data, manifest)
        if problem is not None:
            raise self._damaged(key, problem)
        return data

    def _stamp_path(self, key: str) -> Path:
        return Path(f"{self._stamps}/{key[:2]}/{key}.json")

    def _read_stamp(self, key: str) -> dict[str, Any] | None:
        """The stamp of object ``key``, or ``None`` (none, or unreadable: then files are hashed)."""
        try:
            with open(self._stamp_path(key), "rb") as f:
                stamp = json.loads(f.read())
            return stamp if isinstance(stamp.get("dev"), int) and isinstance(
                stamp.get("files"), dict) else None
        except (OSError, ValueError, AttributeError):
            return None

    def verify(self, key: str, *, full: bool = False) -> dict[str, Any]:
        """Check every file of ``key`` against its manifest; quarantine and raise on mismatch.

        Files a valid stamp vouches for are not read, unless ``full``.
        """
        manifest, data = self._manifest(key)
        if BLOB in manifest["files"]:
            self._blob_payload(key, manifest, data)
        else:
            large = any(size >= STAMP_MIN for size, _ in manifest["files"].values())
            stamp = self._read_stamp(key) if large and not full else None
            verified: Stats = {}
            problem = _folder_problem(self.path(key), manifest, stamp, verified)
            if problem is not None:
                raise self._damaged(key, problem)
            if verified:  # stamped at the next flush, once fsync-ed
                known, _ = self._stamp_later.get(key, ({}, True))
                self._stamp_later[key] = ({**known, **verified}, True)
        self._verified.add(key)
        return manifest

    def load(self, key: str, index: int = 0) -> Any:
        """Output ``index`` of object ``key``, verified against its checksums first."""
        manifest, data = self._manifest(key)
        specs = manifest["outputs"]
        if index >= len(specs):
            raise StoreError(f"Artifact {key} has {len(specs)} outputs, not {index + 1}.")
        try:
            factory = self.registry.from_spec(specs[index])
        except FactoryError as exc:  # an older format, or a plugin no longer installed
            raise self._damaged(key, f"it cannot be read any more ({exc.message})") from None
        try:
            if BLOB in manifest["files"]:
                assert isinstance(factory, BlobFactory)
                return factory.loads(self._blob_payload(key, manifest, data))
            if key not in self._verified:
                self.verify(key)
            return factory.load(self.path(key) / manifest["dirs"][index])
        except (FactoryError, IntegrityError):
            raise
        except Exception as exc:
            raise self._damaged(key, f"output {index} cannot be loaded: "
                                     f"{type(exc).__name__}: {exc}") from exc

    def quarantine(self, key: str) -> Path:
        """Move object ``key`` aside (kept for inspection) so that it is recomputed."""
        self._writable("quarantine an object in")
        self._verified.discard(key)
        self._stamp_later.pop(key, None)
        target = self.root / "quarantine" / f"{key}-{uuid.uuid4().hex[:8]}"
        target.parent.mkdir(parents=True, exist_ok=True)
        self._stamp_path(key).unlink(missing_ok=True)
        record = self._packs.read(key)
        if record is not None:
            target.write_bytes(record)
            self._packs.withdraw(key)
            return target
        for source in (self._blob(key), self.path(key)):
            try:
                os.rename(source, target)
                break
            except FileNotFoundError:
                continue
        return target

    # -- small documents and durability -------------------------------------------------------
    def read_index(self, name: str) -> dict[str, Any]:
        """A small JSON document kept beside the objects (e.g. the last keys of a workflow)."""
        path = self.root / "index" / f"{name}.json"
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return {}

    def write_index(self, name: str, data: dict[str, Any]) -> None:
        """Replace the index document ``name`` atomically (unchanged content is not rewritten).

        An index only explains why steps run, so it is not synced: a power cut may lose its
        last update, after which it reads as empty or as the one before.
        """
        self._writable("write to")
        path = self.root / "index" / f"{name}.json"
        encoded = compact(data).encode()
        try:
            if path.read_bytes() == encoded:
                return
        except OSError:
            pass
        atomic_write_bytes(path, encoded, sync=False)

    def flush(self) -> None:
        """Make every object saved since the last flush durable (one sync for all of them),
        then stamp the large files known good (see the module's docstring)."""
        if self._packed:
            self._packed = False
            self._unsynced += self._packs.files()
        if self._unsynced:
            folders, self._unsynced = self._unsynced, []
            sync_tree(self.root, folders)
        if self._stamp_later:
            pending, self._stamp_later = self._stamp_later, {}
            for key, (stats, needs_sync) in pending.items():
                self._stamp(key, stats, needs_sync)

    def _stamp(self, key: str, stats: Stats, needs_sync: bool) -> None:
        """Record the stamp of the files of ``key`` in ``stats`` that have not changed since."""
        base = self._base(key)
        previous = self._read_stamp(key)
        files: dict[str, list[int]] = {}
        dev = None
        for rel, stat in stats.items():
            try:
                result = os.stat(f"{base}/{rel}")
                if stat_of(result) != stat:
                    continue  # changed since it was hashed: the next load hashes it again
                if needs_sync:
                    fd = os.open(f"{base}/{rel}", os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            except OSError:
                continue
            files[rel], dev = list(stat), result.st_dev
        if dev is None:
            return
        if previous and previous["dev"] == dev:
            files = {**previous["files"], **files}
        try:  # a lost or torn stamp only means the files are hashed again
            atomic_write_bytes(self._stamp_path(key), json.dumps({"dev": dev, "files": files})
                               .encode(), sync=False)
        except OSError:
            pass

    # -- a run's scratch ----------------------------------------------------------------------
    def scratch(self, run_id: str) -> Store:
        """A store under ``scratch/<run_id>/`` for the uncached values of one run."""
        return Store(self.root / "scratch" / check_run_id(run_id), self.registry)

    def remove_scratch(self, run_id: str) -> None:
        """Delete the scratch store of ``run_id`` (nothing happens if there is none)."""
        shutil.rmtree(self.root / "scratch" / check_run_id(run_id), ignore_errors=True)
