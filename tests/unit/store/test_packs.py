"""Small objects in packs: what a killed writer or a power cut leaves, compaction, forks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from qflow.errors import IntegrityError
from qflow.store.local import Store
from qflow.store.packs import Packs
from tests.storefiles import record, span


def key(i: int, fill: str = "5") -> str:
    return f"{i:02x}" + fill * 62


WRITER = """
import sys
from qflow.store.local import Store
store = Store(sys.argv[1])
for i in range(int(sys.argv[2])):
    store.save(f"{i:02x}" + "5" * 62, [(list(range(i * 10)), None)], {})
store.flush()
"""


def write_in_another_process(root, n: int) -> None:
    subprocess.run([sys.executable, "-c", WRITER, str(root), str(n)], check=True)


def test_a_record_no_index_line_names_is_not_seen(tmp_path):
    store = Store(tmp_path)
    store.save(key(1), [("kept", None)], {})
    pack, offset, length = span(tmp_path, key(1))
    with open(pack, "ab") as f:  # a writer killed between its record and its index line
        f.write(b'{"key": "' + key(2).encode() + b'"}\nlost')
    assert not Store(tmp_path).has(key(2)) and list(Store(tmp_path).keys()) == [key(1)]
    store.save(key(3), [("after", None)], {})  # the pack's next record follows the lost one
    assert Store(tmp_path).load(key(3)) == "after" and Store(tmp_path).load(key(1)) == "kept"


def test_torn_index_lines_are_skipped_and_later_lines_still_read(tmp_path):
    store = Store(tmp_path)
    store.save(key(1), [(1, None)], {})
    with open(tmp_path / "packs/index", "ab") as f:  # what a power cut may leave
        f.write(b"\0\0\0\0\n" + key(9).encode() + b" half-a-li\n")
    store.save(key(2), [(2, None)], {})
    fresh = Store(tmp_path)
    assert sorted(fresh.keys()) == [key(1), key(2)]
    assert fresh.load(key(1)) == 1 and fresh.load(key(2)) == 2


def test_a_record_that_never_reached_the_disk_reads_as_damaged_and_is_written_again(tmp_path):
    store = Store(tmp_path)
    store.save(key(1), [({"a": 1}, None)], {})
    pack, offset, _ = span(tmp_path, key(1))
    os.truncate(pack, offset)  # its index line survived a power cut, its record did not
    fresh = Store(tmp_path)
    with pytest.raises(IntegrityError, match="unreadable header"):
        fresh.load(key(1))
    assert not fresh.has(key(1)) and not store.has(key(1))  # withdrawn for every reader
    store.save(key(1), [({"a": 1}, None)], {})
    assert Store(tmp_path).load(key(1)) == {"a": 1}


def test_compaction_moves_what_is_named_and_frees_the_rest(tmp_path):
    write_in_another_process(tmp_path, 10)  # a writer that has ended
    live = Store(tmp_path)
    live.save(key(20), [("mine", None)], {})  # a writer still running: left alone
    reader = Store(tmp_path)
    assert reader.load(key(3)) == list(range(30))  # knows where key 3 was
    before = {p.name: p.stat().st_size for p in (tmp_path / "packs").glob("*.pack")}
    gc = Store(tmp_path)
    for i in range(5):
        assert gc.remove(key(i))
    freed = gc.compact()
    after = {p.name: p.stat().st_size for p in (tmp_path / "packs").glob("*.pack")}
    assert f"{live._packs.writer}.pack" in after and len(before) == len(after) == 2
    assert sum(after.values()) == sum(before.values()) - freed and freed > 0
    assert sorted(Store(tmp_path).keys()) == sorted([key(i) for i in range(5, 10)] + [key(20)])
    for i in range(5, 10):
        assert reader.load(key(i)) == list(range(i * 10))  # its pack moved: found again
    assert not reader.has(key(3))
    live.save(key(21), [("after", None)], {})  # appends to the index compaction replaced
    assert Store(tmp_path).load(key(21)) == "after" and Store(tmp_path).load(key(20)) == "mine"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_writes_a_pack_of_its_own(tmp_path):
    store = Store(tmp_path)
    store.save(key(1), [("parent", None)], {})
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            store.save(key(2), [("child", None)], {})
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    store.save(key(3), [("parent again", None)], {})
    fresh = Store(tmp_path)
    assert [fresh.load(key(i)) for i in (1, 2, 3)] == ["parent", "child", "parent again"]
    assert len(list((tmp_path / "packs").glob("*.pack"))) == 2


def test_a_removed_key_of_another_process_is_gone_for_has(tmp_path):
    first, second = Store(tmp_path), Store(tmp_path)
    first.save(key(1), [(1, None)], {})
    assert second.has(key(1)) and second.remove(key(1))
    assert not first.has(key(1))
    assert Packs(tmp_path).keys() == []


def test_gc_frees_the_space_of_the_packed_objects_it_removes(tmp_path):
    from qflow.cache import collect

    store_root = tmp_path / "store"
    write_in_another_process(store_root, 10)
    assert len(list((store_root / "packs").glob("*.pack"))) == 1
    done = collect(Store(store_root), tmp_path / "runs", keep_runs=0)
    assert len(done.removed) == 10 and list(Store(store_root).keys()) == []
    assert list((store_root / "packs").glob("*.pack")) == []


def test_a_key_stored_both_ways_is_listed_once_and_removed_whole(tmp_path):
    store = Store(tmp_path)
    store.save(key(1), [("value", None)], {})
    loose = tmp_path / "objects" / key(1)[:2] / f"{key(1)}.blob"  # as a download leaves it
    loose.parent.mkdir(parents=True)
    loose.write_bytes(record(tmp_path, key(1)))
    assert list(store.keys()) == [key(1)] and Store(tmp_path).load(key(1)) == "value"
    assert store.remove(key(1)) and not store.has(key(1)) and not loose.exists()


def test_no_index_line_is_lost_while_compaction_replaces_the_index(tmp_path):
    write_in_another_process(tmp_path, 20)  # an ended writer: its pack is what gets compacted
    gc = Store(tmp_path)
    for i in range(10):
        gc.remove(key(i))
    writer = subprocess.Popen([sys.executable, "-c", """
