"""The encoder built once gives the standard library's text, byte for byte (keys depend on it);
the compact encoder of records and events gives text the standard library reads back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qflow.jsontext import compact, encoder

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


def test_without_a_default_the_text_is_json_dumps_and_what_json_cannot_hold_raises():
    """The json factory's blobs: ``json.dumps``'s text, and its error for a value it refuses."""
    plain = encoder(default=None)
    for value in VALUES[:-1]:
        assert plain(value) == json.dumps(value)
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        plain({"set": {1}})


def test_compact_text_reads_back_as_the_standard_encoder_would_have_written_it():
    for value in VALUES[:-1]:
        expected = json.loads(json.dumps(value, default=repr))
        assert json.dumps(json.loads(compact(value))) == json.dumps(expected)  # NaN == NaN
    assert json.loads(compact(VALUES[-1])) == {"path": "data/x.csv", "set": [1]}  # as pydantic
    assert " " not in compact({"a": [1, {"b": None}]})
    assert "\u2028" in compact("a\u2028b")  # raw: readers split lines on \n only
    assert compact(object())[:9] == '"<object '
