"""Built-in factories for values of the standard library and pydantic models."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from qflow.artifacts.base import BlobFactory, Factory
from qflow.errors import FactoryError
from qflow.jsontext import encoder

_SCALARS = (bool, int, float, str, type(None))
_json = encoder(default=None)  # json.dumps's text, its C encoder built once


def is_json(obj: Any, depth: int = 0) -> bool:
    """Whether ``obj`` survives a JSON round trip unchanged (plain scalars, lists, str-keyed dicts)."""
    if type(obj) in _SCALARS:
        return True
    if depth > 50:
        return False
    if type(obj) is list:
        return all(is_json(v, depth + 1) for v in obj)
    if type(obj) is dict:
        return all(type(k) is str and is_json(v, depth + 1) for k, v in obj.items())
    return False


class JsonFactory(BlobFactory):
    """Plain JSON values: numbers, strings, booleans, None, lists and str-keyed dicts."""

    name = "json"
    types = (bool, int, float, str, type(None))
    filename = "value.json"

    def accepts(self, obj: Any) -> bool:
        return is_json(obj)

    def dumps(self, obj: Any) -> bytes:
        return _json(obj).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class BytesFactory(BlobFactory):
    """Raw ``bytes``."""

    name = "bytes"
    types = (bytes, bytearray)

    def accepts(self, obj: Any) -> bool:
        return isinstance(obj, (bytes, bytearray))

    def dumps(self, obj: Any) -> bytes:
        return bytes(obj)

    def loads(self, data: bytes) -> Any:
        return data


class PydanticFactory(BlobFactory):
    """pydantic models, as JSON plus the import path of their class."""

    name = "pydantic"
    types = (BaseModel,)
    filename = "model.json"

    def accepts(self, obj: Any) -> bool:
        return isinstance(obj, BaseModel) and "<locals>" not in type(obj).__qualname__

    def dumps(self, obj: Any) -> bytes:
        cls = type(obj)
        return json.dumps({"class": f"{cls.__module__}:{cls.__qualname__}",
                           "model": obj.model_dump(mode="json")}).encode()

    def loads(self, data: bytes) -> Any:
        document = json.loads(data)
        module, _, qualname = document["class"].partition(":")
        cls: Any = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        return cls.model_validate(document["model"])


class PathFactory(Factory):
    """A file or folder, copied into the store; loading returns the path of the copy."""

    name = "path"
    types = (Path,)

    def accepts(self, obj: Any) -> bool:
        return isinstance(obj, Path) and obj.exists()

    def save(self, obj: Any, path: Path) -> None:
        source = Path(obj)
        if not source.exists():
            raise FactoryError(f"Path artifact {source} does not exist.")
        target = path / "content" / (source.name or "root")
        target.parent.mkdir()
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)

    def load(self, path: Path) -> Any:
        return next((path / "content").iterdir())


class PickleFactory(BlobFactory):
    """Anything else, with cloudpickle: the fallback when no other factory fits."""

    name = "pickle"
    filename = "object.pkl"

    def dumps(self, obj: Any) -> bytes:
        import cloudpickle

        try:
            return cloudpickle.dumps(obj, protocol=5)
        except Exception as exc:
            raise FactoryError(
                f"A value of type {type(obj).__qualname__} cannot be pickled: {exc}.",
                hint="Return plain data, or register a factory for this type (@qflow.factory).",
            ) from exc

    def loads(self, data: bytes) -> Any:
        import cloudpickle

        return cloudpickle.loads(data)
