"""Why a node ran instead of coming from the cache: a diff of its key's components."""

from __future__ import annotations

from typing import Any


def _short(name: str) -> str:
    return name.split(":", 1)[-1]


def _fmt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def explain(previous: dict[str, Any] | None, current: dict[str, Any],
            upstream_names: dict[str, str]) -> list[str]:
    """Reasons ``current`` differs from ``previous`` (the components of the last key seen).

    ``upstream_names`` maps upstream keys to node ids, to say "upstream `Split` changed".
    An empty list means the components are equal: the artifact itself was missing.
    """
    if previous is None:
        return ["never computed"]
    reasons = []
    old_code, new_code = previous.get("code", {}), current.get("code", {})
    for name in sorted(set(old_code) | set(new_code)):
        if name.startswith("lib:"):
            if old_code.get(name) != new_code.get(name):
                reasons.append(f"library {name[4:]} {old_code.get(name)} → {new_code.get(name)}")
        elif name not in old_code:
            reasons.append(f"code now uses `{_short(name)}`")
        elif name not in new_code:
            reasons.append(f"code no longer uses `{_short(name)}`")
        elif old_code[name] != new_code[name]:
            reasons.append(f"code of `{_short(name)}` changed")
    old_set, new_set = previous.get("settings") or {}, current.get("settings") or {}
    for name in sorted(set(old_set) | set(new_set)):
        if old_set.get(name) != new_set.get(name):
            reasons.append(f"setting `{name}` {_fmt(old_set.get(name))} → {_fmt(new_set.get(name))}")
    old_in, new_in = previous.get("inputs") or {}, current.get("inputs") or {}
    for name in sorted(set(old_in) | set(new_in)):
        if old_in.get(name) != new_in.get(name):
            refs = _refs(new_in.get(name))
            changed = [upstream_names.get(k, k[:8]) for k in refs if k not in _refs(old_in.get(name))]
            reasons.extend(f"upstream `{n}` changed" for n in changed)
            if not changed:
                reasons.append(f"input `{name}` changed")
    for field, label in (("value", "value"), ("args", "arguments"), ("kwargs", "arguments"),
                         ("files", "files read"), ("version", "version"),
                         ("factories", "output factories"), ("python", "Python"),
                         ("scheme", "cache scheme"), ("step", "step name"),
                         ("provider", "provider name")):
        if previous.get(field) != current.get(field) and f"{label} changed" not in reasons:
            reasons.append(f"{label} changed")
    return list(dict.fromkeys(reasons))  # two outputs of one upstream step name it once


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        if "@" in value:
            return [value["@"]]
        return [k for v in value.values() for k in _refs(v)]
    if isinstance(value, list):
        return [k for v in value for k in _refs(v)]
    return []
