"""The local artifact store: every node's outputs under its cache key, checksummed.

Two shapes of object, both published by an atomic rename:

- ``objects/<k[:2]>/<key>.blob`` — one file: a JSON manifest line, then the bytes of a single
  output whose factory serialises in memory (JSON, bytes, pydantic, pickle). One file to
  create per step: the cheapest thing a file system offers.
- ``objects/<k[:2]>/<key>/`` — a folder: the files the factories wrote (``out0/``, ``out1/``...
  for several outputs) and ``manifest.json``, written last.

A manifest records every file's size and SHA-256; loading checks them (the hash for files up
to ``VERIFY_LIMIT`` bytes, the size for larger ones) and a mismatch moves the object to
``quarantine/`` and raises :class:`~qflow.errors.IntegrityError`, so the caller recomputes.
Whether a key is cached is a ``stat`` or two: nothing is read or hashed until a value is needed.

Objects are written aside (:meth:`Store.stage`) and published under their key
(:meth:`Store.commit`); the remote store uses these steps to upload an object before the local
copy becomes visible, and :meth:`Store.adopt` to publish a downloaded one once it is checked.
A run's scratch store (``scratch/<run_id>/``) holds values that are not cached.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qflow.artifacts.base import BlobFactory
from qflow.artifacts.registry import FactoryRegistry, default_registry
from qflow.errors import FactoryError, IntegrityError, StoreError
from qflow.store.atomic import atomic_write_bytes, file_lock, process_alive, publish, sync_tree

VERIFY_LIMIT = 256 * 1024 * 1024
MANIFEST = "manifest.json"
BLOB = ".blob"
FORMAT = 1
_HOST = socket.gethostname().replace("-", "_") or "host"
_RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _checksums(folder: str | Path, prefix: str) -> Any:
    """``(relative path, [size, sha256])`` for every file under ``folder``."""
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            yield from _checksums(entry.path, f"{prefix}{entry.name}/")
        else:
            yield f"{prefix}{entry.name}", [entry.stat().st_size, _sha256(Path(entry.path))]


def _read_blob_file(path: Path) -> tuple[dict[str, Any], bytes]:
    """The manifest line and the payload of the blob file ``path``."""
    with open(path, "rb") as f:
        header = f.readline()
        return json.loads(header), f.read()


def _blob_problem(data: bytes, manifest: dict[str, Any]) -> str | None:
    """What is wrong with a blob's payload ``data``, or ``None`` when it matches its manifest."""
    size, digest = manifest["files"][BLOB]
    if len(data) != size:
        return f"blob has {len(data)} bytes, {size} were written"
    if hashlib.sha256(data).hexdigest() != digest:
        return "blob does not match its SHA-256 checksum"
    return None


