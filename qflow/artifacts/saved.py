"""Artifacts saved outside the store, in a folder of their own: ``qflow.save`` / ``qflow.load``.

The folder holds the factory's files and ``qflow-artifact.json`` naming the factory, so
``providers.factory_load(path)`` can read it back as a workflow input.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from qflow.artifacts.registry import FactoryRegistry, default_registry
from qflow.errors import FactoryError

SPEC = "qflow-artifact.json"


def save(obj: Any, path: Path | str, *, registry: FactoryRegistry | None = None) -> Path:
    """Save ``obj`` into the folder ``path`` (replaced if it exists) with the factory that fits."""
    registry = registry or default_registry
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    chosen = registry.for_value(obj)
    chosen.save(obj, tmp)
    (tmp / SPEC).write_text(json.dumps(chosen.spec()))
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def load(path: Path | str, *, registry: FactoryRegistry | None = None) -> Any:
    """Load what ``save`` wrote into ``path``."""
    registry = registry or default_registry
    folder = Path(path)
    try:
        spec = json.loads((folder / SPEC).read_text())
    except FileNotFoundError:
        raise FactoryError(
            f"{folder} is not a saved artifact (no {SPEC} in it).",
            hint="Create it with qflow.save(obj, path), or load the file with your own provider.",
        ) from None
    return registry.from_spec(spec).load(folder)
