"""The encoder built once gives the standard library's text, byte for byte (keys depend on it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qflow.jsontext import encoder

VALUES = [
    {"b": 1, "a": [1.5, None, True, "é\n\"x\""], "c": {"z": float("nan"), "y": float("inf")}},
    [{"@": "ab" * 32, "i": 0}, (1, 2), -0.0, 1e300, 10**30],
    "plain", 3, None, {"path": Path("data/x.csv"), "set": {1}},
]


@pytest.mark.parametrize("sort_keys, separators", [(True, (",", ":")), (False, (", ", ": "))])
def test_the_text_is_the_standard_encoders(sort_keys, separators):
    standard = json.JSONEncoder(sort_keys=sort_keys, separators=separators, default=repr)
    fast = encoder(sort_keys=sort_keys, separators=separators)
    for value in VALUES:
        assert fast(value) == standard.encode(value)
