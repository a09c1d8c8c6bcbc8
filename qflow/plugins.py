"""One small registry for every plugin family (trackers, launchers, tuners, factories).

Built-ins are dotted paths (``"qflow.trackers.file:FileTracker"``); third-party packages add
entries through the entry-point group named after the family (``qflow.trackers``). Listing
names imports nothing but package metadata; ``Registry.get`` imports on first use.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from qflow.errors import ConfigError

T = TypeVar("T")


def load_object(path: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Named plugins of one family, built-in or from the ``group`` entry points."""

    def __init__(self, group: str, builtins: dict[str, str], *, extra: str = "") -> None:
        self.group = group
        self._paths = dict(builtins)
        self._loaded: dict[str, T] = {}
        self._discovered = False
        self._extra = extra

    def register(self, name: str, obj: T | str) -> None:
        """Add ``obj`` (or a dotted path to it) under ``name``; replaces an earlier entry."""
        self._loaded.pop(name, None)
        if isinstance(obj, str):
            self._paths[name] = obj
        else:
            self._paths.pop(name, None)
            self._loaded[name] = obj

    def _discover(self) -> None:
        if not self._discovered:
            self._discovered = True
            for ep in entry_points(group=self.group):
                self._paths.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        """Every registered name, sorted; imports no plugin."""
        self._discover()
        return sorted({*self._paths, *self._loaded})

    def get(self, name: str) -> T:
        """The plugin registered as ``name``, imported on first use."""
        if name in self._loaded:
            return self._loaded[name]
        self._discover()
        if name not in self._paths:
            hint = f"pip install {self._extra}" if self._extra else None
            raise ConfigError(
                f"Unknown {self.group.split('.')[-1][:-1]} {name!r}; "
                f"available: {', '.join(self.names()) or 'none'}.",
                hint=hint or f"Install a package that provides it in the '{self.group}' entry-point group.",
            )
        try:
            obj = load_object(self._paths[name])
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"The {self.group} plugin {name!r} ({self._paths[name]}) cannot be loaded: {exc}.",
                hint="Reinstall the package that provides it, or uninstall it.") from None
        self._loaded[name] = obj
        return obj