import sys
from qflow.store.local import Store
store = Store(sys.argv[1])
for i in range(400):
    store.save(f"{i:03x}" + "7" * 61, [(i, None)], {})
store.flush()
""", str(tmp_path)])
    while writer.poll() is None:  # compact over and over while the writer appends
        gc.compact()
    assert writer.returncode == 0
    gc.compact()
    fresh = Store(tmp_path)
    assert [fresh.load(f"{i:03x}" + "7" * 61) for i in range(400)] == list(range(400))
    assert [fresh.load(key(i)) for i in range(10, 20)] == [list(range(i * 10)) for i in range(10, 20)]
    assert len(list(fresh.keys())) == 410


def test_a_key_another_writer_packed_first_keeps_its_record_and_costs_no_second(tmp_path):
    first, second = Store(tmp_path), Store(tmp_path)
    first.save(key(1), [("first", None)], {})
    second.save(key(1), [("second", None)], {})  # computed meanwhile: the first publisher wins
    pack, _, _ = span(tmp_path, key(1))
    assert [p.name for p in (tmp_path / "packs").glob("*.pack")] == [pack.name]
    assert (tmp_path / "packs/index").read_text().count(key(1)) == 1
    assert second.load(key(1)) == "first" and Store(tmp_path).load(key(1)) == "first"


def test_a_loose_object_another_store_writes_later_is_found(tmp_path):
    import numpy as np

    reader, writer = Store(tmp_path), Store(tmp_path)
    assert not reader.has(key(1))  # before the folder of loose objects exists
    writer.save(key(1), [(np.zeros(20_000), None)], {})  # larger than a pack takes
    assert (tmp_path / "objects").is_dir() and reader.has(key(1))
    writer.save(key(2), [(np.ones(20_000), None)], {})
    assert reader.has(key(2)) and not reader.has(key(3))
