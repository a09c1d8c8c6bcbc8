"""The notebook's steps: keys, the cache, stale marking and the session's run record.

Each ``%%qflow_step`` cell is a node. Its key hashes its normalised code and, for every input,
either the key of the step cell that produced it (so nothing upstream is re-hashed) or, for
other values (parameters, plain variables), a digest of the value; modules count by version
and functions or classes from other cells by their code. A cell whose key is in the store has
its outputs loaded into the namespace instead of running, also after a kernel restart and in
a headless run of the same notebook, since the store is the project's.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qflow.cells import analyse
from qflow.config.paths import Paths
from qflow.errors import FactoryError, IntegrityError
from qflow.graph.fingerprint import code_fingerprint, is_library, library_version, source_digest
from qflow.graph.keys import PYTHON, SCHEME, digest, value_digest
from qflow.runtime.info import REPORTER, RuntimeInfo
from qflow.runtime.record import new_run_id
from qflow.store.atomic import atomic_write_bytes
from qflow.store.local import Store

RESULT = "__result__"  # the value of the cell's last expression, kept to show it again
IPYTHON_NAMES = {"In", "Out", "_", "__", "___", "_oh", "_ih", "_dh", "get_ipython", "exit", "quit"}


@dataclass
class StepCell:
    """One ``%%qflow_step`` cell as the session knows it."""

    name: str
    source: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    upstream: dict[str, str] = field(default_factory=dict)  # input -> producing step
    key: str | None = None
    status: str = "pending"  # pending | running | cached | done | failed | stale
    duration: float = 0.0
    saved: float = 0.0
    cache: bool = True
    explicit_inputs: list[str] | None = None
    explicit_outputs: list[str] | None = None


def _import_reference(value: Any) -> str | None:
    """``"numpy"`` or ``"sklearn.datasets:load_digits"`` for what a cell imported from a
    library: re-imported on a cache hit rather than pickled."""
    if isinstance(value, types.ModuleType):
        return value.__name__
    if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)) \
            and is_library(value) and "<locals>" not in getattr(value, "__qualname__", "<locals>"):
        return f"{value.__module__}:{value.__qualname__}"
    return None


def _code_digest(code: str) -> str:
    try:
        return digest(ast.dump(ast.parse(code), annotate_fields=False))
    except SyntaxError:
        return digest(code)


def _seconds(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


class NotebookSession:
    """The steps of one kernel session, their keys, the shared store and listeners."""

    def __init__(self, shell: Any, root: Path | str | None = None) -> None:
        self.shell = shell
        # a headless run (`qflow run` on a notebook) names the project it records into
        self.paths = Paths.discover(root or os.environ.get("QFLOW_ROOT") or None)
        self.store = Store(self.paths.store)
        self.steps: dict[str, StepCell] = {}
        self.producers: dict[str, str] = {}  # variable -> step whose output it is
        self.output_ids: dict[str, int] = {}  # variable -> id() of the value the step left
        self.listeners: list[Callable[[NotebookSession], None]] = []
        self.reporters: list[Callable[[StepCell, RuntimeInfo], None]] = []
        # a headless run (`qflow run` on a notebook) names the run and the workflow
        self.run_id = os.environ.get("QFLOW_RUN_ID") or new_run_id()
        self.started = time.time()
        self.name = os.environ.get("QFLOW_WORKFLOW") or \
            Path(os.environ.get("JPY_SESSION_NAME") or "notebook").stem or "notebook"

    # -- events --------------------------------------------------------------------------------
    def changed(self) -> None:
        """Tell listeners (the live graph) and the run record that states changed."""
        for listener in list(self.listeners):
            listener(self)
        self._write_record()

    def _set(self, step: StepCell, status: str) -> None:
        step.status = status
        self.changed()

    # -- keys ----------------------------------------------------------------------------------
    def _produced_by(self, name: str) -> str | None:
        """The step whose output ``name`` still holds (not rebound by a plain cell since)."""
        producer = self.producers.get(name)
        if producer is None or self.output_ids.get(name) != id(self.shell.user_ns.get(name)):
            return None
        return producer

    def _remember(self, step: StepCell) -> None:
        for n in step.outputs:
            self.producers[n] = step.name
            self.output_ids[n] = id(self.shell.user_ns.get(n))

    def _input_component(self, name: str, value: Any) -> Any:
        producer = self._produced_by(name)
        if producer is not None and self.steps[producer].key:
            return {"@": self.steps[producer].key, "name": name}
        if isinstance(value, types.ModuleType):
            top = value.__name__.split(".")[0]
            return {"lib": library_version(top)} if is_library(value) \
                else {"module": source_digest(value)}
        if isinstance(value, (type, types.FunctionType)):
            return {"code": code_fingerprint(value)}
        return {"=": value_digest(value)}

    def key(self, step: StepCell, code: str) -> tuple[str, dict[str, Any]]:
        """The cache key of ``step`` with namespace values as they are now."""
        ns = self.shell.user_ns
        inputs = {n: self._input_component(n, ns[n]) for n in step.inputs if n in ns}
        components = {"scheme": SCHEME, "kind": "cell", "name": step.name,
                      "code": _code_digest(code), "inputs": inputs,
                      "outputs": step.explicit_outputs, "python": PYTHON}
        return digest(components), components

    # -- running a step ------------------------------------------------------------------------
    def run(self, name: str, source: str, *, inputs: list[str] | None = None,
            outputs: list[str] | None = None, cache: bool = True) -> Any:
        """Run (or load from the cache) the step cell ``name``; return its last value."""
        cache = cache and not os.environ.get("QFLOW_NO_CACHE")
        code = self.shell.transform_cell(source)
        names = analyse(code)
        ns = self.shell.user_ns
        hidden = set(getattr(self.shell, "user_ns_hidden", {})) | IPYTHON_NAMES
        step = self.steps.get(name) or StepCell(name=name, source=source)
        step.source, step.cache = source, cache
        step.explicit_inputs, step.explicit_outputs = inputs, outputs
        step.inputs = inputs if inputs is not None else sorted(
            n for n in names.refs if n in ns and n not in hidden)
        step.upstream = {n: p for n in step.inputs
                         if (p := self._produced_by(n)) is not None and p != name}
        self.steps[name] = step
        for clash in (names.mutated & set(step.upstream)):
            print(f"[qflow] warning: step '{name}' changes `{clash}` in place, an output of step "
                  f"'{step.upstream[clash]}'. The changed value is saved as an output of "
                  f"'{name}'; assign a new name to keep steps independent.", file=sys.stderr)
        previous_key = step.key
        key, _ = self.key(step, code)
        step.key = key
        if cache and self.store.has(key):
            try:
                value = self._load(step, key)
            except IntegrityError as exc:
                print(f"[qflow] {name}: {exc.message}; recomputing.", file=sys.stderr)
            else:
                self._after(step, previous_key)
                return value
        return self._execute(step, code, names.outputs, key, previous_key)

    def _load(self, step: StepCell, key: str) -> Any:
        started = time.perf_counter()
        manifest = self.store.manifest(key)
        names: list[str] = manifest["names"]
        values = {n: self.store.load(key, i) for i, n in enumerate(names)}
        for alias, ref in manifest.get("modules", {}).items():
            module, _, attr = ref.partition(":")
            value = importlib.import_module(module)
            for part in attr.split(".") if attr else ():
                value = getattr(value, part)
            values[alias] = value
        result = values.pop(RESULT, None)
        self.shell.user_ns.update(values)
        step.outputs = sorted(values)
        self._remember(step)
        step.duration = time.perf_counter() - started
        step.saved = max(manifest.get("duration", 0.0) - step.duration, 0.0)
        shown = ", ".join(step.outputs) or "no outputs"
        print(f"[qflow] {step.name}: loaded from cache ({shown}) in {_seconds(step.duration)}; "
              f"running it took {_seconds(manifest.get('duration', 0.0))}")
        step.status = "cached"
        return result

    def _execute(self, step: StepCell, code: str, inferred: set[str], key: str,
                 previous_key: str | None) -> Any:
        shell, ns = self.shell, self.shell.user_ns
        self._set(step, "running")
        filename = shell.compile.cache(code, shell.execution_count, raw_code=step.source)
        tree = ast.parse(code, filename)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        token = REPORTER.set(lambda info: [r(step, info) for r in self.reporters])
        started = time.perf_counter()
        try:
            exec(compile(tree, filename, "exec"), ns)  # noqa: S102 - the user's own cell
            result = None
            if last is not None:
                result = eval(compile(ast.Expression(last.value), filename, "eval"), ns)  # noqa: S307
        except BaseException:
            step.duration = time.perf_counter() - started
            self._set(step, "failed")
            raise
        finally:
            REPORTER.reset(token)
        step.duration = time.perf_counter() - started
        names = step.explicit_outputs if step.explicit_outputs is not None else sorted(
            n for n in inferred if n in ns)
        step.outputs = [n for n in names if n in ns]
        self._remember(step)
        if step.cache:
            self._save(step, key, result)
        self._after(step, previous_key, status="done")
        return result

    def _save(self, step: StepCell, key: str, result: Any) -> None:
        ns = self.shell.user_ns
        modules = {n: ref for n in step.outputs if (ref := _import_reference(ns[n]))}
        values = [(n, ns[n]) for n in step.outputs if n not in modules]
        if result is not None:
            values.append((RESULT, result))
        skipped = []
        while True:
            meta = {"node": step.name, "names": [n for n, _ in values], "modules": modules,
                    "duration": step.duration, "run_id": self.run_id}
            try:
                self.store.save(key, [(v, None) for _, v in values], meta)
                break
            except FactoryError:
                bad = next(n for n, v in values if not self._saveable(v))
                skipped.append(bad)
                values = [(n, v) for n, v in values if n != bad]
        for n in skipped:
            if n != RESULT:
                print(f"[qflow] warning: `{n}` of step '{step.name}' cannot be saved, so a cached "
                      "run will not define it.", file=sys.stderr)
        self.store.flush()

    def _saveable(self, value: Any) -> bool:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            try:
                self.store.registry.for_value(value).save(value, Path(tmp))
                return True
            except Exception:
                return False

    def _after(self, step: StepCell, previous_key: str | None, status: str | None = None) -> None:
        if status:
            step.status = status
        if previous_key is not None and previous_key != step.key:
            self._mark_stale(step.name)
        self.changed()

    def _mark_stale(self, name: str) -> None:
        for other in self.steps.values():
            if name in other.upstream.values() and other.status in ("done", "cached"):
                other.status = "stale"
                self._mark_stale(other.name)

    def stale(self) -> list[StepCell]:
        """Stale steps in the order they first ran (a dependency order)."""
        return [s for s in self.steps.values() if s.status == "stale"]

    def rerun_stale(self) -> list[str]:
        """Run every stale step again, upstream first; return their names."""
        done = []
        while True:
            stale = self.stale()
            if not stale:
                return done
            step = stale[0]
            self.run(step.name, step.source, inputs=step.explicit_inputs,
                     outputs=step.explicit_outputs, cache=step.cache)
            done.append(step.name)

    # -- the session's run record ------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        """The session as a run record (``qflow ps``, ``%qflow runs`` read it)."""
        nodes = {s.name: {"id": s.name, "kind": "step", "status": s.status, "key": s.key,
                          "duration": s.duration, "reasons": [], "metrics": [],
                          "upstream": sorted(set(s.upstream.values()))}
                 for s in self.steps.values()}
        counts: dict[str, int] = {}
        for s in self.steps.values():
            label = {"done": "ran"}.get(s.status, s.status)
            counts[label] = counts.get(label, 0) + 1
        failed = [s.name for s in self.steps.values() if s.status == "failed"]
        return {"run_id": self.run_id, "workflow": self.name, "kind": "notebook",
                "status": "failed" if failed else "succeeded", "started": self.started,
                "ended": time.time(), "duration": time.time() - self.started, "pid": os.getpid(),
                "root": str(self.paths.root), "store": str(self.paths.store), "parameters": {},
                "metrics": {}, "result": None, "error": None,
                "failed_step": failed[0] if failed else None, "counts": counts, "nodes": nodes,
                "graph": {"name": self.name, "nodes": [
                    {"id": s.name, "kind": "step", "title": s.name,
                     "upstream": sorted(set(s.upstream.values())), "outputs": len(s.outputs)}
                    for s in self.steps.values()]}}

    def _write_record(self) -> None:
        path = self.paths.runs / self.run_id / "record.json"
        atomic_write_bytes(path, json.dumps(self.record(), default=repr).encode())
