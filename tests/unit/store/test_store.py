from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from qflow.errors import IntegrityError, StoreError
from qflow.store.local import PACK_MAX, Store
from tests.storefiles import loosen, overwrite, record, span

KEY = "ab" + "0" * 62


def test_save_has_load_and_manifest(tmp_path):
    store = Store(tmp_path / "store")
    assert not store.has(KEY)
    store.save(KEY, [({"a": 1}, None), (np.arange(5), None)], {"node": "Split", "metrics": []})
    assert store.has(KEY)
    store.flush()
    assert (tmp_path / "store/objects/ab" / KEY / "manifest.json").is_file()
    fresh = Store(tmp_path / "store")  # another process's view: verifies checksums on load
    assert fresh.load(KEY, 0) == {"a": 1}
    np.testing.assert_array_equal(fresh.load(KEY, 1), np.arange(5))
    manifest = fresh.manifest(KEY)
    assert manifest["node"] == "Split" and [o["name"] for o in manifest["outputs"]] == ["json", "numpy"]
    assert manifest["hash"] == "xxh3_128"
    assert all(len(digest) == 32 for _, digest in manifest["files"].values())
    with pytest.raises(StoreError, match="has 2 outputs"):
        fresh.load(KEY, 2)


def test_nothing_is_left_in_tmp_after_commit(tmp_path):
    store = Store(tmp_path)
    for i in range(20):
        store.save(f"{i:02x}" + "1" * 62, [(i, None)], {})
    store.flush()
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "objects").exists()  # small values: packed, no file each
    assert [p.name for p in (tmp_path / "packs").iterdir() if p.suffix == ".pack"] == [
        f"{store._packs.writer}.pack"]
    assert sorted(Store(tmp_path).keys()) == sorted(f"{i:02x}" + "1" * 62 for i in range(20))


def test_blob_objects_are_checked_too(tmp_path):
    store = Store(tmp_path)
    store.save(KEY, [({"weights": list(range(100))}, None)], {"node": "Fit"})
    pack, offset, length = span(tmp_path, KEY)
    assert store.manifest(KEY)["node"] == "Fit" and pack.stat().st_size == offset + length
    os.truncate(pack, pack.stat().st_size - 5)  # the pack's last record loses its end
    with pytest.raises(IntegrityError, match="blob has"):
        Store(tmp_path).load(KEY)
    assert not store.has(KEY)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "delete"])
