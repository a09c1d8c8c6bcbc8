"""Views the environment adds to every run: registered once, given every event, and the
console beside them prints plain lines to standard output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import qflow
from qflow.runtime.events import Observer
from qflow.runtime.views import add_view, remove_view, views


@qflow.step
class Count:
    def apply(self, n: int) -> int:
        bar = qflow.ProgressBar("items", total=n)
        for _ in range(n):
            bar.update(1)
        return n


@qflow.workflow
class Counting:
    def run(self, n: int = 3) -> int:
        return Count().apply(n)


class Recorder(Observer):
    """Notes the hooks it sees."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def run_started(self, **_: Any) -> None:
        self.seen.append("run_started")

    def node_info(self, *, info: Any, **_: Any) -> None:
        self.seen.append(f"info {info.done:g}")

    def node_finished(self, *, node: Any, **_: Any) -> None:
        self.seen.append(f"{node.id} {node.status}")

    def run_finished(self, *, run: Any, **_: Any) -> None:
        self.seen.append(f"run {run.status}")


@pytest.fixture
def recorders() -> Any:
    made: list[Recorder] = []

    def factory() -> Recorder:
        made.append(Recorder())
        return made[-1]

    add_view(factory)
    add_view(factory)  # added once
    try:
        yield made
    finally:
        remove_view(factory)
    assert views() == []


def test_every_run_gets_a_fresh_view_and_the_console_prints_to_stdout(
        recorders: list[Recorder], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    qflow.run(Counting(), root=tmp_path)
    out = capsys.readouterr()
    assert len(recorders) == 1
    assert recorders[0].seen == ["run_started", "n input", "info 1", "info 2", "info 3",
                                 "Count ran", "run succeeded"]
    assert "Run " in out.out and "succeeded" in out.out and "result: 3" in out.out
    assert "file: experiment 'Counting'" in out.out  # the tracker's line too
    assert out.err == ""  # no tqdm bar, nothing in the red box of a notebook

    qflow.run(Counting(), root=tmp_path)
    assert len(recorders) == 2 and "Count cached" in recorders[1].seen


def test_without_a_view_the_console_writes_to_stderr(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    assert views() == []
    qflow.run(Counting(), root=tmp_path)
    out = capsys.readouterr()
    assert "succeeded" in out.err and out.out == ""


def test_no_console_no_view(recorders: list[Recorder], tmp_path: Path) -> None:
    qflow.run(Counting(), root=tmp_path, console=False)
    assert recorders == []


def test_a_factory_may_decline_a_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    def nothing() -> None:
        return None

    add_view(nothing)
    try:
        qflow.run(Counting(), root=tmp_path)
    finally:
        remove_view(nothing)
    assert "succeeded" in capsys.readouterr().err  # no view: the terminal console
