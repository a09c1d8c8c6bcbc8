"""A notebook session: its ``%%qflow_step`` cells are the nodes of one run on the run pipeline.

Each step cell is a node. Its key hashes its normalised code, the files it reads (by a literal
path or a variable holding one) and, for every input, either the key of the step cell that
produced it (so nothing upstream is re-hashed) or, for other values (parameters, plain
variables), a digest of the value; modules count by version and functions or classes from
other cells by their code. A cell whose key is in the store has its outputs loaded into the
namespace instead of running, also after a kernel restart and in a headless run of the same
notebook, since the store is the project's (a local folder or an fsspec URL).

The session is a ``RunState`` of kind ``notebook``: its cells emit the run and node events a
workflow run emits, to the same observers — the run recorder (the only writer of run
records), the project's tracker (parameters, metrics reported with ``qflow.report``,
statuses), the live views. The run starts at the first step cell and ends with the kernel.
In a headless run (the papermill launcher) the events go to the file ``QFLOW_EVENTS`` and
the launcher records them. Nothing here needs IPython: the Jupyter extension passes the
namespace and a function that executes a cell.
"""

from __future__ import annotations

import ast
import atexit
import importlib
import os
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qflow.config.paths import Paths
from qflow.errors import FactoryError, IntegrityError, QFlowError
from qflow.graph.described import DescribedGraph, DescribedNode
from qflow.graph.fingerprint import code_fingerprint, is_library, library_version, source_digest
from qflow.graph.keys import PYTHON, SCHEME, digest, path_fingerprint, value_digest
from qflow.notebook.cells import CellNames, analyse
from qflow.runtime.background import flush_lines
from qflow.runtime.events import NodeRun, NodeStatus, Observer, Observers, RunState
from qflow.runtime.info import REPORTER, Metric, RuntimeInfo
from qflow.runtime.record import new_run_id
from qflow.store.location import open_store

RESULT = "__result__"  # the value of the cell's last expression, kept to show it again
OUTPUTS = "__outputs__"  # what the cell printed and displayed, shown again on a cache hit
IPYTHON_NAMES = {"In", "Out", "_", "__", "___", "_oh", "_ih", "_dh", "get_ipython", "exit", "quit"}
SCALARS = (bool, int, float, str)
OUTPUT_LIMIT = 1_000_000  # characters of printed output kept for a replay

Execute = Callable[[str], tuple[Any, list[dict[str, Any]]]]
"""Runs a cell's code in the namespace; returns its last value and what it printed/displayed
(``{"type": "stream", "name": "stdout", "text": ...}`` or ``{"type": "display", "data": ...,
"metadata": ...}``)."""


class StepNameTaken(QFlowError):
    """A second cell uses the name of an existing step cell."""


@dataclass
class StepCell:
    """One ``%%qflow_step`` cell as the session knows it."""

    name: str
    source: str
    cell: str = ""  # which cell it is, for people: "In [5]"
    cell_id: str | None = None
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    upstream: dict[str, str] = field(default_factory=dict)  # input -> producing step
    settings: dict[str, Any] = field(default_factory=dict)  # plain inputs: parameters
    files: dict[str, Any] = field(default_factory=dict)  # path read -> fingerprint
    key: str | None = None
    components: dict[str, Any] = field(default_factory=dict)
    status: NodeStatus = "pending"
    duration: float = 0.0
    saved: float = 0.0
    cache: bool = True
    explicit_inputs: list[str] | None = None
    explicit_outputs: list[str] | None = None


@dataclass
class Outcome:
    """What running a step cell gave: its last value, and the outputs to show again when it
    came from the cache."""

    value: Any
    message: str = ""
    cached: bool = False
    replay: list[dict[str, Any]] = field(default_factory=list)


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