def _folder_problem(base: Path, manifest: dict[str, Any], full: bool) -> str | None:
    """What is wrong with the files of the folder object at ``base``, or ``None``.

    Hashes files up to ``VERIFY_LIMIT`` bytes (every file when ``full``); checks sizes only above.
    """
    for rel, (size, digest) in manifest["files"].items():
        try:
            actual = (base / rel).stat().st_size
        except FileNotFoundError:
            return f"file {rel} is missing"
        if actual != size:
            return f"file {rel} has {actual} bytes, {size} were written"
        if (full or size <= VERIFY_LIMIT) and _sha256(base / rel) != digest:
            return f"file {rel} does not match its SHA-256 checksum"
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
        self._tmp = self.root / "tmp"
        self._verified: set[str] = set()
        self._unsynced: list[Path] = []
        self._tmp_prefix = f"{os.getpid()}-{_HOST}-{uuid.uuid4().hex[:12]}-"
        self._counter = itertools.count()
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
            if rest.startswith(f"{_HOST}-") and pid.isdigit() and not process_alive(int(pid)):
                # another process may be cleaning the same leftovers at the same time
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    Path(entry.path).unlink(missing_ok=True)

    def path(self, key: str) -> Path:
        """Where the folder object ``key`` lives (a blob object adds ``.blob``)."""
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise StoreError(f"Invalid artifact key {key!r}.")
        return self._objects / key[:2] / key

    def _blob(self, key: str) -> Path:
        return self.path(key).with_suffix(BLOB)

    def has(self, key: str) -> bool:
        """Whether ``key`` is stored; no data is read."""
        return self._blob(key).exists() or (self.path(key) / MANIFEST).exists()

    def _writable(self, doing: str) -> None:
        if self.read_only:
            raise StoreError(f"Cannot {doing} the store {self.root}: it was opened read-only.")

    # -- what the store holds (``qflow cache``) -----------------------------------------------
    def keys(self) -> Iterator[str]:
        """Every key stored, in no particular order; only committed objects are seen (never
        what is being written in ``tmp/``, nor ``scratch/`` and ``quarantine/``)."""
        try:
            shards = sorted(e.path for e in os.scandir(self._objects) if e.is_dir())
        except FileNotFoundError:
            return
        for shard in shards:
            try:
                entries = list(os.scandir(shard))
            except FileNotFoundError:  # removed meanwhile
                continue
            for entry in entries:
                if entry.name.endswith(BLOB):
                    yield entry.name[:-len(BLOB)]
                elif entry.is_dir() and os.path.exists(os.path.join(entry.path, MANIFEST)):
                    yield entry.name

    def size(self, key: str) -> int:
        """Bytes the object ``key`` takes on disk (its files and manifest)."""
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
        try:
            self._blob(key).unlink()
            return True
        except FileNotFoundError:
            pass
        aside = self.new_tmp()
        try:
            os.rename(self.path(key), aside)
        except FileNotFoundError:
            return False
        shutil.rmtree(aside, ignore_errors=True)
        return True

    def lock(self, *, shared: bool = False) -> contextlib.AbstractContextManager[None]:
        """The store's lock (the file ``lock`` in its folder). ``qflow cache gc`` holds it
        exclusively while it chooses and removes objects; a run holds it shared from finding
        a key in the store until its record names that key, so gc never removes an object
        that a run in flight uses."""
        return file_lock(self.root / "lock", shared=shared)

    # -- writing ------------------------------------------------------------------------------
    def new_tmp(self) -> Path:
        """A fresh path in ``tmp/`` owned by this process (removed if the process dies)."""
        self._writable("write to")
        return self._tmp / f"{self._tmp_prefix}{next(self._counter)}"

    def save(self, key: str, outputs: list[tuple[Any, Any]], meta: dict[str, Any]) -> dict[str, Any]:
        """Store ``outputs`` (value, declared factory or None) under ``key``, atomically.

        A failed write (disk full, file-size limit) raises :class:`StoreError` and leaves
        nothing behind, neither under the key nor in ``tmp/``.
        """
        manifest, tmp = self.stage(key, outputs, meta)
        self.commit(key, tmp)
        return manifest

    def stage(self, key: str, outputs: list[tuple[Any, Any]],
              meta: dict[str, Any]) -> tuple[dict[str, Any], Path]:
        """Write the object for ``key`` aside: its manifest and the blob file or folder in ``tmp/``."""
        self.path(key)  # checks the key before any factory runs
        chosen = [self.registry.choose(declared, value) for value, declared in outputs]
        tmp = self.new_tmp()
        try:
            if len(outputs) == 1 and isinstance(chosen[0], BlobFactory):
                manifest = self._write_blob(tmp, key, chosen[0], outputs[0][0], meta)
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
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)

    def commit(self, key: str, tmp: Path) -> None:
        """Publish the object staged at ``tmp`` (a blob file or a folder) under ``key``."""
        final = self._blob(key) if tmp.is_file() else self.path(key)
        try:
            publish(tmp, final)
        except OSError as exc:
            self.discard(tmp)
            raise write_error(exc, self.root) from exc
        self._unsynced.append(final)
        self._verified.add(key)

    def adopt(self, key: str, tmp: Path) -> dict[str, Any]:
        """Commit an object written at ``tmp`` by someone else (a download) once every file of it
        matches its manifest's size and SHA-256; else remove ``tmp`` and raise IntegrityError."""
        try:
            if tmp.is_file():
                manifest, data = _read_blob_file(tmp)
                problem = _blob_problem(data, manifest)
            else:
                manifest = json.loads((tmp / MANIFEST).read_text())
                problem = _folder_problem(tmp, manifest, full=True)
            if manifest.get("key") != key:
                problem = f"its manifest names the key {manifest.get('key')!r}"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem = f"its manifest is unreadable ({type(exc).__name__}: {exc})"
        if problem is not None:
            self.discard(tmp)
            raise IntegrityError(f"Artifact {key}: {problem}.")
        self.commit(key, tmp)
        return manifest

    def _write_blob(self, tmp: Path, key: str, factory: BlobFactory, value: Any,
                    meta: dict[str, Any]) -> dict[str, Any]:
        data = factory.dumps(value)
        manifest = {"format": FORMAT, "key": key, "outputs": [factory.spec()],
                    "files": {BLOB: [len(data), hashlib.sha256(data).hexdigest()]},
                    "created": time.time(), **meta}
        with open(tmp, "wb") as f:
            f.write(json.dumps(manifest).encode() + b"\n")
            f.write(data)
        return manifest

    def _write_folder(self, tmp: Path, key: str, chosen: list[Any], outputs: list[tuple[Any, Any]],
                      meta: dict[str, Any]) -> dict[str, Any]:
        tmp.mkdir()
        dirs = ["."] if len(outputs) == 1 else [f"out{i}" for i in range(len(outputs))]
        for factory, (value, _), folder in zip(chosen, outputs, dirs, strict=True):
            if folder != ".":
                (tmp / folder).mkdir()
            factory.save(value, tmp / folder)
        files = dict(_checksums(tmp, ""))
        if MANIFEST in files:
            raise FactoryError(f"Factory {chosen[0].name!r} wrote a file named {MANIFEST}, "
                               "a name the store reserves.")
        manifest = {"format": FORMAT, "key": key, "outputs": [f.spec() for f in chosen],
                    "dirs": dirs, "files": files, "created": time.time(), **meta}
        (tmp / MANIFEST).write_text(json.dumps(manifest))
        return manifest

    # -- reading ------------------------------------------------------------------------------
    def _read_blob(self, key: str) -> tuple[dict[str, Any], bytes | None] | None:
        try:
            with open(self._blob(key), "rb") as f:
                header = f.readline()
                return json.loads(header), None
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            moved = self.quarantine(key)
            raise IntegrityError(f"Artifact {key} has an unreadable header: {exc}; "
                                 f"moved to {moved}.") from None

    def manifest(self, key: str) -> dict[str, Any]:
        """The manifest of ``key``: output factory specs, file checksums, metrics, provenance."""
        blob = self._read_blob(key)
        if blob is not None:
            return blob[0]
        path = self.path(key) / MANIFEST
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise StoreError(f"Artifact {key} is not in the store {self.root}.") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            moved = self.quarantine(key)
            raise IntegrityError(f"Manifest {path} is unreadable: {exc}; moved to {moved}.") from None

    def _damaged(self, key: str, what: str) -> IntegrityError:
        moved = self.quarantine(key)
        return IntegrityError(f"Artifact {key}: {what}; moved to {moved}.",
                              hint="The step that made it will be recomputed.")

    def _blob_payload(self, key: str, manifest: dict[str, Any]) -> bytes:
        with open(self._blob(key), "rb") as f:
            f.readline()
            data = f.read()
        problem = _blob_problem(data, manifest)
        if problem is not None:
            raise self._damaged(key, problem)
        return data

    def verify(self, key: str, *, full: bool = False) -> dict[str, Any]:
        """Check every file of ``key`` against its manifest; quarantine and raise on mismatch."""
        manifest = self.manifest(key)
        if BLOB in manifest["files"]:
            self._blob_payload(key, manifest)
        else:
            problem = _folder_problem(self.path(key), manifest, full)
            if problem is not None:
                raise self._damaged(key, problem)
        self._verified.add(key)
        return manifest

    def load(self, key: str, index: int = 0) -> Any:
        """Output ``index`` of object ``key``, verified against its checksums first."""
        manifest = self.manifest(key)
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
                return factory.loads(self._blob_payload(key, manifest))
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
        target = self.root / "quarantine" / f"{key}-{uuid.uuid4().hex[:8]}"
        target.parent.mkdir(parents=True, exist_ok=True)
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
        """Replace the index document ``name`` atomically."""
        self._writable("write to")
        atomic_write_bytes(self.root / "index" / f"{name}.json", json.dumps(data).encode())

    def flush(self) -> None:
        """Make every object saved since the last flush durable (one sync for all of them)."""
        if self._unsynced:
            folders, self._unsynced = self._unsynced, []
            sync_tree(self.root, folders)

    # -- a run's scratch ----------------------------------------------------------------------
    def scratch(self, run_id: str) -> Store:
        """A store under ``scratch/<run_id>/`` for the uncached values of one run."""
        return Store(self.root / "scratch" / check_run_id(run_id), self.registry)

    def remove_scratch(self, run_id: str) -> None:
        """Delete the scratch store of ``run_id`` (nothing happens if there is none)."""
        shutil.rmtree(self.root / "scratch" / check_run_id(run_id), ignore_errors=True)
