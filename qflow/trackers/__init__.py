"""Trackers: sinks of runs (parameters, metrics, status), registered by name."""

from qflow.plugins import Registry

trackers: Registry[type] = Registry("qflow.trackers", {
    "file": "qflow.trackers.file:FileTracker",
    "mlflow": "qflow.trackers.mlflow:MlflowTracker",
    "wandb": "qflow.trackers.wandb:WandbTracker",
})

__all__ = ["trackers"]
