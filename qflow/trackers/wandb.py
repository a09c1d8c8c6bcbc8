"""The Weights & Biases tracker: offline by default (under ``.qflow/tracker/wandb``, no login,
no network), online when configured with ``mode: online``.

Reading runs back does not need the service: an offline run's ``run-<id>.wandb`` file is
W&B's own record log (LevelDB log framing around protobuf ``Record`` messages), which holds
the run's config, history and summary; QFlow's run record is saved in the run's files.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError
from qflow.runtime.events import RunState
from qflow.trackers.base import MetricPoint, RunData, Tracker

_BLOCK = 32768
_HEADER = 7  # the file starts with ":W&B", a 2-byte magic and a version byte
_RUN_DIR = re.compile(r"^(?:offline-)?run-\d{8}_\d{6}-(.+)$")


def _records(path: Path) -> list[bytes]:
    """The payloads of a W&B record log (LevelDB log format: 32 KiB blocks, 7-byte headers)."""
    data = path.read_bytes()
    if not data.startswith(b":W&B"):
        raise ConfigError(f"{path} is not a W&B record log.")
    out, partial, pos = [], b"", _HEADER
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            partial = chunk
        elif kind == 3:
            partial += chunk
        elif kind == 4:
            out.append(partial + chunk)
            partial = b""
    return out


def _key(item: Any) -> str:
    return item.key or ".".join(item.nested_key)


class WandbTracker(Tracker):
    """Records runs with W&B; ``mode`` is ``offline`` (default), ``online`` or ``disabled``."""

    name = "wandb"

    def __init__(self, folder: Path | str, *, mode: str = "offline", entity: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(folder, **kwargs)
        self.mode = mode
        self.entity = entity
        self._run: Any = None
        self._defined: set[str] = set()

    def start_run(self, run: RunState, tags: dict[str, str]) -> None:
        try:
            import wandb
        except ImportError:
            raise ConfigError("The wandb tracker needs the wandb package.",
                              hint="pip install 'qflow[wandb]', or use another tracker.") from None
        self.folder.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True,
                                  disable_git=True)
        self._run = wandb.init(
            mode=self.mode, dir=str(self.folder), project=self.experiment_name(run).replace("/", "-"),
            entity=self.entity, id=run.run_id, name=run.run_id, group=run.workflow,
            config={"qflow_tags": tags}, settings=settings, reinit="create_new")
        self._tags = dict(tags)

    def log_params(self, params: dict[str, str]) -> None:
        self._run.config.update(params, allow_val_change=True)

    def log_metrics(self, points: list[MetricPoint]) -> None:
        for p in points:
            name = p.name.replace(".", "/")
            if name not in self._defined:
                self._run.define_metric(name, step_metric=f"{name}/step")
                self._defined.add(name)
            self._run.log({name: p.value, f"{name}/step": p.step})

    def set_tags(self, tags: dict[str, str]) -> None:
        self._tags.update(tags)
        self._run.config.update({"qflow_tags": self._tags}, allow_val_change=True)

    def log_artifact(self, path: Path) -> None:
        (Path(self._run.dir) / path.name).write_bytes(path.read_bytes())

    def end_run(self, status: str, error: str | None) -> None:
        self._run.summary["qflow_status"] = status
        if error:
            self._run.summary["qflow_error"] = error[:5000]
        self._run.finish(exit_code=0 if status == "FINISHED" else 1)
        self._run = None

    # -- reading ------------------------------------------------------------------------------
    def _run_dirs(self) -> dict[str, Path]:
        """Run id -> the run's folder (``offline-run-<time>-<id>`` or ``run-<time>-<id>``)."""
        out = {}
        for folder in sorted((self.folder / "wandb").glob("*run-*"), reverse=True):
            match = _RUN_DIR.match(folder.name)
            if match and (folder / f"run-{match.group(1)}.wandb").exists():
                out.setdefault(match.group(1), folder)
        return out

    def read_run(self, run_id: str, experiment_id: str | None = None) -> RunData:
        found = [d for rid, d in self._run_dirs().items() if rid == run_id]
        if not found:
            raise ConfigError(f"W&B has no local run {run_id!r} under {self.folder / 'wandb'}.")
        return self._read(found[0], run_id)

    def _read(self, folder: Path, run_id: str) -> RunData:
        from wandb.proto import wandb_internal_pb2 as pb

        out = RunData(run_id=run_id, status="RUNNING")
        config: dict[str, Any] = {}
        summary: dict[str, Any] = {}
        for payload in _records(folder / f"run-{run_id}.wandb"):
            record = pb.Record()
            record.ParseFromString(payload)
            kind = record.WhichOneof("record_type")
            if kind == "run":
                out.start_time = record.run.start_time.seconds or None
                out.experiment_id = record.run.project
                for item in record.run.config.update:
                    config[_key(item)] = json.loads(item.value_json)
            elif kind == "config":
                for item in record.config.update:
                    config[_key(item)] = json.loads(item.value_json)
            elif kind == "summary":
                for item in record.summary.update:
                    summary[_key(item)] = json.loads(item.value_json)
            elif kind == "history":
                row = {_key(i): json.loads(i.value_json) for i in record.history.item}
                for name, value in row.items():
                    if name.startswith("_") or name.endswith("/step") or f"{name}/step" not in row:
                        continue
                    metric = name.replace("/", ".")
                    out.history.setdefault(metric, []).append(
                        MetricPoint(metric, value, int(row[f"{name}/step"]),
                                    int(row.get("_timestamp", 0) * 1000)))
            elif kind == "exit":
                out.end_time = out.start_time
        out.tags = {k: str(v) for k, v in (config.pop("qflow_tags", None) or {}).items()}
        out.params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()
                      if k != "_wandb"}
        out.status = summary.get("qflow_status", "RUNNING")
        record = folder / "files" / "record.json"
        out.record = json.loads(record.read_bytes()) if record.is_file() else None
        return out

    def list_runs(self, workflow: str | None = None) -> list[RunData]:
        runs = [self._read(folder, rid) for rid, folder in self._run_dirs().items()]
        return [r for r in runs if workflow is None or r.tags.get("qflow.workflow") == workflow]
