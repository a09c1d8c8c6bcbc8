"""Checks of a built graph against the world before any step runs.

Each check is a small function raising one clear error: a provider reading a file that is not
there fails the run before it starts, naming the provider and the path, rather than as the
first step that reads it.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError
from qflow.graph.graph import Graph


def _path_arguments(provider: Any) -> list[Path]:
    """The arguments of ``provider`` that name files: ``Path`` values, and text passed to a
    parameter annotated ``Path``."""
    try:
        signature = inspect.signature(provider.fn, eval_str=True)
        bound = signature.bind_partial(*provider.args, **provider.kwargs)
    except (TypeError, NameError):
        return [a for a in [*provider.args, *provider.kwargs.values()] if isinstance(a, Path)]
    out = []
    for name, value in bound.arguments.items():
        if isinstance(value, Path):
            out.append(value)
        elif isinstance(value, str) and signature.parameters[name].annotation is Path:
            out.append(Path(value))
    return out


def check_provider_paths(graph: Graph, root: Path | None) -> None:
    """Every file or folder a provider reads exists (relative paths from ``root``)."""
    for node in graph.nodes.values():
        if node.kind != "provider":
            continue
        for path in _path_arguments(node.obj):
            full = path if path.is_absolute() or root is None else Path(root) / path
            if not full.exists():
                raise ConfigError(
                    f"The provider '{node.id}' ({node.obj.name}) reads {path}, which does "
                    f"not exist (looked for {full}); no step ran.",
                    hint="Fix the path (relative to the project root) or create the data, e.g. "
                         "with qflow.save(value, path).")
