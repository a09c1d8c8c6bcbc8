"""Launchers: where a workflow's nodes compute (in this process, on Dask, in a kernel)."""

from qflow.plugins import Registry

launchers: Registry[type] = Registry(
    "qflow.launchers", {"local": "qflow.launchers.local:LocalLauncher",
                        "dask": "qflow.launchers.dask:DaskLauncher",
                        "papermill": "qflow.launchers.papermill:PapermillLauncher"}
)

__all__ = ["launchers"]
