"""The artifact store at an fsspec URL (``s3://bucket/prefix``, ``gs://...``), cached locally.

The layout is the local store's (``objects/<k[:2]>/<key>.blob`` or ``<key>/`` with
``manifest.json``, ``index/``, ``quarantine/``, ``scratch/<run_id>/``). Object stores have no
rename, so an object is published by the order of its uploads, each PUT being atomic: a blob
(which holds its manifest) is one PUT; a folder's data files go first and ``manifest.json``
last. Readers trust an object only once its blob or manifest exists, so a writer killed
mid-upload leaves nothing anyone uses.

Every object passes through a local :class:`~qflow.store.local.Store`, the read-through cache:
a save writes the object there aside, uploads it, then commits the local copy; a load downloads
into the cache's ``tmp/``, checks every file's size and checksum against the manifest and
commits, so each artifact is downloaded at most once per cache. A damaged remote object is
moved to ``quarantine/`` and raises :class:`~qflow.errors.IntegrityError`, so it is recomputed.

Unpickling runs code, so values saved with cloudpickle are loaded from a remote store only
when its location trusts pickles (``paths.trust_pickles``).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.artifacts.builtin import PickleFactory
from qflow.artifacts.composite import KINDS
from qflow.config.paths import StoreLocation
from qflow.errors import ConfigError, IntegrityError, QFlowError, StoreError
from qflow.jsontext import compact
from qflow.store.local import BLOB, MANIFEST, Store, check_run_id

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from qflow.artifacts.registry import FactoryRegistry

_RECOMPUTE = "The step that made it will be recomputed."


class RemoteStore:
    """Artifacts at an fsspec URL, addressed by cache key, with a local read-through cache.

    Credentials and endpoints come from the environment (``AWS_ACCESS_KEY_ID``,
    ``AWS_ENDPOINT_URL``...), which the file system's library reads itself, or from the
    location's ``storage_options``. ``read_only`` opens its local cache read-only (nothing
    is downloaded into it).
    """

    def __init__(self, location: StoreLocation, registry: FactoryRegistry | None = None, *,
                 read_only: bool = False) -> None:
        from fsspec.core import url_to_fs

        self.location = location
        try:
            fs, self._root = url_to_fs(location.url, **location.options)
        except (ImportError, ValueError, TypeError) as exc:
            raise ConfigError(f"Cannot open the artifact store {location.url}: {exc}.",
                              hint="Check paths.store and paths.storage_options, and install "
                                   "the file system's package (pip install 'qflow[s3]').") from exc
        self.fs: AbstractFileSystem = fs
        cache = location.cache_dir or Path(tempfile.gettempdir()) / "qflow-cache" / location.digest
        self.cache = Store(cache, registry, read_only=read_only)

    @property
    def url(self) -> str:
        """The store's URL."""
        return self.location.url

    @property
    def registry(self) -> FactoryRegistry:
        """The factories that save and load values."""
        return self.cache.registry

    def __repr__(self) -> str:
        return f"RemoteStore({self.url!r})"

    @contextlib.contextmanager
    def _remote(self, doing: str) -> Iterator[None]:
        """Turn a failure of the file system (network, credentials) into a StoreError."""
        try:
            yield
        except QFlowError:
            raise
        except Exception as exc:
            raise StoreError(f"Cannot {doing} the artifact store {self.url}: "
                             f"{type(exc).__name__}: {exc}",
                             hint="Check the URL, the network and the credentials (environment "
                                  "variables such as AWS_ACCESS_KEY_ID, or "
                                  "paths.storage_options).") from exc

    def _object(self, key: str) -> str:
        """The remote path of the folder object ``key`` (a blob object adds ``.blob``)."""
        self.cache.path(key)  # rejects invalid keys
        return f"{self._root}/objects/{key[:2]}/{key}"

    def _listing(self, key: str) -> list[str]:
        """The remote files of object ``key``, committed or not: one listing request."""
        base = self._object(key)
        return [path for path in self.fs.find(base.rsplit("/", 1)[0], prefix=key)
                if path == base + BLOB or path.startswith(base + "/")]

    def _committed(self, key: str) -> str | None:
        """The commit marker of ``key`` in the store (its blob or its manifest), or ``None``."""
        base = self._object(key)
        found = set(self._listing(key))
        return next((m for m in (base + BLOB, f"{base}/{MANIFEST}") if m in found), None)

    def has(self, key: str) -> bool:
        """Whether ``key`` is stored: in the local cache, else committed remotely (one request)."""
        if self.cache.has(key):
            return True
        with self._remote("read"):
            return self._committed(key) is not None

    # -- writing ------------------------------------------------------------------------------
    def save(self, key: str, outputs: list[tuple[Any, Any]], meta: dict[str, Any]) -> dict[str, Any]:
        """Store ``outputs`` (value, declared factory or None) under ``key``: write the object
        aside in the cache, upload it (its commit marker last), then commit the cached copy."""
        manifest, tmp = self.cache.stage(key, outputs, meta)
        try:
            with self._remote("upload to"):
                self._upload(key, tmp, manifest)
        except BaseException:
            self.cache.discard(tmp)
            raise
        self.cache.commit(key, tmp)
        return manifest

    def _upload(self, key: str, tmp: Path, manifest: dict[str, Any]) -> None:
        base = self._object(key)
        if tmp.is_file():
            self._commit(tmp, base + BLOB)
            return
        files = list(manifest["files"])
        self.fs.put([str(tmp / rel) for rel in files], [f"{base}/{rel}" for rel in files])
        self._commit(tmp / MANIFEST, f"{base}/{MANIFEST}")

    def _commit(self, source: Path, target: str) -> None:
        """Upload an object's commit marker (its blob, or its manifest after the data files):
        one PUT, after which readers trust the object."""
        self.fs.put_file(str(source), target)

    # -- reading ------------------------------------------------------------------------------
    def manifest(self, key: str) -> dict[str, Any]:
        """The manifest of ``key``: from the cache, else from the store (a blob object holds its
        manifest, so it is downloaded whole into the cache)."""
        if self.cache.has(key):
            return self.cache.manifest(key)
        with self._remote("read from"):
            marker = self._committed(key)
            if marker is None:
                raise StoreError(f"Artifact {key} is not in the store {self.url}.")
            if marker.endswith(BLOB):
                tmp = self.cache.new_tmp()
                try:
                    self.fs.get_file(marker, str(tmp))
                except BaseException:
                    self.cache.discard(tmp)
                    raise
                return self._adopt(key, tmp)
            try:
                return json.loads(self.fs.cat_file(marker))
            except ValueError as exc:  # JSON or UTF-8 decoding
                raise self._damaged(key, f"Artifact {key}: its manifest is unreadable "
                                         f"({exc}).") from None

    def _fetch_folder(self, key: str, manifest: dict[str, Any]) -> None:
        """Download the folder object ``key`` into the cache, checked against ``manifest``."""
        base = self._object(key)
        files = list(manifest["files"])
        tmp = self.cache.new_tmp()
        try:
            tmp.mkdir()
            with self._remote("download from"):
                try:
                    self.fs.get([f"{base}/{rel}" for rel in files],
                                [str(tmp / rel) for rel in files])
                except FileNotFoundError as exc:
                    raise self._damaged(key, f"Artifact {key}: a file is missing ({exc}).") from None
            (tmp / MANIFEST).write_text(json.dumps(manifest))
        except BaseException:
            self.cache.discard(tmp)
            raise
        self._adopt(key, tmp)

    def _adopt(self, key: str, tmp: Path) -> dict[str, Any]:
        try:
            return self.cache.adopt(key, tmp)
        except IntegrityError as exc:
            raise self._damaged(key, exc.message) from None

    def _damaged(self, key: str, message: str) -> IntegrityError:
        moved = self.quarantine(key)
        return IntegrityError(f"{message} Moved the copy in {self.url} to {moved}.",
                              hint=_RECOMPUTE)

    def _check_trusted(self, key: str, manifest: dict[str, Any], index: int) -> None:
        """Refuse to unpickle output ``index`` unless the location trusts pickles."""
        specs = manifest["outputs"]
        if self.location.trust_pickles or index >= len(specs):
            return
        name = specs[index]["name"]
        inside = manifest.get("dirs", ["."])[index]
        prefix = "" if inside == "." else f"{inside}/"
        pickled = name == PickleFactory.name or name in KINDS and any(
            rel.startswith(prefix) and rel.rsplit("/", 1)[-1] == PickleFactory.filename
            for rel in manifest["files"])
        if pickled:
            raise ConfigError(
                f"Output {index} of artifact {key} in {self.url} was saved with cloudpickle; "
                "loading it would run code taken from the store, so QFlow refuses.",
                hint="If only people you trust can write to this store, set "
                     "`trust_pickles: true` in the project's configs/paths/*.yaml "
                     "(paths.trust_pickles: true). Or return a type with a safe factory "
                     "(JSON, numpy, pandas, pydantic).")

    def verify(self, key: str, *, full: bool = False) -> dict[str, Any]:
        """Check ``key``: the cached copy against its manifest, else download it (which checks
        every file); quarantine and raise IntegrityError on a mismatch."""
        if self.cache.has(key):
            return self.cache.verify(key, full=full)
        manifest = self.manifest(key)
        if not self.cache.has(key):
            self._fetch_folder(key, manifest)
        return manifest

    def load(self, key: str, index: int = 0) -> Any:
        """Output ``index`` of object ``key``, from the cache (downloaded and checked once)."""
        manifest = self.manifest(key)
        self._check_trusted(key, manifest, index)
        if not self.cache.has(key):
            self._fetch_folder(key, manifest)
        return self.cache.load(key, index)

    def quarantine(self, key: str) -> str:
        """Move object ``key`` aside, in the store and in the cache, so that it is recomputed;
        the commit marker moves first, so the object is withdrawn at once."""
        self.cache.quarantine(key)
        base = self._object(key)
        target = f"{self._root}/quarantine/{key}-{uuid.uuid4().hex[:8]}"
        markers = (base + BLOB, f"{base}/{MANIFEST}")
        with self._remote("quarantine an object in"):
            for path in sorted(self._listing(key), key=lambda p: p not in markers):
                self.fs.mv(path, target + path[len(base):])
        return str(self.fs.unstrip_protocol(target))

    def lock(self, *, shared: bool = False) -> contextlib.AbstractContextManager[None]:
        """The lock of the local cache (the remote store has none: ``qflow cache gc`` does not
        remove objects from a remote store)."""
        return self.cache.lock(shared=shared)

    # -- small documents and durability -------------------------------------------------------
    def _index(self, name: str) -> str:
        return f"{self._root}/index/{name}.json"

    def read_index(self, name: str) -> dict[str, Any]:
        """A small JSON document kept beside the objects (e.g. the last keys of a workflow)."""
        with self._remote("read from"):
            try:
                return json.loads(self.fs.cat_file(self._index(name)))
            except (FileNotFoundError, ValueError):
                return {}

    def write_index(self, name: str, data: dict[str, Any]) -> None:
        """Replace the index document ``name`` (one PUT: readers see the old or the new one)."""
        with self._remote("write to"):
            self.fs.pipe_file(self._index(name), compact(data).encode())

    def flush(self) -> None:
        """Uploaded objects are durable once stored; this syncs the local cache."""
        self.cache.flush()

    # -- a run's scratch ----------------------------------------------------------------------
    def scratch(self, run_id: str) -> RemoteStore:
        """A store under ``scratch/<run_id>/`` for the uncached values of one run."""
        sub = f"scratch/{check_run_id(run_id)}"
        location = replace(self.location, url=f"{self.url.rstrip('/')}/{sub}",
                           cache_dir=str(self.cache.root / sub))
        return RemoteStore(location, self.registry)

    def remove_scratch(self, run_id: str) -> None:
        """Delete the scratch store of ``run_id`` and its cache (nothing happens if none)."""
        with self._remote("delete a scratch store in"):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(f"{self._root}/scratch/{check_run_id(run_id)}", recursive=True)
        self.cache.remove_scratch(run_id)