def seconds(s: float) -> str:
    """``12 ms`` or ``1.50 s``."""
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def _literal_strings(tree: ast.AST, ns: dict[str, Any]) -> set[str]:
    """String constants of the cell, and f-strings whose parts are names holding strings,
    numbers or paths (``f"{data_dir}/companies.csv"``), evaluated with today's values."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
        elif isinstance(node, ast.JoinedStr):
            parts = []
            for part in node.values:
                if isinstance(part, ast.Constant):
                    parts.append(str(part.value))
                elif isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name) \
                        and part.format_spec is None \
                        and isinstance(ns.get(part.value.id), (str, int, Path)):
                    parts.append(str(ns[part.value.id]))
                else:
                    break
            else:
                found.add("".join(parts))
    return found


def files_read(tree: ast.AST, inputs: dict[str, Any]) -> dict[str, Any]:
    """Files the cell names — by a literal path, an f-string of known parts, or an input
    variable holding a path — that exist now, with their fingerprints (size, mtime)."""
    candidates = _literal_strings(tree, inputs)
    candidates |= {str(v) for v in inputs.values() if isinstance(v, (str, Path))}
    found = {}
    for text in sorted(candidates):
        if not text or len(text) > 1024 or "\n" in text or "\0" in text:
            continue
        path = Path(text).expanduser()
        try:
            if path.is_file():
                found[text] = path_fingerprint(path.resolve())
        except OSError:
            continue
    return found


class Session:
    """The step cells of one kernel, the project's store, and the run they make.

    Args:
        namespace: the kernel's variables (``shell.user_ns``).
        paths: the project's paths (store, runs, tracker folders).
        observers: makes the run's observers when the first step cell runs (the run
            recorder and the tracker; importing a tracker may take a while).
        hidden: names of the namespace that are never inputs (IPython's own).
    """

    def __init__(self, namespace: dict[str, Any], paths: Paths, *,
                 observers: Callable[[Session], list[Observer]],
                 hidden: set[str] | None = None, run_id: str | None = None,
                 workflow: str = "notebook", headless: bool = False) -> None:
        self.ns = namespace
        self.paths = paths
        self.hidden = set(hidden or ()) | IPYTHON_NAMES
        self.headless = headless
        location = paths.store_location()
        self.store = open_store(location)
        self.steps: dict[str, StepCell] = {}
        self.producers: dict[str, str] = {}  # variable -> step whose output it is
        self.output_ids: dict[str, int] = {}  # variable -> id() of the value the step left
        self.views: list[Observer] = []  # added by the Jupyter extension (the live graph)
        self._make_observers = observers
        self.observers: Observers | None = None
        self.run = RunState(run_id=run_id or new_run_id(), workflow=workflow, parameters={},
                            graph=DescribedGraph(name=workflow), nodes={}, root=paths.root,
                            store=location.url, kind="notebook")

    # -- the run -------------------------------------------------------------------------------
    @property
    def watching(self) -> Observers:
        """The run's observers (starting the run at the first step cell)."""
        if self.observers is None:
            self.observers = Observers(self._make_observers(self) + self.views)
            self.observers.run_started(run=self.run)
            atexit.register(self.end)
        return self.observers

    def add_view(self, view: Observer) -> None:
        """Add an observer (a live graph) to the session's run from now on."""
        self.views.append(view)
        if self.observers is not None:
            self.observers.observers.append(view)

    def end(self) -> None:
        """End the run: ``failed`` if a step cell's last run failed, else ``succeeded``."""
        if self.observers is None or self.run.ended is not None:
            return
        failed = [s.name for s in self.steps.values() if s.status == "failed"]
        self.run.status = "failed" if failed else "succeeded"
        self.run.failed_step = failed[0] if failed else None
        self.run.ended = time.time()
        self.observers.run_finished(run=self.run)

    def _describe(self, step: StepCell) -> bool:
        """Put ``step`` in the run's graph; whether the graph changed."""
        by_source: dict[str, list[str]] = {}
        for name, source in step.upstream.items():
            by_source.setdefault(source, []).append(name)
        node = DescribedNode(
            id=step.name, kind="step", title=step.name, upstream=sorted(by_source),
            settings={k: v for k, v in step.settings.items()},
            inputs=[{"from": s, "label": ", ".join(sorted(n))} for s, n in by_source.items()])
        graph = self.run.graph
        if graph.nodes.get(step.name) == node:
            return False
        graph.nodes[step.name] = node
        self.run.nodes.setdefault(step.name, NodeRun(id=step.name, kind="step"))
        return True

    def _status(self, step: StepCell, status: NodeStatus) -> NodeRun:
        step.status = status
        node = self.run.nodes[step.name]
        node.status = status
        return node

    # -- keys ----------------------------------------------------------------------------------
    def _produced_by(self, name: str) -> str | None:
        """The step whose output ``name`` still holds (not rebound by a plain cell since)."""
        producer = self.producers.get(name)
        if producer is None or self.output_ids.get(name) != id(self.ns.get(name)):
            return None
        return producer

    def _remember(self, step: StepCell) -> None:
        for n in step.outputs:
            self.producers[n] = step.name
            self.output_ids[n] = id(self.ns.get(n))

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
        """The cache key of ``step`` with namespace values and files as they are now."""
        inputs = {n: self._input_component(n, self.ns[n]) for n in step.inputs if n in self.ns}
        components = {"scheme": SCHEME, "kind": "cell", "name": step.name,
                      "code": _code_digest(code), "inputs": inputs,
                      "outputs": step.explicit_outputs, "python": PYTHON}
        if step.files:
            components["files"] = step.files
        return digest(components), components

    # -- running a step ------------------------------------------------------------------------
    def step(self, name: str, code: str, execute: Execute, *, source: str | None = None,
             inputs: list[str] | None = None, outputs: list[str] | None = None,
             cache: bool = True, cell: str = "", cell_id: str | None = None) -> Outcome:
        """Run (or load from the cache) the step cell ``name`` whose code (IPython syntax
        already transformed) is ``code``; ``cell`` says which cell it is (``In [5]``)."""
        cache = cache and not os.environ.get("QFLOW_NO_CACHE")
        names = analyse(code)
        step = self._claim(name, source if source is not None else code, cell, cell_id)
        step.cache, step.explicit_inputs, step.explicit_outputs = cache, inputs, outputs
        self._restore_own_inputs(step)
        step.inputs = inputs if inputs is not None else sorted(
            n for n in names.refs if n in self.ns and n not in self.hidden)
        step.upstream = {n: p for n in step.inputs
                         if (p := self._produced_by(n)) is not None and p != name}
        step.settings = {n: self.ns[n] for n in step.inputs
                         if n not in step.upstream and isinstance(self.ns[n], SCALARS)}
        step.files = files_read(ast.parse(code), {n: self.ns[n] for n in step.inputs})
        self.steps[name] = step
        for clash in sorted(names.mutated & set(step.upstream)):
            print(f"[qflow] {name} changes `{clash}` in place, an output of step "
                  f"'{step.upstream[clash]}'. That step's result stays as it was in the store; "
                  f"running '{name}' again starts from it.", file=sys.stderr)
        previous_key = step.key
        step.key, step.components = self.key(step, code)
        watching = self.watching
        if self._describe(step):
            watching.graph_changed(run=self.run)
        with self.store.lock(shared=True):  # `qflow cache gc` waits until the record has it
            if cache and self.store.has(step.key):
                try:
                    outcome = self._load(step)
                except IntegrityError as exc:
                    print(f"[qflow] {name}: {exc.message}; recomputing.", file=sys.stderr)
                else:
                    self._finish(step, previous_key, "cached")
                    return outcome
        return self._execute(step, code, names, execute, previous_key)

    def _claim(self, name: str, source: str, cell: str, cell_id: str | None) -> StepCell:
        """The step ``name`` for this cell; refused when another cell has that name."""
        step = self.steps.get(name)
        if step is None:
            return StepCell(name=name, source=source, cell=cell, cell_id=cell_id)
        other_cell = (step.cell_id != cell_id) if (step.cell_id and cell_id) else \
            (self.headless and step.source != source)
        if other_cell:
            raise StepNameTaken(
                f"Step '{name}' is already the name of another cell ({step.cell or 'run before'}); "
                f"this cell{f' ({cell})' if cell else ''} cannot take it.",
                hint="Give this cell its own name: %%qflow_step NEW_NAME. (Running the same cell "
                     "again, edited, is fine.)")
        step.source, step.cell, step.cell_id = source, cell or step.cell, cell_id or step.cell_id
        return step

    def _restore_own_inputs(self, step: StepCell) -> None:
        """Inputs this step itself overwrote when it last ran (``df = clean(df)``, ``df["x"] =
        ...``) are put back as the upstream step left them, from the store."""
        for name, source in list(step.upstream.items()):
            upstream = self.steps.get(source)
            if self._produced_by(name) != step.name or upstream is None or not upstream.key:
                continue
            try:
                names = self.store.manifest(upstream.key)["names"]
                value = self.store.load(upstream.key, names.index(name))
            except (QFlowError, KeyError, ValueError):
                continue
            self.ns[name] = value
            self.producers[name], self.output_ids[name] = source, id(value)
            print(f"[qflow] {step.name}: `{name}` is back as step '{source}' left it (this cell "
                  f"changed it when it last ran).", file=sys.stderr)

    def _load(self, step: StepCell) -> Outcome:
        assert step.key is not None
        started = time.perf_counter()
        manifest = self.store.manifest(step.key)
        names: list[str] = manifest["names"]
        values = {n: self.store.load(step.key, i) for i, n in enumerate(names)}
        for alias, ref in manifest.get("modules", {}).items():
            module, _, attr = ref.partition(":")
            value = importlib.import_module(module)
            for part in attr.split(".") if attr else ():
                value = getattr(value, part)
            values[alias] = value
        result = values.pop(RESULT, None)
        replay = values.pop(OUTPUTS, None) or []
        self.ns.update(values)
        step.outputs = sorted(n for n in values if n not in manifest.get("modules", {}))
        self._remember(step)
        step.duration = time.perf_counter() - started
        ran = manifest.get("duration", 0.0)
        step.saved = max(ran - step.duration, 0.0)
        shown = ", ".join(step.outputs) or "no outputs"
        note = "; its output when it ran, replayed below" if replay else ""
        return Outcome(result, f"{step.name}: loaded from cache ({shown}) in "
                               f"{seconds(step.duration)}; running it took {seconds(ran)}{note}",
                       cached=True, replay=list(replay))

    def _execute(self, step: StepCell, code: str, names: CellNames, execute: Execute,
                 previous_key: str | None) -> Outcome:
        assert self.observers is not None and step.key is not None
        node = self._status(step, "running")
        node.metrics, node.error, node.key = [], None, step.key
        node.reasons = self._reasons(step, previous_key)
        self.observers.node_started(run=self.run, node=node)
        flush_lines()  # the cell may kill the kernel: what was logged before it is in the files
        token = REPORTER.set(lambda info: self._report(node, info))
        started = time.perf_counter()
        try:
            result, printed = execute(code)
        except BaseException as exc:
            step.duration = node.duration = time.perf_counter() - started
            node.error = f"{type(exc).__name__}: {exc}"
            self.run.failed_step = step.name
            self._status(step, "failed")
            self.observers.node_finished(run=self.run, node=node)
            raise
        finally:
            REPORTER.reset(token)
        step.duration = time.perf_counter() - started
        kept = step.explicit_outputs if step.explicit_outputs is not None else sorted(
            n for n in names.results | (names.mutated - names.deleted) if n in self.ns)
        step.outputs = [n for n in kept if n in self.ns]
        self._remember(step)
        if step.cache:
            imported = {n: self.ns[n] for n in names.imported if n in self.ns}
            self._save(step, result, printed, imported)
        self._finish(step, previous_key, "ran")
        shown = ", ".join(step.outputs) or "no outputs"
        return Outcome(result, f"{step.name}: ran in {seconds(step.duration)} ({shown})"
                               + ("" if step.cache else "; caching is off"))

    def _report(self, node: NodeRun, info: RuntimeInfo) -> None:
        assert self.observers is not None
        if isinstance(info, Metric):
            node.metrics.append({"name": info.name, "value": info.value, "step": info.step})
        self.observers.node_info(run=self.run, node=node, info=info)

    def _reasons(self, step: StepCell, previous_key: str | None) -> list[str]:
        """Why the cell runs, in the words workflow runs use."""
        if not step.cache:
            return ["caching is off for this step"]
        if previous_key is None:
            return ["not in the cache"]
        reasons = []
        node = self.run.nodes[step.name]
        old = node.components or {}
        if old.get("code") != step.components.get("code"):
            reasons.append(f"code of `{step.name}` changed")
        for n, part in step.components.get("inputs", {}).items():
            if old.get("inputs", {}).get(n) != part:
                reasons.append(f"input `{n}` changed")
        if old.get("files") != step.components.get("files"):
            reasons.append("a file it reads changed")
        return reasons or ["not in the cache"]

    def _save(self, step: StepCell, result: Any, printed: list[dict[str, Any]],
              imported: dict[str, Any]) -> None:
        assert step.key is not None
        modules = {n: ref for n, v in imported.items() if (ref := _import_reference(v))}
        values = [(n, self.ns[n]) for n in step.outputs if n not in modules]
        if result is not None:
            values.append((RESULT, result))
        if printed and sum(len(str(o)) for o in printed) <= OUTPUT_LIMIT:
            values.append((OUTPUTS, printed))
        skipped = []
        while True:
            meta = {"node": step.name, "names": [n for n, _ in values], "modules": modules,
                    "duration": step.duration, "run_id": self.run.run_id}
            try:
                self.store.save(step.key, [(v, None) for _, v in values], meta)
                break
            except FactoryError:
                bad = next((n for n, v in values if not self._saveable(v)), None)
                if bad is None:
                    raise
                skipped.append(bad)
                values = [(n, v) for n, v in values if n != bad]
        for n in skipped:
            if n not in (RESULT, OUTPUTS):
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

    def _finish(self, step: StepCell, previous_key: str | None, status: NodeStatus) -> None:
        assert self.observers is not None
        node = self._status(step, status)
        node.key, node.duration, node.components = step.key, step.duration, step.components
        if status == "cached":
            node.reasons, node.metrics, node.error = [], [], None
        if previous_key is not None and previous_key != step.key:
            if self._mark_stale(step.name):
                self.observers.graph_changed(run=self.run)
        self.observers.node_finished(run=self.run, node=node)

    def _mark_stale(self, name: str) -> bool:
        changed = False
        for other in self.steps.values():
            if name in other.upstream.values() and other.status in ("ran", "cached"):
                self._status(other, "stale")
                self._mark_stale(other.name)
                changed = True
        return changed

    def adopt(self, run_id: str, values: dict[str, Any], sources: dict[str, tuple[str, str]],
              unfinished: list[str] = ()) -> None:
        """Take a past run's outputs into the namespace as the outputs of its steps, so the
        cells that read them key on those steps (and come from the cache when unchanged).

        Args:
            values: name -> value.
            sources: name -> (step, key of its stored object).
            unfinished: steps of the run that did not finish: marked stale here, to run again.
        """
        watching = self.watching
        by_step: dict[str, list[str]] = {}
        for name, (step, _) in sources.items():
            by_step.setdefault(step, []).append(name)
        self.ns.update(values)
        for step_name, names in by_step.items():
            step = self.steps.get(step_name) or StepCell(name=step_name, source="")
            step.key, step.outputs, step.cell = sources[names[0]][1], sorted(names), f"run {run_id}"
            step.cache, step.duration = True, 0.0
            self.steps[step_name] = step
            self._remember(step)
            self._describe(step)
            self._status(step, "cached").key = step.key
        for step_name in unfinished:
            step = self.steps.get(step_name) or StepCell(name=step_name, source="")
            step.cell = step.cell or f"run {run_id}"
            self.steps[step_name] = step
            self._describe(step)
            self._status(step, "stale")
        watching.graph_changed(run=self.run)

    def stale(self) -> list[StepCell]:
        """Stale steps in the order they first ran (a dependency order)."""
        return [s for s in self.steps.values() if s.status == "stale"]

    def missing_name(self, name: str, notebook: Path | None = None) -> str:
        """Where a name a step cell read but nothing defined comes from: the step cell that
        outputs it (in this session, or in the notebook file), or that none does."""
        for step in self.steps.values():
            if name in step.outputs:
                return (f"`{name}` is an output of step '{step.name}' ({step.cell or 'run before'}),"
                        f" but it is no longer defined: run that cell again.")
        if notebook is not None and notebook.is_file():
            from qflow.notebook.document import read, step_cells

            try:
                cells = step_cells(read(notebook))
            except QFlowError:
                cells = []
            for cell in cells:
                try:
                    found = analyse(cell.code)
                except SyntaxError:
                    continue
                if name in found.outputs:
                    return (f"`{name}` is an output of step '{cell.name}' (cell {cell.index + 1} "
                            f"of {notebook.name}), which has not run in this kernel: run it first.")
        return f"No step cell run in this session defines `{name}`."


@dataclass
class SessionConfig:
    """Where a notebook of the project keeps its data, and the tracker it records into."""

    paths: Paths
    tracker: str | None = "file"
    tracker_settings: dict[str, Any] = field(default_factory=dict)


def session_config(start: Path | str | None = None) -> SessionConfig:
    """The configuration of the project around ``start`` (default: the working folder) as a
    notebook session uses it: the paths and the tracker of ``configs/project.yaml``; outside
    a project, ``./.qflow`` and the file tracker. ``QFLOW_TRACKER`` (a name, or ``none``)
    overrides the tracker."""
    paths = Paths.discover(start)
    config = SessionConfig(paths)
    if (paths.root / "configs" / "project.yaml").is_file():
        from qflow.config.loader import project_settings

        settings = project_settings(paths.root)
        extra = {k: v for k, v in (settings.tracker.model_extra or {}).items() if v is not None}
        extra.update(project=settings.project_name, experiment=settings.experiment_name)
        config = SessionConfig(Paths.from_settings(paths.root, settings.paths),
                               settings.tracker.name, extra)
    chosen = os.environ.get("QFLOW_TRACKER")
    if chosen:
        config.tracker, config.tracker_settings = (None if chosen == "none" else chosen), {}
    return config


def project_observers(session: Session, config: SessionConfig) -> list[Observer]:
    """The observers of a session's run: the run recorder and the project's tracker; in a
    headless run, only the event log its launcher reads (``QFLOW_EVENTS``)."""
    from qflow.runtime.record import RunRecorder
    from qflow.runtime.stream import EventLog
    from qflow.trackers import create

    events = os.environ.get("QFLOW_EVENTS")
    if events:
        return [EventLog(events)]
    observers: list[Observer] = [RunRecorder(session.paths.runs)]
    if config.tracker:
        observers.append(create(config.tracker, session.paths, config.tracker_settings,
                                announce=False))
    return observers
