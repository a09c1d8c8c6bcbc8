"""The store at a URL: one contract for the local and the remote store (S3 on moto's server),
then what only a remote store does: atomic publication without rename, integrity checks of
downloads, the read-through cache, refusing pickles from a bucket."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from qflow.config.paths import StoreLocation
from qflow.errors import ConfigError, IntegrityError, StoreError
from qflow.store.local import Store
from qflow.store.location import open_store
from qflow.store.remote import RemoteStore

BLOB_KEY = "ab" + "1" * 62
FOLDER_KEY = "cd" + "2" * 62


class Opaque:
    """A value only cloudpickle can save."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.n == self.n


def other_view(store: Store | RemoteStore, tmp_path: Path, name: str = "other") -> Store | RemoteStore:
    """The same store seen by another process (local) or another machine (remote: own cache)."""
    if isinstance(store, Store):
        return Store(store.root)
    return RemoteStore(StoreLocation.of(store.url, cache_dir=tmp_path / name))


@pytest.fixture(params=["local", "remote"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store | RemoteStore:
    if request.param == "local":
        return open_store(StoreLocation.of(str(tmp_path / "store")))
    url = request.getfixturevalue("s3_url")
    return open_store(StoreLocation.of(url, cache_dir=tmp_path / "cache"))


@contextlib.contextmanager
def s3_requests(store: RemoteStore) -> Iterator[list[str]]:
    """The names of the S3 API calls ``store`` makes inside the block."""
    calls: list[str] = []

    def count(model, **_):
        calls.append(model.name)

    store.fs.connect()
    events = store.fs.s3.meta.events
    events.register("before-call.s3", count)
    try:
        yield calls
    finally:
        events.unregister("before-call.s3", count)


# -- the contract of every store --------------------------------------------------------------
def test_blob_object(store, tmp_path):
    assert not store.has(BLOB_KEY)
    manifest = store.save(BLOB_KEY, [({"a": [1, 2]}, None)], {"node": "Fit"})
    assert store.has(BLOB_KEY) and manifest["node"] == "Fit"
    store.flush()
    view = other_view(store, tmp_path)
    assert view.has(BLOB_KEY)
    assert view.manifest(BLOB_KEY)["outputs"] == [{"name": "json", "version": 1}]
    assert view.load(BLOB_KEY) == {"a": [1, 2]}
    assert view.verify(BLOB_KEY)["key"] == BLOB_KEY


def test_folder_object_with_several_outputs(store, tmp_path):
    store.save(FOLDER_KEY, [({"a": 1}, None), (np.arange(5), None)], {"node": "Split"})
    view = other_view(store, tmp_path)
    manifest = view.manifest(FOLDER_KEY)
    assert manifest["node"] == "Split"
    assert [o["name"] for o in manifest["outputs"]] == ["json", "numpy"]
    assert view.load(FOLDER_KEY, 0) == {"a": 1}
    np.testing.assert_array_equal(view.load(FOLDER_KEY, 1), np.arange(5))
    with pytest.raises(StoreError, match="has 2 outputs"):
        view.load(FOLDER_KEY, 2)


def test_a_single_array(store, tmp_path):
    store.save(FOLDER_KEY, [(np.linspace(0, 1, 1000), None)], {})
    np.testing.assert_array_equal(other_view(store, tmp_path).load(FOLDER_KEY),
                                  np.linspace(0, 1, 1000))


def test_a_missing_key(store):
    assert not store.has(BLOB_KEY)
    with pytest.raises(StoreError, match="is not in the store"):
        store.load(BLOB_KEY)
    with pytest.raises(StoreError, match="Invalid artifact key"):
        store.has("../../evil")


def test_index_documents(store, tmp_path):
    assert store.read_index("workflow-W") == {}
    store.write_index("workflow-W", {"Fit": {"code": {}}})
    assert other_view(store, tmp_path).read_index("workflow-W") == {"Fit": {"code": {}}}


def test_scratch_of_a_run(store, tmp_path):
    scratch = store.scratch("20250101-run1")
    assert type(scratch) is type(store)
    scratch.save(BLOB_KEY, [(41, None)], {})
    assert other_view(scratch, tmp_path).load(BLOB_KEY) == 41
    assert not store.has(BLOB_KEY) and not other_view(store, tmp_path, "third").has(BLOB_KEY)
    store.remove_scratch("20250101-run1")
    assert not other_view(store.scratch("20250101-run1"), tmp_path, "fourth").has(BLOB_KEY)
    store.remove_scratch("20250101-run1")  # already gone: nothing to do
    with pytest.raises(StoreError, match="Invalid run id"):
        store.scratch("../escape")


# -- what only a remote store does ------------------------------------------------------------
@pytest.fixture
def remote(s3_url: str, tmp_path: Path) -> RemoteStore:
    return RemoteStore(StoreLocation.of(s3_url, cache_dir=tmp_path / "cache"))


@pytest.mark.parametrize(("key", "value", "damaged"), [
    (BLOB_KEY, list(range(100)), f"objects/ab/{BLOB_KEY}.blob"),
    (FOLDER_KEY, np.arange(1000), f"objects/cd/{FOLDER_KEY}/array.npy"),
], ids=["blob", "folder"])
def test_a_truncated_remote_object_is_detected_and_withdrawn(remote, tmp_path, key, value,
                                                               damaged):
    remote.save(key, [(value, None)], {})
    path = f"{remote.url.removeprefix('s3://')}/{damaged}"
    remote.fs.pipe_file(path, remote.fs.cat_file(path)[:-5])
    reader = other_view(remote, tmp_path)
    with pytest.raises(IntegrityError, match="Moved the copy") as caught:
        reader.load(key)
    assert "bytes" in caught.value.message
    assert not reader.has(key) and not other_view(remote, tmp_path, "third").has(key)
    assert remote.fs.find(remote.url + "/quarantine")  # kept for inspection
    assert not list((tmp_path / "other/objects").rglob("*.*"))  # nothing damaged was cached


WRITER = """
import os, sys
import numpy as np
from qflow.config.paths import StoreLocation
from qflow.store.remote import RemoteStore

RemoteStore._commit = lambda self, source, target: os._exit(9)  # killed right before the commit
store = RemoteStore(StoreLocation.of(sys.argv[1], cache_dir=sys.argv[2]))
store.save(sys.argv[3], [({"a": 1}, None), (np.arange(10), None)], {})
"""


def test_a_writer_killed_before_its_commit_leaves_nothing_trusted(s3_url, tmp_path):
    cache = tmp_path / "writer-cache"
    proc = subprocess.run([sys.executable, "-c", WRITER, s3_url, str(cache), FOLDER_KEY],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    reader = RemoteStore(StoreLocation.of(s3_url, cache_dir=tmp_path / "reader-cache"))
    uploaded = reader.fs.find(s3_url)
    assert any(p.endswith("array.npy") for p in uploaded)  # data files went up...
    assert not any(p.endswith("manifest.json") for p in uploaded)  # ...the commit did not
    for store in (reader, RemoteStore(StoreLocation.of(s3_url, cache_dir=cache))):
        assert not store.has(FOLDER_KEY)
        with pytest.raises(StoreError, match="not in the store"):
            store.load(FOLDER_KEY)
    assert list((cache / "tmp").iterdir()) == []  # the dead writer's leftovers are cleaned


def test_an_artifact_is_downloaded_once(remote, tmp_path):
    remote.save(FOLDER_KEY, [({"a": 1}, None), (np.arange(5), None)], {})
    reader = other_view(remote, tmp_path)
    with s3_requests(reader) as calls:
        assert reader.has(FOLDER_KEY)
    assert calls == ["ListObjectsV2"]  # one request to know whether a key is stored
    with s3_requests(reader) as calls:
        reader.load(FOLDER_KEY, 1)
    assert calls.count("GetObject") == 3  # manifest and two files
    same_machine = RemoteStore(reader.location)
    with s3_requests(reader) as calls:
        assert reader.load(FOLDER_KEY, 0) == {"a": 1}
        np.testing.assert_array_equal(same_machine.load(FOLDER_KEY, 1), np.arange(5))
        assert same_machine.has(FOLDER_KEY) and same_machine.manifest(FOLDER_KEY)
    assert calls == []


@pytest.mark.parametrize("value", [Opaque(3), (Opaque(3), 1)], ids=["pickle", "in-a-tuple"])
def test_pickles_from_a_bucket_load_only_when_trusted(remote, tmp_path, value):
    remote.save(BLOB_KEY, [(value, None)], {})
    with pytest.raises(ConfigError, match="cloudpickle") as caught:
        other_view(remote, tmp_path).load(BLOB_KEY)
    assert "paths.trust_pickles: true" in str(caught.value)
    assert "run code" in caught.value.message
    trusted = RemoteStore(StoreLocation.of(remote.url, cache_dir=tmp_path / "trusted",
                                           trust_pickles=True))
    assert trusted.load(BLOB_KEY) == value


def test_open_store_is_memoized_and_locations_travel(s3_url, tmp_path):
    import pickle

    location = StoreLocation.of(s3_url, {"config_kwargs": {"retries": {"max_attempts": 2}}},
                                cache_dir=tmp_path / "cache")
    travelled = pickle.loads(pickle.dumps(location))
    assert travelled == location and hash(travelled) == hash(location)
    assert open_store(travelled) is open_store(location)
    assert isinstance(open_store(location), RemoteStore) and not location.is_local
    assert location.options == {"config_kwargs": {"retries": {"max_attempts": 2}}}
    local = StoreLocation.of(f"file://{tmp_path}/store")
    assert local.is_local and isinstance(open_store(local), Store)
    assert open_store(local).root == tmp_path / "store"


def test_a_bad_url_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="Cannot open the artifact store"):
        RemoteStore(StoreLocation.of("nosuchprotocol://x", cache_dir=tmp_path))


def test_import_qflow_does_not_import_fsspec():
    code = ("import sys, json, qflow, qflow.store.location; "
            "print(json.dumps([m for m in ('fsspec', 's3fs', 'botocore') if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout) == []
