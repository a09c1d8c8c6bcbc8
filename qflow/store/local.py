"""The local artifact store: ``objects/<k[:2]>/<key>/`` holds a node's outputs and manifest.

A manifest records, for every file, its size and SHA-256; loading checks them (the hash for
files up to ``VERIFY_LIMIT`` bytes, the size for larger ones) and a mismatch moves the object
to ``quarantine/`` and raises :class:`~qflow.errors.IntegrityError`, so the caller recomputes.
Whether a key is cached is one ``stat`` of its manifest: nothing is read or hashed until a
value is needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from qflow.artifacts.registry import FactoryRegistry, default_registry
from qflow.errors import FactoryError, IntegrityError, StoreError
from qflow.store.atomic import Committer, atomic_write_bytes

VERIFY_LIMIT = 256 * 1024 * 1024
MANIFEST = "manifest.json"
FORMAT = 1


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """Artifacts on a local disk, addressed by cache key."""

    def __init__(self, root: Path | str, registry: FactoryRegistry | None = None) -> None:
        self.root = Path(root)
        self.registry = registry or default_registry
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"
        self._verified: set[str] = set()
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the artifact store at {self.root}: {exc}.") from exc
        self._committer = Committer(self.root)
        self._clean_tmp()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def _clean_tmp(self) -> None:
        """Remove temporary folders left by processes that died mid-write."""
        for entry in os.scandir(self._tmp):
            pid = entry.name.split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(entry.path, ignore_errors=True)

    def path(self, key: str) -> Path:
        """Where the object ``key`` lives once committed."""
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise StoreError(f"Invalid artifact key {key!r}.")
        return self._objects / key[:2] / key

    def _location(self, key: str) -> Path:
        final = self.path(key)
        if self._committer.pending(final) is not None:
            self._committer.flush()
        return final

    def has(self, key: str) -> bool:
        """Whether ``key`` is stored (committed or being committed); reads no data."""
        final = self.path(key)
        return self._committer.pending(final) is not None or (final / MANIFEST).exists()

    def manifest(self, key: str) -> dict[str, Any]:
        """The manifest of ``key``: output factory specs, file checksums, metrics, provenance."""
        path = self._location(key) / MANIFEST
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise StoreError(f"Artifact {key} is not in the store {self.root}.") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self.quarantine(key)
            raise IntegrityError(f"Manifest {path} is unreadable: {exc}.") from None

    def save(self, key: str, outputs: list[tuple[Any, Any]], meta: dict[str, Any]) -> dict[str, Any]:
        """Store ``outputs`` (value, declared factory or None) under ``key``; commit in background."""
        tmp = self._tmp / f"{os.getpid()}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            specs = []
            for i, (value, declared) in enumerate(outputs):
                chosen = self.registry.choose(declared, value)
                (tmp / f"out{i}").mkdir()
                chosen.save(value, tmp / f"out{i}")
                specs.append(chosen.spec())
            files = {}
            for dirpath, _, filenames in os.walk(tmp):
                for filename in filenames:
                    full = Path(dirpath, filename)
                    files[full.relative_to(tmp).as_posix()] = [full.stat().st_size, _sha256(full)]
            manifest = {"format": FORMAT, "key": key, "outputs": specs, "files": files,
                        "created": time.time(), **meta}
            (tmp / MANIFEST).write_text(json.dumps(manifest))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._committer.submit(tmp, self.path(key))
        self._verified.add(key)
        return manifest

    def verify(self, key: str, *, full: bool = False) -> dict[str, Any]:
        """Check every file of ``key`` against its manifest; quarantine and raise on mismatch."""
        manifest = self.manifest(key)
        base = self._location(key)
        for rel, (size, digest) in manifest["files"].items():
            path = base / rel
            problem = None
            try:
                actual = path.stat().st_size
            except FileNotFoundError:
                problem = "is missing"
            else:
                if actual != size:
                    problem = f"has {actual} bytes, {size} were written"
                elif (full or size <= VERIFY_LIMIT) and _sha256(path) != digest:
                    problem = "does not match its SHA-256 checksum"
            if problem:
                moved = self.quarantine(key)
                raise IntegrityError(
                    f"Artifact {key}: file {rel} {problem}; moved to {moved}.",
                    hint="The step that made it will be recomputed.",
                )
        self._verified.add(key)
        return manifest

    def load(self, key: str, index: int = 0) -> Any:
        """Output ``index`` of object ``key``, verified against its checksums first."""
        manifest = self.manifest(key) if key in self._verified else self.verify(key)
        specs = manifest["outputs"]
        if index >= len(specs):
            raise StoreError(f"Artifact {key} has {len(specs)} outputs, not {index + 1}.")
        try:
            factory = self.registry.from_spec(specs[index])
            return factory.load(self._location(key) / f"out{index}")
        except FactoryError:
            raise
        except Exception as exc:
            moved = self.quarantine(key)
            raise IntegrityError(
                f"Artifact {key} output {index} cannot be loaded: {type(exc).__name__}: {exc}; "
                f"moved to {moved}."
            ) from exc

    def quarantine(self, key: str) -> Path:
        """Move object ``key`` aside (kept for inspection) so that it is recomputed."""
        self._verified.discard(key)
        source = self.path(key)
        target = self.root / "quarantine" / f"{key}-{uuid.uuid4().hex[:8]}"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(source, target)
        except FileNotFoundError:
            pass
        return target

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
        """Wait until every saved object is committed durably."""
        self._committer.flush()
