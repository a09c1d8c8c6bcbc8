"""Built-in providers: sources of workflow inputs (``from qflow import providers``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qflow.dsl.decorators import provider


@provider(cache=False)
def factory_load(path: Path) -> Any:
    """Load an artifact saved with ``qflow.save`` (a folder written by a factory).

    Its cache key fingerprints the folder's files, so replacing the data re-runs what uses it;
    its value is read only when a step that uses it must run.
    """
    from qflow.artifacts.saved import load

    return load(path)


@provider(cache=False)
def file(path: Path) -> Path:
    """A file or folder the steps read themselves; they receive its absolute path.

    The cache key fingerprints it (size and modification time of every file), so editing the
    data re-runs the steps that read it.
    """
    return Path(path)


__all__ = ["factory_load", "file"]