def test_damaged_artifact_is_detected_and_quarantined(tmp_path, damage):
    store = Store(tmp_path)
    store.save(KEY, [(np.arange(1000, dtype="int64"), None)], {})
    store.flush()
    data = tmp_path / "objects/ab" / KEY / "array.npy"
    if damage == "truncate":
        os.truncate(data, data.stat().st_size // 2)
    elif damage == "flip":
        with open(data, "r+b") as f:
            f.seek(200)
            byte = f.read(1)
            f.seek(200)
            f.write(bytes([byte[0] ^ 0xFF]))
    elif damage == "empty":
        os.truncate(data, 0)
    else:
        data.unlink()
    fresh = Store(tmp_path)
    with pytest.raises(IntegrityError, match="file array.npy"):
        fresh.load(KEY)
    assert not fresh.has(KEY)
    assert len(list((tmp_path / "quarantine").iterdir())) == 1


def test_unreadable_manifest_or_header_is_an_integrity_error(tmp_path):
    store = Store(tmp_path)
    store.save(KEY, [(np.arange(3), None)], {})
    (tmp_path / "objects/ab" / KEY / "manifest.json").write_text("{broken json")
    with pytest.raises(IntegrityError, match="manifest.json"):
        Store(tmp_path).load(KEY)
    store.save(KEY, [(1, None)], {})
    overwrite(tmp_path, KEY, b"[" + record(tmp_path, KEY)[1:])
    with pytest.raises(IntegrityError, match="unreadable header"):
        Store(tmp_path).load(KEY)
    store.save(KEY, [(1, None)], {})
    loosen(tmp_path, KEY).write_bytes(b'{"broken": \n1')
    with pytest.raises(IntegrityError, match="unreadable header"):
        Store(tmp_path).load(KEY)
    assert len(list((tmp_path / "quarantine").iterdir())) == 3


def test_invalid_keys_never_become_paths(tmp_path):
    store = Store(tmp_path)
    for key in ["../../evil", "/abs", "ABCDEF0123", "short"]:
        with pytest.raises(StoreError, match="Invalid artifact key"):
            store.has(key)


def test_leftovers_of_dead_writers_are_removed(tmp_path):
    Store(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    from qflow.store.atomic import HOST as _HOST

    leftover = tmp_path / "tmp" / f"{dead}-{_HOST}-deadbeef"
    leftover.mkdir()
    mine = tmp_path / "tmp" / f"{os.getpid()}-{_HOST}-cafe"
    mine.mkdir()
    other_machine = tmp_path / "tmp" / f"{dead}-elsewhere-cafe"
    other_machine.mkdir()
    Store(tmp_path)
    assert not leftover.exists() and mine.exists() and other_machine.exists()


WRITER = """
import sys
from qflow.store.local import Store
store = Store(sys.argv[1])
for i in range(30):
    store.save(f"{i:02x}" + "2" * 62, [(list(range(i * 100)), None)], {"writer": sys.argv[2]})
store.flush()
"""


def test_concurrent_writers_of_the_same_keys(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(n)])
             for n in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    store = Store(tmp_path)
    assert sorted(store.keys()) == sorted(f"{i:02x}" + "2" * 62 for i in range(30))
    assert 1 <= len(list((tmp_path / "packs").glob("*.pack"))) <= 4  # a writer per process
    for i in range(30):
        assert store.load(f"{i:02x}" + "2" * 62) == list(range(i * 100))
    assert list((tmp_path / "tmp").iterdir()) == []


def test_index_documents(tmp_path):
    store = Store(tmp_path)
    assert store.read_index("w") == {}
    store.write_index("w", {"Fit": {"code": {}}})
    assert store.read_index("w") == {"Fit": {"code": {}}}
    (tmp_path / "index/w.json").write_text("{oops")
    assert store.read_index("w") == {}


def test_an_artifact_of_an_older_factory_format_is_recomputed_not_fatal(tmp_path):
    store = Store(tmp_path)
    store.save(KEY, [([1, 2], None)], {})
    overwrite(tmp_path, KEY, record(tmp_path, KEY).replace(b'"version":1', b'"version":0', 1))
    with pytest.raises(IntegrityError, match="cannot be read any more"):
        Store(tmp_path).load(KEY)
    assert not store.has(KEY)


def test_the_first_publisher_of_a_blob_wins_and_it_never_changes(tmp_path):
    """A second writer of the same key (other bytes: a set pickled under another hash seed)
    leaves the object alone, so a reader opening it twice reads one writer's bytes."""
    first, second = Store(tmp_path), Store(tmp_path)
    first.save(KEY, [(b"first", None)], {"writer": 1})
    second.save(KEY, [(b"other", None)], {"writer": 2})
    assert Store(tmp_path).load(KEY) == b"first" and second.load(KEY) == b"first"
    assert list((tmp_path / "tmp").iterdir()) == []
    big = "cd" + "0" * 62  # a blob too large for the pack: its own file
    first.save(big, [(b"1" * PACK_MAX, None)], {"writer": 1})
    blob = tmp_path / "objects/cd" / f"{big}.blob"
    inode = blob.stat().st_ino
    second.save(big, [(b"2" * PACK_MAX, None)], {"writer": 2})
    assert blob.stat().st_ino == inode and Store(tmp_path).load(big) == b"1" * PACK_MAX
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("errno_, message", [
    (27, "hit the largest file size"), (28, "disk is full"), (5, r"failed \(OSError")])
def test_a_failed_write_is_a_store_error_and_leaves_nothing(tmp_path, monkeypatch, errno_,
                                                            message):
    from qflow.artifacts.numpy import NumpyFactory

    def full(self, value, folder):
        (folder / "part.npy").write_bytes(b"half")
        raise OSError(errno_, os.strerror(errno_))

    monkeypatch.setattr(NumpyFactory, "save", full)
    store = Store(tmp_path)
    with pytest.raises(StoreError, match=message) as info:
        store.save(KEY, [(np.ones(3), None)], {})
    assert "the next run reuses the steps that finished" in info.value.hint
    assert not store.has(KEY) and list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "objects").exists() or not list((tmp_path / "objects").rglob("*.*"))


def test_keys_sizes_and_removal(tmp_path):
    store = Store(tmp_path)
    blob, folder = "cd" + "2" * 62, "ef" + "3" * 62
    store.save(blob, [(b"x" * 100, None)], {"node": "A"})
    store.save(folder, [(np.arange(10), None), ({"b": 2}, None)], {"node": "B"})
    (tmp_path / "objects" / "ab").mkdir()
    (tmp_path / "objects" / "ab" / KEY).mkdir()  # a folder without its manifest: not committed
    assert sorted(store.keys()) == [blob, folder]
    assert store.size(blob) == len(record(tmp_path, blob)) > 100
    files = [p for p in (tmp_path / "objects/ef" / folder).rglob("*") if p.is_file()]
    assert store.size(folder) == sum(p.stat().st_size for p in files) > 80
    assert store.remove(folder) and store.remove(blob)
    assert not store.has(folder) and not store.has(blob) and list(store.keys()) == []
    assert not store.remove(blob)
    assert list((tmp_path / "tmp").iterdir()) == []  # the removed folder went aside, then away


def test_a_read_only_store_creates_and_writes_nothing(tmp_path):
    store = Store(tmp_path / "store", read_only=True)
    assert not (tmp_path / "store").exists() and list(store.keys()) == []
    assert not store.has(KEY) and store.read_index("w") == {}
    for write in (lambda: store.save(KEY, [(1, None)], {}), lambda: store.write_index("w", {}),
                  lambda: store.remove(KEY), lambda: store.quarantine(KEY)):
        with pytest.raises(StoreError, match="opened read-only"):
            write()
    assert not (tmp_path / "store").exists()


def test_the_store_lock_is_shared_by_runs_and_exclusive_for_gc(tmp_path):
    store = Store(tmp_path)
    probe = ("import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR)\n"
             "try:\n    fcntl.flock(fd, fcntl.LOCK_{} | fcntl.LOCK_NB)\n    print('free')\n"
             "except BlockingIOError:\n    print('held')\n")

    def other(kind: str) -> str:
        return subprocess.run([sys.executable, "-c", probe.format(kind), str(tmp_path / "lock")],
                              capture_output=True, text=True, check=True).stdout.strip()

    with store.lock(shared=True):
        assert other("SH") == "free" and other("EX") == "held"
    with store.lock():
        assert other("SH") == "held"
    assert other("EX") == "free"
