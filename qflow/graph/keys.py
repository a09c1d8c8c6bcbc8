"""Cache keys: a Merkle hash over what a node's output is made of.

A step's key hashes its identity and code fingerprint, its settings, the *keys* of its
upstream outputs (never their bytes), plain argument values, and the factories its
annotations ask for. A provider's key hashes its code, its arguments and a fingerprint of the
files it reads. Looking a key up therefore costs the same for 1 KB or 100 GB of data.

A key is the SHA-256 of canonical JSON. Inside it, plain values that are bytes (``bytes``,
numpy arrays, pickles) are digested with XXH3-128 straight from their buffer, without a copy
(:func:`bytes_digest`). :data:`SCHEME` is the version of all of this: every key holds it, so
changing how anything is digested changes it, and keys of another scheme are never matched
(their steps recompute; "why it ran" says the cache scheme changed).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from qflow.dsl.decorators import Provider, StepBase
from qflow.dsl.proxy import Proxy
from qflow.graph.fingerprint import code_fingerprint, qualified
from qflow.graph.graph import Node
from qflow.jsontext import encoder

SCHEME = 2
"""The key format's version. 2: bytes, arrays and pickles digested with XXH3-128 (SHA-256 in 1)."""
PYTHON = f"{sys.implementation.name}-{sys.version_info[0]}.{sys.version_info[1]}"
_CANONICAL = encoder(sort_keys=True, separators=(",", ":"))


def canonical(material: Any) -> str:
    """The canonical JSON of ``material`` (sorted keys, no spaces), which :func:`digest` hashes."""
    return _CANONICAL(material)


_HOLE = "\0"
_HOLE_TEXT = _CANONICAL(_HOLE)
_step_parts: dict[str, tuple[Any, list[str]]] = {}


def components_text(material: dict[str, Any]) -> str:
    """:func:`canonical` of a node's :func:`components`, the text its key hashes.

    Only a step's ``settings`` and ``inputs`` differ from call to call of its class: the text
    around them (sorted keys put them between ``factories`` and ``kind``, and between
    ``scheme`` and ``step``) is encoded once per class and reused while it is unchanged.
    """
    if material.get("kind") != "step":
        return _CANONICAL(material)
    constant = (material["code"], tuple(material["factories"]), material["version"],
                material["python"], material["scheme"])
    found = _step_parts.get(material["step"])
    if found is None or found[0] != constant:
        parts = _CANONICAL({**material, "inputs": _HOLE, "settings": _HOLE}).split(_HOLE_TEXT)
        if len(parts) != 3:  # pragma: no cover - a hole in a name: encode it whole
            return _CANONICAL(material)
        found = _step_parts[material["step"]] = (constant, parts)
    head, middle, tail = found[1]
    inputs, settings = _CANONICAL(material["inputs"]), _CANONICAL(material["settings"])
    return f"{head}{inputs}{middle}{settings}{tail}"


def digest(material: Any, text: str | None = None) -> str:
    """SHA-256 of the canonical JSON of ``material`` (``text`` if already made)."""
    return hashlib.sha256((text or _CANONICAL(material)).encode()).hexdigest()


def bytes_digest(data: Any) -> str:
    """The XXH3-128 digest of a bytes-like ``data`` (anything with a contiguous buffer), read
    in place."""
    import xxhash

    return str(xxhash.xxh3_128_hexdigest(data))


