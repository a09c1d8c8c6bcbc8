"""Built-in providers: sources of workflow inputs (``from qflow import providers``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
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


@provider(cache=False)
def read(path: Path, loader: str, args: dict[str, Any] | None = None) -> Any:
    """A file read by any importable callable: ``read(Path("data/a.csv"), "pandas.read_csv")``.

    ``loader`` names the callable (``pandas.read_excel``, ``package.module:function``); it is
    called as ``loader(path, **args)`` with the absolute path. The cache key fingerprints the
    file (size and modification time), the loader's name and ``args``; the file is read only
    when a step that uses it must run. A config input ``{path: ..., load: ..., args: ...}``
    becomes this provider.
    """
    return import_loader(loader)(path, **(args or {}))


def import_loader(name: str) -> Callable[..., Any]:
    """The callable ``name`` names: ``pandas.read_csv`` or ``package.module:attribute``.

    Raises:
        ImportError: no module of ``name`` can be imported.
        AttributeError: the module has no such attribute.
        TypeError: what ``name`` names cannot be called.
    """
    if ":" in name:
        module_name, _, attr = name.partition(":")
        found: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            found = getattr(found, part)
    else:
        parts = name.split(".")
        for cut in range(len(parts) - 1, 0, -1):  # the longest importable module prefix
            module_name = ".".join(parts[:cut])
            try:
                found = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name is None or not f"{module_name}.".startswith(f"{exc.name}."):
                    raise  # the module exists but imports something missing
                continue
            for part in parts[cut:]:
                found = getattr(found, part)
            break
        else:
            raise ImportError(f"no module named {parts[0]!r}")
    if not callable(found):
        raise TypeError(f"{name} is a {type(found).__name__}, not a callable")
    return found


__all__ = ["factory_load", "file", "import_loader", "read"]
