"""Lines written in batches: each reaches its file within the flush interval, all on close."""

from __future__ import annotations

import time

import pytest

from qflow.runtime.lines import FLUSH_INTERVAL, LineFile


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
