"""JSON text: the standard library's C encoder built once, and a compact encoder for records.

``json.JSONEncoder.encode`` builds a new C encoder on every call, which costs about as much
as encoding the small documents QFlow makes for every node of a run. :func:`encoder` builds
it once. The text is what ``json.JSONEncoder(sort_keys=..., separators=..., default=repr)
.encode`` gives, without its check for circular references: QFlow encodes only documents it
built, never cyclic. Cache keys hash this text, so it must never change.

:func:`compact` writes run records, events, the store's indexes and the manifests of packed
records with pydantic-core's encoder, about three times faster: no spaces, non-ASCII
characters as UTF-8, ``NaN`` and ``Infinity`` as the standard library writes them, paths,
sets and dates as pydantic writes them, ``repr`` for anything else JSON cannot hold. Its
text is only ever parsed, never hashed; readers split it into lines at ``\n`` only (a
string may hold U+2028).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from pydantic_core import to_json


def encoder(*, sort_keys: bool = False, separators: tuple[str, str] = (", ", ": "),
            default: Callable[[Any], Any] | None = repr) -> Callable[[Any], str]:
    """A function from a JSON-able value to its JSON text, keys sorted if ``sort_keys``,
    items and keys separated by ``separators``; what JSON cannot hold becomes ``default``'s
    answer (``repr`` unless told), or raises ``TypeError`` as ``json.dumps`` does (``None``)."""
    default = default or _refuse
    if c_make_encoder is None:  # pragma: no cover - a Python without the C accelerator
        return json.JSONEncoder(sort_keys=sort_keys, separators=separators,
                                default=default).encode
    item, key = separators
    chunks = c_make_encoder(None, default, encode_basestring_ascii, None, key, item, sort_keys,
                            False, True)

    def encode(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def compact(value: Any) -> str:
    """Compact JSON text of ``value`` for run records and events (see the module's docstring)."""
    return to_json(value, fallback=repr, inf_nan_mode="constants").decode()
