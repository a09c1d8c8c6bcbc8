"""Project discovery, the paths of QFlow's local data (``.qflow/``) and where the store is.

The store is a local folder or an fsspec URL (``paths.store``); :class:`StoreLocation` says
which, as a small picklable value that a process sends to others (Dask workers) so that each
opens the same store with :func:`qflow.store.location.open_store`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.errors import ConfigError

if TYPE_CHECKING:
    from qflow.config.schema import PathsSettings

PROJECT_MARKER = Path("configs") / "project.yaml"
_LOCAL_PROTOCOLS = ("file://", "local://")


def find_project_root(start: Path | str | None = None) -> Path | None:
    """The nearest folder at or above ``start`` that holds ``configs/project.yaml``."""
    return _project_root(os.path.realpath(start or os.getcwd()))


def _project_root(folder: str) -> Path | None:
    """:func:`find_project_root` from the resolved path ``folder``."""
    while True:  # os.path, several times faster than pathlib here: every run starts with
        if os.path.isfile(os.path.join(folder, PROJECT_MARKER)):  # this walk to the root
            return Path(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _local_path(url: str) -> Path | None:
    """The folder a local path or ``file://`` URL names; ``None`` for any other protocol."""
    for protocol in _LOCAL_PROTOCOLS:
        if url.startswith(protocol):
            return Path(url.removeprefix(protocol)).expanduser()
    return None if "://" in url else Path(url).expanduser()


def _options(options: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((options or {}).items()))


@dataclass(frozen=True)
class StoreLocation:
    """Where an artifact store is: a local folder or an fsspec URL, and how to open it.

    Hashable (``storage_options`` is left out of the hash, so nested option values may be
    dicts) and picklable, so stores can be memoized by location and locations sent to workers.
    """

    url: str
    """A local folder or an fsspec URL (``s3://bucket/prefix``, ``file:///x``, ``gs://...``)."""
    storage_options: tuple[tuple[str, Any], ...] = field(default=(), hash=False)
    """Keyword arguments of ``fsspec.filesystem(protocol, ...)`` as sorted pairs."""
    trust_pickles: bool = False
    """Whether cloudpickled values may be loaded from a remote store (unpickling runs code)."""
    cache_dir: str | None = None
    """The local read-through cache of a remote store (default: a folder of the temp dir)."""

    @classmethod
    def of(cls, url: str, storage_options: Mapping[str, Any] | None = None, *,
           trust_pickles: bool = False, cache_dir: str | Path | None = None) -> StoreLocation:
        """A location from a plain dict of storage options."""
        return cls(url, _options(storage_options), trust_pickles,
                   None if cache_dir is None else str(cache_dir))

    @property
    def options(self) -> dict[str, Any]:
        """``storage_options`` as a dict."""
        return dict(self.storage_options)

    @property
    def is_local(self) -> bool:
        """Whether the store is a local folder (a path or a ``file://`` URL)."""
        return _local_path(self.url) is not None

    @property
    def path(self) -> Path:
        """The folder of a local store."""
        local = _local_path(self.url)
        if local is None:
            raise ConfigError(f"The artifact store {self.url} is not a local folder.")
        return local

    @property
    def digest(self) -> str:
        """A short digest of the URL, which names the store's local cache folder."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Paths:
    """Where a project (or, outside any project, the working folder) keeps QFlow's data."""

    root: Path
    data_dir: str = ".qflow"
    store_url: str | None = None
    """``paths.store``: a folder (relative to ``root``, or absolute) or an fsspec URL."""
    storage_options: tuple[tuple[str, Any], ...] = field(default=(), hash=False)
    trust_pickles: bool = False

    @classmethod
    def discover(cls, start: Path | str | None = None) -> Paths:
        """The project around ``start``, else ``start`` itself (embedded defaults in ``./.qflow``)."""
        here = os.path.realpath(start or os.getcwd())
        return cls(_project_root(here) or Path(here))

    @classmethod
    def from_settings(cls, root: Path, settings: PathsSettings) -> Paths:
        """The paths a composed configuration's ``paths:`` section gives the project at ``root``."""
        return cls(root, settings.data, settings.store, _options(settings.storage_options),
                   settings.trust_pickles)

    @property
    def data(self) -> Path:
        """``.qflow/`` (or the project's ``paths.data``): store, runs, tracker and tuner data."""
        return self.root / self.data_dir

    @property
    def store(self) -> Path:
        """The artifact store's folder; a ConfigError when ``paths.store`` is a remote URL."""
        if self.store_url is None:
            return self.data / "store"
        local = _local_path(self.store_url)
        if local is None:
            raise ConfigError(f"The artifact store {self.store_url} is not a local folder.",
                              hint="Open it with open_store(paths.store_location()).")
        return self.root / local

    def store_location(self) -> StoreLocation:
        """Where the artifact store is, with the options to open it (see ``open_store``)."""
        location = StoreLocation(self.store_url or "", self.storage_options, self.trust_pickles)
        if self.store_url is None or location.is_local:
            return replace(location, url=str(self.store))
        return replace(location, cache_dir=str(self.data / "cache" / location.digest))

    @property
    def runs(self) -> Path:
        """One folder per run: ``runs/<run_id>/record.json``."""
        return self.data / "runs"

    @property
    def tracker(self) -> Path:
        """Tracker data (the file tracker's JSON lines, MLflow's database)."""
        return self.data / "tracker"
