"""The file tracker: each run as JSON lines, with no dependency and no server.

``<data>/tracker/file/<run_id>.jsonl`` gets one line when the run starts (parameters, tags),
one per finished node (status, duration, its metrics in one batch) and one when it ends
(status, labelled metrics, result, error).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from qflow.runtime.events import NodeRun, Observer, RunState


class FileTracker(Observer):
    """Writes runs as JSON lines under ``folder``."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self._files: dict[str, Any] = {}

    def path(self, run_id: str) -> Path:
        """The JSON-lines file of run ``run_id``."""
        return self.folder / f"{run_id}.jsonl"

    def _write(self, run: RunState, event: dict[str, Any]) -> None:
        f = self._files.get(run.run_id)
        if f is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            f = self._files[run.run_id] = open(self.path(run.run_id), "a", encoding="utf-8")
        f.write(json.dumps(event, default=repr) + "\n")

    def run_started(self, *, run: RunState, **_: Any) -> None:
        self._write(run, {"event": "start", "run_id": run.run_id, "workflow": run.workflow,
                          "time": run.started, "parameters": run.parameters})

    def node_finished(self, *, run: RunState, node: NodeRun, **_: Any) -> None:
        self._write(run, {"event": "node", "node": node.id, "status": node.status,
                          "duration": node.duration, "metrics": node.metrics,
                          "reasons": node.reasons})

    def run_finished(self, *, run: RunState, **_: Any) -> None:
        self._write(run, {"event": "end", "status": run.status, "time": run.ended,
                          "metrics": run.metrics, "result": repr(run.result)[:1000],
                          "error": run.error, "failed_step": run.failed_step})
        f = self._files.pop(run.run_id, None)
        if f is not None:
            f.flush()
            os.fsync(f.fileno())
            f.close()

    @staticmethod
    def read(path: Path | str) -> list[dict[str, Any]]:
        """The events of one run file, in order."""
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
