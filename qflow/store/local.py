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
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from qflow.artifacts.base import BlobFactory
from qflow.artifacts.registry import FactoryRegistry, default_registry
from qflow.errors import FactoryError, IntegrityError, StoreError
from qflow.store.atomic import atomic_write_bytes, process_alive, publish, sync_tree

VERIFY_LIMIT = 256 * 1024 * 1024
MANIFEST = "manifest.json"
BLOB = ".blob"
FORMAT = 1
_HOST = socket.gethostname().replace("-", "_") or "host"


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


class Store:
    """Artifacts on a local disk, addressed by cache key."""

    def __init__(self, root: Path | str, registry: FactoryRegistry | None = None) -> None:
        self.root = Path(root)
        self.registry = registry or default_registry
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"
        self._verified: set[str] = set()
        self._unsynced: list[Path] = []
        self._tmp_prefix = f"{os.getpid()}-{_HOST}-{uuid.uuid4().hex[:12]}-"
        self._counter = itertools.count()
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
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)

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

    # -- writing ------------------------------------------------------------------------------
    def save(self, key: str, outputs: list[tuple[Any, Any]], meta: dict[str, Any]) -> dict[str, Any]:
        """Store ``outputs`` (value, declared factory or None) under ``key``, atomically."""
        chosen = [self.registry.choose(declared, value) for value, declared in outputs]
        tmp = self._tmp / f"{self._tmp_prefix}{next(self._counter)}"
        try:
            if len(outputs) == 1 and isinstance(chosen[0], BlobFactory):
                manifest, final = self._write_blob(tmp, key, chosen[0], outputs[0][0], meta)
            else:
                manifest, final = self._write_folder(tmp, key, chosen, outputs, meta)
        except BaseException:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            raise
        publish(tmp, final)
        self._unsynced.append(final)
        self._verified.add(key)
        return manifest

    def _write_blob(self, tmp: Path, key: str, factory: BlobFactory, value: Any,
                    meta: dict[str, Any]) -> tuple[dict[str, Any], Path]:
        data = factory.dumps(value)
        manifest = {"format": FORMAT, "key": key, "outputs": [factory.spec()],
                    "files": {BLOB: [len(data), hashlib.sha256(data).hexdigest()]},
                    "created": time.time(), **meta}
        with open(tmp, "wb") as f:
            f.write(json.dumps(manifest).encode() + b"\n")
            f.write(data)
        return manifest, self._blob(key)

    def _write_folder(self, tmp: Path, key: str, chosen: list[Any], outputs: list[tuple[Any, Any]],
                      meta: dict[str, Any]) -> tuple[dict[str, Any], Path]:
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
        return manifest, self.path(key)

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
        size, digest = manifest["files"][BLOB]
        with open(self._blob(key), "rb") as f:
            f.readline()
            data = f.read()
        if len(data) != size:
            raise self._damaged(key, f"blob has {len(data)} bytes, {size} were written")
        if hashlib.sha256(data).hexdigest() != digest:
            raise self._damaged(key, "blob does not match its SHA-256 checksum")
        return data

    def verify(self, key: str, *, full: bool = False) -> dict[str, Any]:
        """Check every file of ``key`` against its manifest; quarantine and raise on mismatch."""
        manifest = self.manifest(key)
        if BLOB in manifest["files"]:
            self._blob_payload(key, manifest)
            self._verified.add(key)
            return manifest
        base = self.path(key)
        for rel, (size, digest) in manifest["files"].items():
            path = base / rel
            try:
                actual = path.stat().st_size
            except FileNotFoundError:
                raise self._damaged(key, f"file {rel} is missing") from None
            if actual != size:
                raise self._damaged(key, f"file {rel} has {actual} bytes, {size} were written")
            if (full or size <= VERIFY_LIMIT) and _sha256(path) != digest:
                raise self._damaged(key, f"file {rel} does not match its SHA-256 checksum")
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
        atomic_write_bytes(self.root / "index" / f"{name}.json", json.dumps(data).encode())

    def flush(self) -> None:
        """Make every object saved since the last flush durable (one sync for all of them)."""
        if self._unsynced:
            folders, self._unsynced = self._unsynced, []
            sync_tree(self.root, folders)
