"""Two runs side by side, from their records alone: what differs, section by section.

Sections, in order: the runs themselves (workflow, status, result), ``parameters``, each
step's ``settings``, each step's ``code`` (which of its functions and helpers changed, in
the words of "why it ran": :func:`qflow.graph.explain.explain` over the code components of
the two keys), ``libraries`` (the versions those components name, and Python), ``metrics``
(labelled ones by label, others as ``Step.metric``; the last value) and ``artifacts`` (a
node's key: the same key is the same artifact).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from qflow.graph.explain import explain

SECTIONS = ("run", "parameters", "settings", "code", "libraries", "metrics", "artifacts")
ABSENT = None
"""What a row holds for a run that does not have the value (shown as ``-``)."""


@dataclass
class Row:
    """One compared value: its name in its section, its value in each run, and a note."""

    section: str
    name: str
    a: Any
    b: Any
    note: str = ""

    @property
    def same(self) -> bool:
        """Whether both runs have the same value."""
        return _canonical(self.a) == _canonical(self.b)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"name": self.name, "a": self.a, "b": self.b, "same": self.same,
                **({"note": self.note} if self.note else {})}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


@dataclass
class RunDiff:
    """The comparison of run ``a`` with run ``b``."""

    a: dict[str, Any]
    b: dict[str, Any]
    rows: list[Row] = field(default_factory=list)

    def differences(self) -> list[Row]:
        """The rows whose values differ."""
        return [r for r in self.rows if not r.same]

    def to_dict(self, *, every: bool = False) -> dict[str, Any]:
        """JSON-able form (only what differs unless ``every``), for ``qflow diff --json``."""
        sections: dict[str, list[dict[str, Any]]] = {s: [] for s in SECTIONS}
        for row in self.rows:
            if every or not row.same:
                sections[row.section].append(row.to_dict())
        return {"a": _header(self.a), "b": _header(self.b), "same": not self.differences(),
                "sections": sections}

    def describe(self, *, every: bool = False) -> str:
        """The runs side by side, a section at a time (only what differs unless ``every``)."""
        shown = [r for r in self.rows if every or not r.same]
        table = [["", f"A {self.a.get('run_id')}", f"B {self.b.get('run_id')}", ""]]
        for section in SECTIONS:
            rows = [r for r in shown if r.section == section]
            if rows:
                table.append([section, "", "", ""])
                short = 12 if section == "artifacts" else 40
                table += [[f"  {r.name}", _cell(r.a, short), _cell(r.b, short),
                           ("≠ " if every and not r.same else "") + r.note] for r in rows]
        if len(table) == 1:
            return (f"Runs {self.a.get('run_id')} and {self.b.get('run_id')} do not differ in "
                    "parameters, settings, code, libraries, metrics or artifacts.")
        widths = [max(len(line[i]) for line in table) for i in range(3)]
        out = []
        for line in table:
            cells = [line[i].ljust(widths[i]) for i in range(3)] + [line[3]]
            out.append("  ".join(cells).rstrip())
        return "\n".join(out)


def _cell(value: Any, width: int = 40) -> str:
    if value is ABSENT:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    if width < 40:  # a key: its beginning names it
        return text[:width]
    return text if len(text) <= width else text[:width - 3] + "..."


def _header(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in ("run_id", "workflow", "kind", "status", "started")}


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted names (``{"opt": {"lr": 1}}`` -> ``{"opt.lr": 1}``)."""
    if not isinstance(data, dict) or not data:
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _rows(section: str, a: dict[str, Any], b: dict[str, Any]) -> list[Row]:
    return [Row(section, name, a.get(name, ABSENT), b.get(name, ABSENT))
            for name in list(dict.fromkeys([*a, *b]))]


