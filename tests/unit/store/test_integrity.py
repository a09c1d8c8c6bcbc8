"""The store's checksums and stamps: a fast hash made while writing, old SHA-256 objects still
verified, and large files read again only when their stamp no longer vouches for them."""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np
import pytest

import qflow.store.local as local
from qflow.artifacts.checksum import file_digest
from qflow.errors import IntegrityError
from qflow.store.local import STAMP_MIN, Store
from tests.storefiles import loosen

KEY = "cd" + "0" * 62
BIG = np.arange(STAMP_MIN // 8 + 1000, dtype="float64")  # just above STAMP_MIN once saved


@pytest.fixture
def hashed(monkeypatch):
    """The files the store hashes from disk, in order."""
    paths: list[str] = []

    def spy(path, algorithm=local.ALGORITHM):
        paths.append(os.path.basename(path))
        return file_digest(path, algorithm)

    monkeypatch.setattr(local, "file_digest", spy)
    return paths


def _to_sha256(manifest_path, folder):
    """Rewrite a manifest as QFlow wrote them before XXH3: SHA-256 checksums, no ``hash``."""
    manifest = json.loads(manifest_path.read_text())
    del manifest["hash"]
    for rel in manifest["files"]:
        manifest["files"][rel][1] = hashlib.sha256((folder / rel).read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))


def test_files_are_hashed_while_written_not_read_back(tmp_path, hashed):
    store = Store(tmp_path)
    manifest = store.save(KEY, [(BIG, None), ({"a": 1}, None)], {})
    assert hashed == []  # numpy and JSON factories hash their bytes on the way to the file
    for rel, (size, digest) in manifest["files"].items():
        path = tmp_path / "objects/cd" / KEY / rel
        assert path.stat().st_size == size and file_digest(path) == digest


def test_a_factory_that_writes_its_own_files_is_hashed_after_save(tmp_path, hashed):
    store = Store(tmp_path)
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    manifest = store.save(KEY, [(source, None)], {})
    assert hashed == ["model.bin"]
    assert manifest["files"]["content/model.bin"][1] == file_digest(source)


def test_old_sha256_objects_are_verified_with_sha256(tmp_path):
    store = Store(tmp_path)
    store.save(KEY, [(np.arange(1000), None)], {})
    folder = tmp_path / "objects/cd" / KEY
    _to_sha256(folder / "manifest.json", folder)
    np.testing.assert_array_equal(Store(tmp_path).load(KEY), np.arange(1000))
    with open(folder / "array.npy", "r+b") as f:
        f.seek(300)
        f.write(b"\x00\x01")
    with pytest.raises(IntegrityError, match="does not match its sha256 checksum"):
        Store(tmp_path).load(KEY)


def test_old_sha256_blobs_are_verified_with_sha256(tmp_path):
    store = Store(tmp_path)
    store.save(KEY, [([1, 2, 3], None)], {})
    blob = loosen(tmp_path, KEY)  # as stores made before the hash field hold it
    header, payload = blob.read_bytes().split(b"\n", 1)
    manifest = json.loads(header)
    del manifest["hash"]
    manifest["files"][".blob"][1] = hashlib.sha256(payload).hexdigest()
    blob.write_bytes(json.dumps(manifest).encode() + b"\n" + payload)
    assert Store(tmp_path).load(KEY) == [1, 2, 3]
    blob.write_bytes(json.dumps(manifest).encode() + b"\n" + payload.replace(b"3", b"4"))
    with pytest.raises(IntegrityError, match="blob does not match its sha256 checksum"):
        Store(tmp_path).load(KEY)


def test_a_synced_large_file_is_stamped_and_not_read_again(tmp_path, hashed):
    store = Store(tmp_path)
    store.save(KEY, [(BIG, None)], {})
    stamp = tmp_path / "stamps/cd" / f"{KEY}.json"
    assert not stamp.exists()  # not durable yet: no stamp
    store.flush()
    assert list(json.loads(stamp.read_text())["files"]) == ["array.npy"]
    np.testing.assert_array_equal(Store(tmp_path).load(KEY), BIG)
    assert hashed == []
    Store(tmp_path).verify(KEY, full=True)  # full: stamps are ignored
    assert hashed == ["array.npy"]


def test_an_unstamped_large_file_is_hashed_once_then_stamped(tmp_path, hashed):
    Store(tmp_path).save(KEY, [(BIG, None)], {})  # the writer never flushed
    reader = Store(tmp_path)
    reader.load(KEY)
    assert hashed == ["array.npy"]
    reader.flush()  # fsyncs the verified file, then stamps it
    Store(tmp_path).load(KEY)
    assert hashed == ["array.npy"]


@pytest.mark.parametrize("change", ["rewrite", "replace", "truncate"])
def test_a_stamped_file_that_changed_is_hashed_and_caught(tmp_path, change):
    store = Store(tmp_path)
    store.save(KEY, [(BIG, None)], {})
    store.flush()
    data = tmp_path / "objects/cd" / KEY / "array.npy"
    time.sleep(0.02)  # past the file system's timestamp granularity
    if change == "rewrite":  # same size, same inode
        with open(data, "r+b") as f:
            f.seek(4096)
            f.write(b"\xff" * 8)
    elif change == "replace":  # same bytes but one, another inode
        content = bytearray(data.read_bytes())
        content[4096] ^= 0xFF
        data.unlink()
        data.write_bytes(bytes(content))
    else:
        os.truncate(data, data.stat().st_size - 8)
    with pytest.raises(IntegrityError, match="array.npy"):
        Store(tmp_path).load(KEY)
    assert not Store(tmp_path).has(KEY)
    assert not (tmp_path / "stamps/cd" / f"{KEY}.json").exists()


def test_a_damaged_stamp_only_costs_a_hash(tmp_path, hashed):
    store = Store(tmp_path)
    store.save(KEY, [(BIG, None)], {})
    store.flush()
    (tmp_path / "stamps/cd" / f"{KEY}.json").write_bytes(b"\x00" * 10)
    np.testing.assert_array_equal(Store(tmp_path).load(KEY), BIG)
    assert hashed == ["array.npy"]


def test_an_unchanged_index_is_not_rewritten(tmp_path):
    store = Store(tmp_path)
    store.write_index("w", {"Fit": {"code": {}}})
    inode = (tmp_path / "index/w.json").stat().st_ino
    store.write_index("w", {"Fit": {"code": {}}})
    assert (tmp_path / "index/w.json").stat().st_ino == inode
    store.write_index("w", {"Fit": {"code": {"x": 1}}})
    assert store.read_index("w") == {"Fit": {"code": {"x": 1}}}
