"""JSON text from the standard library's C encoder, built once.

``json.JSONEncoder.encode`` builds a new C encoder on every call, which costs about as much
as encoding the small documents QFlow makes for every node of a run (a key's components, a
node's entry in the run record and its event). :func:`encoder` builds it once. The text is
what ``json.JSONEncoder(sort_keys=..., separators=..., default=repr).encode`` gives, without
its check for circular references: QFlow encodes only documents it built, never cyclic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any


def encoder(*, sort_keys: bool = False,
            separators: tuple[str, str] = (", ", ": ")) -> Callable[[Any], str]:
    """A function from a JSON-able value to its JSON text (``repr`` for what JSON cannot
    hold), keys sorted if ``sort_keys``, items and keys separated by ``separators``."""
    if c_make_encoder is None:  # pragma: no cover - a Python without the C accelerator
        return json.JSONEncoder(sort_keys=sort_keys, separators=separators,
                                default=repr).encode
    item, key = separators
    chunks = c_make_encoder(None, repr, encode_basestring_ascii, None, key, item, sort_keys,
                            False, True)

    def encode(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode
