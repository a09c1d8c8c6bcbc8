"""Opening the artifact store at a :class:`StoreLocation`: a local folder or an fsspec URL.

Every task a Dask worker runs opens its store again, so :func:`open_store` keeps one store
per remote location and process: the second call costs a dictionary lookup (a local
store is cheap to open, and a fresh one verifies again what it loads).
"""

from __future__ import annotations

import os
import threading

from qflow.config.paths import StoreLocation
from qflow.store.local import Store
from qflow.store.remote import RemoteStore

__all__ = ["StoreLocation", "open_store"]

_opened: dict[tuple[StoreLocation, int, bool], Store | RemoteStore] = {}
_lock = threading.Lock()


def open_store(location: StoreLocation, *, read_only: bool = False) -> Store | RemoteStore:
    """The store at ``location``: a :class:`Store` for a folder or a ``file://`` URL, else a
    :class:`RemoteStore`, the same one for the same location within a process.
    ``read_only`` opens it without creating or writing anything (see ``Store``)."""
    if location.is_local:  # cheap to open; a fresh one re-verifies what it loads
        return Store(location.path, read_only=read_only)
    # keyed by pid too: a forked child must not share its parent's temporary file names
    memo = (location, os.getpid(), read_only)
    with _lock:
        store = _opened.get(memo)
        if store is None:
            store = RemoteStore(location, read_only=read_only)
            _opened[memo] = store
        return store