def value_digest(value: Any) -> str:
    """A stable digest of a plain value (JSON data, bytes, arrays, frames, models, paths)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return digest(["v", value])
    if isinstance(value, (bytes, bytearray)):
        return bytes_digest(value)
    if isinstance(value, Path):
        return digest(["path", str(value), path_fingerprint(value)])
    if isinstance(value, (list, tuple)):
        return digest([type(value).__name__, [value_digest(v) for v in value]])
    if isinstance(value, dict):
        return digest(["dict", sorted((str(k), value_digest(v)) for k, v in value.items())])
    if isinstance(value, (set, frozenset)):
        return digest(["set", sorted(value_digest(v) for v in value)])
    module = type(value).__module__.split(".")[0]
    if module == "numpy" and hasattr(value, "dtype") and hasattr(value, "tobytes"):
        import numpy as np

        array = np.ascontiguousarray(value)  # a copy only if strided
        if not array.dtype.hasobject:
            try:
                data = array.reshape(-1).view(np.uint8)  # the same buffer, no copy
            except (TypeError, ValueError):  # a dtype without a plain buffer (zero-sized items)
                data = array.tobytes()
            return digest(["ndarray", str(array.dtype), array.shape, bytes_digest(data)])
    if module == "pandas":
        import pandas as pd

        hashed = pd.util.hash_pandas_object(value, index=True).to_numpy()
        return digest(["pandas", type(value).__name__, [str(d) for d in getattr(value, "dtypes", [])],
                       list(map(str, getattr(value, "columns", []))), value_digest(hashed)])
    if hasattr(value, "model_dump_json"):
        return digest([type(value).__qualname__, value.model_dump_json()])
    import cloudpickle

    return bytes_digest(cloudpickle.dumps(value))


def path_fingerprint(path: Path) -> Any:
    """Size and modification time of a file, or of every file under a folder; ``None`` if absent."""
    try:
        st = path.stat()
    except OSError:
        return None
    if not path.is_dir():
        return [st.st_size, st.st_mtime_ns]
    entries = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            s = os.stat(full)
            entries.append([os.path.relpath(full, path), s.st_size, s.st_mtime_ns])
    return entries


def _canonical(value: Any, keys: dict[str, str]) -> Any:
    """``value`` with proxies replaced by their upstream keys and plain values by digests."""
    if isinstance(value, Proxy):
        return {"@": keys[value.node], "i": value.index}
    if isinstance(value, (list, tuple)) and any(isinstance(v, Proxy) for v in value):
        return [_canonical(v, keys) for v in value]
    if isinstance(value, dict) and any(isinstance(v, Proxy) for v in value.values()):
        return {str(k): _canonical(v, keys) for k, v in value.items()}
    return {"=": value_digest(value)}


def _settings(step: StepBase) -> Any:
    try:
        return step.model_dump(mode="json")
    except Exception:  # settings of arbitrary types: hash them by value
        return {k: value_digest(v) for k, v in step}


@functools.lru_cache(maxsize=4096)
def _step_name(cls: type) -> str:
    return qualified(cls)


def components(node: Node, keys: dict[str, str], factories: list[str | None],
               root: Path | None = None) -> dict[str, Any]:
    """What ``node``'s key is made of.

    Args:
        keys: the keys of its upstream nodes.
        factories: the identity of the factory each output's annotation asks for, if any.
        root: the folder relative paths of providers are read from.
    """
    if node.kind == "input":
        return {"scheme": SCHEME, "kind": "input", "value": value_digest(node.obj)}
    if node.kind == "provider":
        provider: Provider = node.obj
        files = {}
        for i, arg in enumerate([*provider.args, *provider.kwargs.values()]):
            if isinstance(arg, Path):
                full = arg if arg.is_absolute() or root is None else root / arg
                files[str(arg) or str(i)] = path_fingerprint(full)
        return {
            "scheme": SCHEME,
            "kind": "provider",
            "provider": qualified(provider.fn),
            "code": code_fingerprint(provider.fn),
            "args": [value_digest(a) for a in provider.args],
            "kwargs": {k: value_digest(v) for k, v in provider.kwargs.items()},
            "files": files,
            "python": PYTHON,
        }
    step: StepBase = node.obj
    cls = type(step)
    return {
        "scheme": SCHEME,
        "kind": "step",
        "step": _step_name(cls),
        "code": code_fingerprint(cls),
        "version": cls.__qflow_version__,
        "settings": _settings(step),
        "inputs": {name: _canonical(v, keys) for name, v in node.inputs.items()},
        "factories": factories,
        "python": PYTHON,
    }
