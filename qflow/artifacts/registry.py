"""The factory registry: which factory saves a value, found by annotation or by type.

Lookup order: the step's return annotation (composites built on the fly for ``tuple``,
``list``, ``dict`` and ``Optional``), then the value's runtime type (its MRO), then the
cloudpickle fallback. Factories for numpy and pandas are registered by dotted type name, so
neither library is imported until a value of theirs is seen. Packages add factories through
the ``qflow.factories`` entry-point group.
"""

from __future__ import annotations

import types
import typing
from typing import Any, TypeVar

from qflow.artifacts.base import Factory
from qflow.artifacts.builtin import (
    BytesFactory,
    JsonFactory,
    PathFactory,
    PickleFactory,
    PydanticFactory,
    is_json,
)
from qflow.artifacts.composite import KINDS, CompositeFactory
from qflow.errors import FactoryError
from qflow.plugins import Registry, load_object

F = TypeVar("F", bound=type[Factory])

_LAZY = {
    "numpy": "qflow.artifacts.numpy:NumpyFactory",
    "pandas": "qflow.artifacts.pandas:DataFrameFactory",
    "pandas-series": "qflow.artifacts.pandas:SeriesFactory",
}
_LAZY_TYPES = {  # pandas 3 reports its classes' module as "pandas", older ones the full path
    "numpy.ndarray": "numpy",
    "pandas.DataFrame": "pandas",
    "pandas.core.frame.DataFrame": "pandas",
    "pandas.Series": "pandas-series",
    "pandas.core.series.Series": "pandas-series",
}
plugins: Registry[Any] = Registry("qflow.factories", {})


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class FactoryRegistry:
    """A collection of factories, looked up by name, annotation or value."""

    def __init__(self) -> None:
        self._by_name: dict[str, Factory] = {}
        self._lazy_names: dict[str, str] = dict(_LAZY)
        self._by_type_name: dict[str, str] = dict(_LAZY_TYPES)
        self._plugins_loaded = False
        self.pickle = PickleFactory()
        for f in (JsonFactory(), BytesFactory(), PydanticFactory(), PathFactory(), self.pickle):
            self.register(f)

    def register(self, factory: Factory, types: tuple[type | str, ...] | None = None) -> Factory:
        """Add ``factory`` for ``types`` (default: ``factory.types``); a later one wins."""
        if not factory.name:
            raise FactoryError(f"{type(factory).__qualname__} has no name.")
        self._by_name[factory.name] = factory
        for t in factory.types if types is None else types:
            self._by_type_name[t if isinstance(t, str) else _type_name(t)] = factory.name
        return factory

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for name in plugins.names():
            obj = plugins.get(name)
            self.register(obj() if isinstance(obj, type) else obj)

    def get(self, name: str) -> Factory:
        """The factory registered as ``name``."""
        if name not in self._by_name:
            if name in self._lazy_names:
                self._by_name[name] = load_object(self._lazy_names[name])()
            else:
                self._load_plugins()
        if name not in self._by_name:
            raise FactoryError(
                f"No artifact factory named {name!r} (known: {', '.join(sorted(self._by_name))}).",
                hint="Install or import the package that registers it.",
            )
        return self._by_name[name]

    def from_spec(self, spec: dict[str, Any]) -> Factory:
        """The factory a stored artifact's spec names, checking its format version."""
        name = spec["name"]
        if name in KINDS:
            return CompositeFactory(self, name, [])
        found = self.get(name)
        if found.version != spec.get("version", 1):
            raise FactoryError(
                f"Artifact was written by factory {name!r} version {spec.get('version')}, "
                f"this one is version {found.version}."
            )
        return found

    def _for_type(self, cls: type, obj: Any = None, check: bool = False) -> Factory | None:
        """The most specific factory registered for ``cls`` (that accepts ``obj`` if ``check``)."""
        self._load_plugins()
        for klass in cls.__mro__:
            name = self._by_type_name.get(_type_name(klass))
            if name is not None:
                found = self.get(name)
                if not check or found.accepts(obj):
                    return found
        return None

    def for_annotation(self, tp: Any) -> Factory | None:
        """The factory an annotation asks for, or ``None`` to decide from the value."""
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return CompositeFactory(self, "tuple", [self.for_annotation(a) for a in args])
        if origin is list:
            return CompositeFactory(self, "list", [self.for_annotation(args[0]) if args else None])
        if origin is dict and (not args or args[0] is str):
            return CompositeFactory(self, "dict", [self.for_annotation(args[1]) if args else None])
        if origin in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
            inner = next(a for a in args if a is not type(None))
            return CompositeFactory(self, "optional", [self.for_annotation(inner)])
        if isinstance(tp, type) and tp is not object:
            return self._for_type(tp)
        return None

    def for_value(self, obj: Any) -> Factory:
        """The factory that saves ``obj``: by its type, else a composite, else cloudpickle."""
        if is_json(obj):
            return self._by_name["json"]
        found = self._for_type(type(obj), obj, check=True)
        if found is not None:
            return found
        for kind in ("tuple", "list", "dict"):
            composite = CompositeFactory(self, kind, [])
            if composite.accepts(obj):
                return composite
        return self.pickle

    def choose(self, declared: Factory | None, obj: Any) -> Factory:
        """The declared factory when it accepts ``obj``, else the one ``obj``'s type picks."""
        if isinstance(declared, CompositeFactory) and is_json(obj):
            return self._by_name["json"]  # list[float], dict[str, int]: one file, not one per item
        if declared is not None and declared.accepts(obj):
            return declared
        return self.for_value(obj)


default_registry = FactoryRegistry()
"""``qflow.registry``: the store, ``qflow.save`` and ``qflow.load`` use it unless given another;
``@qflow.factory`` adds to it."""


def factory(cls: F) -> F:
    """Class decorator: register a ``Factory`` subclass in the default registry."""
    default_registry.register(cls())
    return cls
