"""The console view of a run: a line per step (ran, cached, inline, failed, with why) and tqdm
bars."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from qflow.runtime.events import NodeRun, Observer, RunState
from qflow.runtime.info import Progress, RuntimeInfo

_MARKS = {"ran": "ran   ", "cached": "cached", "inline": "inline", "failed": "FAILED",
          "skipped": "skip  "}


def _seconds(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


class Console(Observer):
    """Prints a run's progress to a terminal (or any text stream).

    Args:
        stream: where the lines go; standard error by default, so a program's own output
            stays clean (a notebook's live view passes standard output instead).
        bars: show ``Progress`` as tqdm bars; off where something else shows them.
    """

    def __init__(self, stream: TextIO | None = None, *, bars: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.bars = bars
        self._bars: dict[tuple[str, str], Any] = {}

    def _print(self, text: str) -> None:
        if self._bars:
            from tqdm import tqdm

            tqdm.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def run_started(self, *, run: RunState, **_: Any) -> None:
        steps = sum(1 for n in run.nodes.values() if n.kind == "step")
        what = "a notebook" if run.kind == "notebook" else f"{steps} step{'s' * (steps != 1)}"
        self._print(f"Run {run.run_id} of {run.workflow} ({what})")

    def node_info(self, *, run: RunState, node: NodeRun, info: RuntimeInfo, **_: Any) -> None:
        if not self.bars or not isinstance(info, Progress):
            return
        from tqdm import tqdm

        bar = self._bars.get((node.id, info.name))
        if bar is None:
            bar = self._bars[(node.id, info.name)] = tqdm(
                total=info.total, desc=f"{node.id}: {info.name}", file=self.stream, leave=False,
                dynamic_ncols=True, mininterval=0.2, disable=None)
        bar.n = info.done
        if info.message:
            bar.set_postfix_str(info.message, refresh=False)
        bar.refresh() if bar.n == info.total else bar.update(0)

    def node_finished(self, *, run: RunState, node: NodeRun, **_: Any) -> None:
        for key in [k for k in self._bars if k[0] == node.id]:
            self._bars.pop(key).close()
        if node.kind == "input":
            return
        line = f"  {_MARKS.get(node.status, node.status):6} {node.id}"
        if node.status == "ran":
            line += f"  {_seconds(node.duration)}  ({'; '.join(node.reasons)})"
        elif node.status == "inline":
            line += "  (not stored: read inside the steps that use it)"
        self._print(line)

    def run_finished(self, *, run: RunState, **_: Any) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
        counts = run.counts()
        summary = summarise(counts)
        if run.status == "succeeded":
            self._print(f"Run {run.run_id} succeeded in {_seconds(run.duration)} ({summary})")
            for label, value in run.metrics.items():
                self._print(f"  {label} = {value:g}" if isinstance(value, (int, float))
                            else f"  {label} = {value!r}")
            self._print(f"  result: {_short(run.result)}")
        else:
            self._print(f"Run {run.run_id} {run.status} ({summary})")


def summarise(counts: dict[str, int]) -> str:
    """``"2 ran, 1 cached"``, with ``", 1 inline"`` when uncached providers were read."""
    text = f"{counts.get('ran', 0)} ran, {counts.get('cached', 0)} cached"
    return text + (f", {counts['inline']} inline" if counts.get("inline") else "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."
