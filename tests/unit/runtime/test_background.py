"""Background work: lines reach their file within the flush interval (all of them on close or
at exit), and a record is synced soon after it is written, at the latest at exit."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from qflow.runtime import background
from qflow.runtime.background import FLUSH_INTERVAL, LineFile, finish, sync_soon


def test_a_line_reaches_the_file_within_the_interval_without_a_flush(tmp_path):
    lines = LineFile(tmp_path / "deep/events.jsonl")
    lines.write("one\n")
    lines.write("two\n")
    assert not (tmp_path / "deep/events.jsonl").exists()  # queued, not written line by line
    deadline = time.monotonic() + 10 * FLUSH_INTERVAL
    while time.monotonic() < deadline and not (tmp_path / "deep/events.jsonl").exists():
        time.sleep(FLUSH_INTERVAL / 10)
    assert (tmp_path / "deep/events.jsonl").read_text() == "one\ntwo\n"
    lines.write("three\n")
    time.sleep(3 * FLUSH_INTERVAL)
    assert (tmp_path / "deep/events.jsonl").read_text() == "one\ntwo\nthree\n"
    lines.close()


def test_close_writes_every_line_in_order_and_a_later_line_appends(tmp_path):
    path = tmp_path / "nodes.jsonl"
    lines = LineFile(path)
    for i in range(1000):
        lines.write(f"{i}\n")
    lines.close()
    assert path.read_text().splitlines() == [str(i) for i in range(1000)]
    lines.write("again\n")
    lines.close()
    assert path.read_text().splitlines()[-1] == "again"


def test_a_batch_the_background_thread_could_not_write_is_reported_on_close(tmp_path):
    (tmp_path / "file").write_text("")
    lines = LineFile(tmp_path / "file/below")  # a file where a folder is needed
    lines.write("lost\n")
    time.sleep(3 * FLUSH_INTERVAL)
    with pytest.raises(OSError):
        lines.close()


def test_what_is_queued_is_done_when_the_interpreter_exits(tmp_path):
    code = ("import sys; from pathlib import Path; from qflow.runtime.background import LineFile;"
            "LineFile(Path(sys.argv[1])).write('last words\\n')")  # never closed
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "lines")], check=True)
    assert (tmp_path / "lines").read_text() == "last words\n"


def test_a_file_queued_for_syncing_is_synced_with_its_folder(tmp_path, monkeypatch):
    synced: list[tuple[int, int]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append((os.fstat(fd).st_ino, os.fstat(fd).st_dev))
        real(fd)

    path = tmp_path / "record.json"
    path.write_text("{}")
    monkeypatch.setattr(background.os, "fsync", fsync)
    sync_soon(path)
    sync_soon(tmp_path / "gone.json")  # removed meanwhile: nothing to do, no error
    finish()
    inode = lambda p: (os.stat(p).st_ino, os.stat(p).st_dev)  # noqa: E731
    assert synced == [inode(path), inode(tmp_path)]
