"""Factories made on the fly for ``tuple[...]``, ``list[T]``, ``dict[str, T]`` and ``Optional[T]``.

Each element is saved in a numbered sub-folder by its own factory (chosen from the
annotation, or from the element's type), and ``meta.json`` records which one, so loading
needs no annotation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.artifacts.base import Factory

if TYPE_CHECKING:
    from qflow.artifacts.registry import FactoryRegistry

KINDS = ("tuple", "list", "dict", "optional")


class CompositeFactory(Factory):
    """A container of artifacts, each saved by the factory that fits it."""

    def __init__(self, registry: FactoryRegistry, kind: str, items: list[Factory | None]) -> None:
        self.registry = registry
        self.kind = kind
        self.items = items

    @property  # type: ignore[override]
    def name(self) -> str:  # type: ignore[override]
        return self.kind

    @property
    def ident(self) -> str:
        inner = ",".join(f.ident if f else "*" for f in self.items)
        return f"{self.kind}[{inner}]@{self.version}"

    def _item_factory(self, index: int) -> Factory | None:
        if self.kind == "tuple":
            return self.items[index] if index < len(self.items) else None
        return self.items[0] if self.items else None

    def accepts(self, obj: Any) -> bool:
        if self.kind == "tuple":
            return isinstance(obj, tuple) and (not self.items or len(obj) == len(self.items))
        if self.kind == "list":
            return isinstance(obj, list)
        if self.kind == "dict":
            return isinstance(obj, dict) and all(isinstance(k, str) for k in obj)
        return True

    def _entries(self, obj: Any) -> tuple[list[str] | None, list[Any]]:
        if self.kind == "dict":
            return list(obj), list(obj.values())
        if self.kind == "optional":
            return None, [] if obj is None else [obj]
        return None, list(obj)

    def save(self, obj: Any, path: Path) -> None:
        keys, values = self._entries(obj)
        specs = []
        for i, value in enumerate(values):
            chosen = self._item_factory(i)
            if chosen is None or not chosen.accepts(value):
                chosen = self.registry.for_value(value)
            (path / str(i)).mkdir()
            chosen.save(value, path / str(i))
            specs.append(chosen.spec())
        meta = {"items": specs, "keys": keys}
        (path / "meta.json").write_text(json.dumps(meta))

    def load(self, path: Path) -> Any:
        meta = json.loads((path / "meta.json").read_text())
        values = [
            self.registry.from_spec(spec).load(path / str(i))
            for i, spec in enumerate(meta["items"])
        ]
        if self.kind == "dict":
            return dict(zip(meta["keys"], values, strict=True))
        if self.kind == "optional":
            return values[0] if values else None
        return tuple(values) if self.kind == "tuple" else values