def _steps(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Node id -> node entry of the record's steps and providers, in graph order."""
    order = [n["id"] for n in (record.get("graph") or {}).get("nodes", [])]
    nodes = record.get("nodes") or {}
    ids = [*[i for i in order if i in nodes], *[i for i in nodes if i not in order]]
    return {i: nodes[i] for i in ids if nodes[i].get("kind") != "input"}


def _settings(record: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for node in (record.get("graph") or {}).get("nodes", []):
        if node.get("kind") == "step":
            for name, value in _flat(node.get("settings") or {}).items():
                out[f"{node['id']}.{name}"] = value
    return out


def _code(node: dict[str, Any]) -> Any:
    """The code component of a node's key: ``{name: digest}`` (libraries left out), or a
    notebook cell's code digest."""
    code = (node.get("components") or {}).get("code")
    if isinstance(code, dict):
        return {k: v for k, v in code.items() if not k.startswith("lib:")}
    return code


def _code_rows(a: dict[str, Any], b: dict[str, Any]) -> list[Row]:
    steps_a, steps_b = _steps(a), _steps(b)
    rows = []
    for nid in dict.fromkeys([*steps_a, *steps_b]):
        code_a = _code(steps_a[nid]) if nid in steps_a else ABSENT
        code_b = _code(steps_b[nid]) if nid in steps_b else ABSENT
        note = ""
        if isinstance(code_a, dict) and isinstance(code_b, dict):
            note = "; ".join(explain({"code": code_a}, {"code": code_b}, {}))
        elif code_a is not ABSENT and code_b is not ABSENT and code_a != code_b:
            note = "code of the cell changed"
        rows.append(Row("code", nid, _digest(code_a), _digest(code_b), note))
    return rows


def _digest(code: Any) -> Any:
    """A short fingerprint of a code component, to show side by side."""
    if code is ABSENT:
        return ABSENT
    import hashlib

    return hashlib.sha256(_canonical(code).encode()).hexdigest()[:10]


def _libraries(record: dict[str, Any]) -> dict[str, Any]:
    """Each library's version (and Python's) as the run's keys name them."""
    seen: dict[str, set[str]] = {}
    for node in (record.get("nodes") or {}).values():
        parts = node.get("components") or {}
        code = parts.get("code")
        for name, version in (code.items() if isinstance(code, dict) else []):
            if name.startswith("lib:"):
                seen.setdefault(name[4:], set()).add(str(version))
        if parts.get("python"):
            seen.setdefault("Python", set()).add(str(parts["python"]))
    return {name: ", ".join(sorted(versions)) for name, versions in sorted(seen.items())}


def _metrics(record: dict[str, Any]) -> dict[str, Any]:
    labels = {n["id"]: {metric: label for label, metric in (n.get("labels") or {}).items()}
              for n in (record.get("graph") or {}).get("nodes", [])}
    out: dict[str, Any] = dict(record.get("metrics") or {})
    for nid, node in (record.get("nodes") or {}).items():
        for metric in node.get("metrics") or []:
            name = labels.get(nid, {}).get(metric["name"], f"{nid}.{metric['name']}")
            out[name] = metric["value"]
    return out


def _artifacts(record: dict[str, Any]) -> dict[str, Any]:
    return {nid: node["key"] for nid, node in _steps(record).items()
            if node.get("key") and node.get("status") in ("ran", "cached")}


def diff_runs(a: dict[str, Any], b: dict[str, Any]) -> RunDiff:
    """Compare the run records ``a`` and ``b``, section by section (every value: ``RunDiff``
    says which differ)."""
    run = {"workflow": "workflow", "kind": "kind", "status": "status", "result": "result"}
    rows = [Row("run", label, a.get(key), b.get(key)) for label, key in run.items()]
    rows += _rows("parameters", _flat(a.get("parameters") or {}), _flat(b.get("parameters") or {}))
    rows += _rows("settings", _settings(a), _settings(b))
    rows += _code_rows(a, b)
    rows += _rows("libraries", _libraries(a), _libraries(b))
    rows += _rows("metrics", _metrics(a), _metrics(b))
    rows += _rows("artifacts", _artifacts(a), _artifacts(b))
    return RunDiff(a=a, b=b, rows=rows)
