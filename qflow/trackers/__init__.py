"""Trackers: sinks of runs (parameters, metrics, status), registered by name.

:func:`create` is the one place a tracker is made from its name, the project's paths and its
settings; launchers, the tuner and :mod:`qflow.api` all go through it. A deferred tracker
(MLflow) is not started in a launcher's run: :mod:`qflow.trackers.sync` records the run into it
once the run ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from qflow.plugins import Registry

if TYPE_CHECKING:
    from qflow.config.paths import Paths
    from qflow.trackers.base import Tracker

trackers: Registry[type] = Registry("qflow.trackers", {
    "file": "qflow.trackers.file:FileTracker",
    "mlflow": "qflow.trackers.mlflow:MlflowTracker",
    "wandb": "qflow.trackers.wandb:WandbTracker",
})


def create(name: str, paths: Paths, settings: dict[str, Any] | None = None, *,
           announce: bool = True, stream: TextIO | None = None) -> Tracker:
    """The tracker ``name`` keeping its data under ``paths.tracker/name``.

    Args:
        settings: the tracker's own settings (``tracking_uri``, ``project``, ``experiment``,
            ``parent``...), passed to its constructor as keywords.
        announce: whether it may print where to look at runs.
        stream: where it prints that (standard error by default).
    """
    cls: Any = trackers.get(name)
    tracker: Tracker = cls(paths.tracker / name, **dict(settings or {}))
    tracker.record_dir = paths.runs
    tracker.announce = announce
    tracker.stream = stream
    return tracker


__all__ = ["create", "trackers"]
