"""Deferred tracking: a run is recorded into a slow tracker after it ends, from its event log.

A launcher's workflow run does not start a deferred tracker (MLflow: importing it alone takes
over a second, more than a cached run). :class:`Pending` stands in for it. When the run
starts, it lets the tracker check its settings against the run and writes a marker,
``<data>/tracker/sync/<run_id>.json`` (the tracker, its settings, the project's paths, the git
commit, the run's process id); when the run ends, it completes the marker (with where the
workflow's result is stored) and starts ``python -m qflow.trackers.sync`` in a new session,
its output going to ``sync/sync.log``. That process replays each finished run's
``events.jsonl`` into the real tracker with :class:`~qflow.runtime.stream.Replay` — the
tracker sees the hooks the live run would have called, with the run's own times and commit,
and its result loaded from the store — and deletes the marker when the run is recorded.
``qflow sync`` (:func:`sync`) does the same in the foreground; ``qflow.api`` calls it before
reading a deferred tracker, so a run is never missing there.

Concurrency contract: whoever syncs holds one lock (``sync/sync.lock``), so two processes
never sync at once, nor the same run. A background sync that finds the lock held leaves its
run to the holder, which looks for new markers again after it lets go. A sync that is killed
leaves the marker, so the next one finds the run again: it first discards the partial copy
(``Tracker.discard_run``), then replays the run whole — nothing lost, no duplicates. A run
whose process died before the run ended is synced as failed.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qflow.config.paths import Paths
from qflow.graph.described import DescribedGraph
from qflow.graph.fingerprint import FILE_MODULE_PREFIX
from qflow.runtime.events import Observer, RunState
from qflow.runtime.stream import Replay
from qflow.store.atomic import atomic_write_bytes, file_lock, process_alive
from qflow.trackers import create
from qflow.trackers.base import SyncMode, Tracker

CRASHED = ("The run's process ended before the run did (it crashed or was killed); recorded "
           "from its event log up to then.")
LOG_LIMIT = 1_000_000  # bytes of sync.log kept before it starts over
_spawned: list[int] = []  # process ids of the background syncs this process started


def folder_of(paths: Paths) -> Path:
    """Where markers of runs waiting to be synced are: ``<data>/tracker/sync``."""
    return paths.tracker / "sync"


@dataclass
class Marker:
    """A run waiting to be recorded into a deferred tracker."""

    run_id: str
    tracker: str
    settings: dict[str, Any]
    root: str
    data: str
    pid: int
    mode: SyncMode = "background"
    """The tracker's ``sync`` setting: ``manual`` runs wait for ``qflow sync``."""
    commit: str | None = None
    finished: bool = False
    result: list[Any] | None = None
    """``[key, index]`` of the stored output that is the workflow's result, if one is."""
    path: list[str] = field(default_factory=list)
    """The run's ``sys.path``: what loading its values from the store may import."""
    modules: dict[str, str] = field(default_factory=dict)
    """The run's workflow files, by module name: their classes' values load here too."""
    error: str | None = None
    """Why the last attempt to sync the run failed."""

    @property
    def paths(self) -> Paths:
        """The paths of the run's project."""
        return Paths(Path(self.root), self.data)

    @property
    def ready(self) -> bool:
        """Whether the run is over: it ended, or its process is gone."""
        return self.finished or not process_alive(self.pid)

    def write(self) -> None:
        """Publish the marker atomically (readers see the old or the new one)."""
        data = json.dumps(asdict(self), default=str, indent=1).encode()
        atomic_write_bytes(folder_of(self.paths) / f"{self.run_id}.json", data)

    def remove(self) -> None:
        """Delete the marker: the run is recorded."""
        (folder_of(self.paths) / f"{self.run_id}.json").unlink(missing_ok=True)


def markers(paths: Paths, *, tracker: str | None = None,
            run_ids: list[str] | None = None) -> list[Marker]:
    """The runs waiting to be synced (into ``tracker``; of ``run_ids``), oldest first."""
    folder = folder_of(paths)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        if run_ids is not None and path.stem not in run_ids:
            continue
        try:
            data = json.loads(path.read_text())
            marker = Marker(**{k: v for k, v in data.items()
                               if k in Marker.__dataclass_fields__})
        except (OSError, ValueError, TypeError):  # gone meanwhile (synced), or not a marker
            continue
        if tracker is None or marker.tracker == tracker:
            out.append(marker)
    return out


def _result_ref(run: RunState) -> list[Any] | None:
    """``[key, index]`` of the stored output the workflow returned as is, if it did."""
    from qflow.dsl.proxy import Proxy

    proxy = getattr(run.graph, "result", None)
    node = run.nodes.get(proxy.node) if isinstance(proxy, Proxy) else None
    if run.status != "succeeded" or node is None or not node.key:
        return None
    return [node.key, proxy.index]  # type: ignore[union-attr]


class Pending(Observer):
    """Stands in for a deferred ``tracker`` in a run: marks the run for the sync (see module)."""

    def __init__(self, tracker: Tracker, paths: Paths, settings: dict[str, Any]) -> None:
        self.tracker = tracker
        self.paths = paths
        self.settings = dict(settings)
        self.marker: Marker | None = None

    def run_started(self, *, run: RunState, **_: Any) -> None:
        self.tracker.validate(run)
        self.marker = Marker(run_id=run.run_id, tracker=self.tracker.name,
                             settings=self.settings, root=str(self.paths.root),
                             data=str(self.paths.data_dir), pid=os.getpid(),
                             mode=self.tracker.sync, commit=self.tracker.commit_of(run.root))
        self.marker.write()

    def run_finished(self, *, run: RunState, **_: Any) -> None:
        marker = self.marker
        if marker is None:
            return
        marker.finished, marker.result = True, _result_ref(run)
        marker.path = [os.path.abspath(p or os.curdir) for p in sys.path]
        marker.modules = {name: str(module.__file__) for name, module in list(sys.modules.items())
                          if name.startswith(FILE_MODULE_PREFIX)
                          and getattr(module, "__file__", None)}
        marker.write()
        background = self.tracker.sync == "background"
        if background:
            start_background(self.paths)
        if self.tracker.announce:
            note = "syncing in the background; `qflow sync` waits for it" if background \
                else "not recorded yet: `qflow sync` records it"
            failed = sum(1 for m in markers(self.paths) if m.error)
            if failed:
                note += f"; {failed} earlier run{'s' if failed > 1 else ''} could not be " \
                        "synced: `qflow sync` says why"
            self.tracker.say(run, note)


def start_background(paths: Paths) -> None:
    """Start ``python -m qflow.trackers.sync`` for the project, in a new session (it goes on
    after this process ends), its output appended to ``sync.log``. Where processes cannot be
    spawned so (Windows), runs wait for ``qflow sync``."""
    if not hasattr(os, "posix_spawn"):
        return
    _reap()
    folder = folder_of(paths)
    log = folder / "sync.log"
    argv = [sys.executable, "-m", "qflow.trackers.sync", str(paths.root), str(paths.data_dir)]
    files = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
             (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
             (os.POSIX_SPAWN_DUP2, 1, 2)]
    try:
        if log.exists() and log.stat().st_size > LOG_LIMIT:
            log.replace(folder / "sync.log.1")
        # posix_spawn leaves no Popen object to warn, when collected, that the child still runs
        _spawned.append(os.posix_spawn(sys.executable, argv, os.environ, setsid=True,
                                       file_actions=files))
    except OSError as exc:
        warnings.warn(f"The background sync of runs could not start ({exc}); `qflow sync` "
                      "records them.", RuntimeWarning, stacklevel=2)


def _reap() -> None:
    """Collect the exit status of background syncs that ended (no zombies in a long session)."""
    for pid in list(_spawned):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _spawned.remove(pid)


@dataclass
class SyncReport:
    """What a sync did: runs recorded (run id -> tracker), failed (run id -> the error), still
    running (left for later), dropped (their run record is gone), and whether it found
    another sync holding the lock and did nothing (``busy``)."""

    synced: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    running: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    busy: bool = False

    @property
    def attempted(self) -> set[str]:
        """Every run this sync looked at."""
        return {*self.synced, *self.failed, *self.running, *self.dropped}

    def summary(self) -> list[str]:
        """What happened, for people: one line per outcome (failures are in ``failed``)."""
        if self.busy:
            return ["A sync is in progress in another process; `qflow sync` waits for it."]
        lines = []
        if self.synced:
            counts: dict[str, int] = {}
            for name in self.synced.values():
                counts[name] = counts.get(name, 0) + 1
            where = ", ".join(f"{name} ({n})" if len(counts) > 1 else name
                              for name, n in counts.items())
            lines.append(f"Synced {_runs(len(self.synced))} to {where}.")
        if self.running:
            lines.append(f"{_runs(len(self.running)).capitalize()} still running "
                         f"({', '.join(self.running)}): synced when it ends.")
        if self.dropped:
            lines.append(f"Dropped {_runs(len(self.dropped))} whose run record is gone "
                         f"({', '.join(self.dropped)}).")
        if not lines and not self.failed:
            lines.append("Nothing to sync: every run is in its tracker.")
        return lines


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def sync(paths: Paths, run_ids: list[str] | None = None, *, tracker: str | None = None,
         wait: bool = True, waiting: Callable[[], None] | None = None,
         background: bool = False, skip: set[str] | frozenset[str] = frozenset()
         ) -> SyncReport:
    """Record the project's pending runs (``run_ids``, or all; of ``tracker``, or any) into
    their trackers, in this process.

    With ``wait``, a sync in progress elsewhere is waited for (``waiting()`` is called first)
    and the runs it recorded meanwhile count as synced; without, ``busy`` is reported and
    nothing done. The ``background`` sync leaves ``manual`` runs and those in ``skip`` alone;
    a sync in the foreground starts one for runs that ended while it held the lock.
    """
    def chosen() -> list[Marker]:
        return [m for m in markers(paths, tracker=tracker, run_ids=run_ids)
                if m.run_id not in skip and not (background and m.mode == "manual")]

    before = {m.run_id: m.tracker for m in chosen()}
    if not before:
        return SyncReport()
    lock = folder_of(paths) / "sync.lock"
    with file_lock(lock, wait=False) as held:
        report = _sync_held(chosen) if held else None
    if report is None:
        if not wait:
            return SyncReport(busy=True)
        if waiting is not None:
            waiting()
        with file_lock(lock):
            report = _sync_held(chosen)
    still = {m.run_id for m in chosen()}
    for run_id, name in before.items():  # recorded by the sync this one waited for
        if run_id not in still and run_id not in report.attempted:
            report.synced[run_id] = name
    if not background and any(m.ready and m.mode == "background" and not m.error
                              and m.run_id not in report.attempted for m in markers(paths)):
        start_background(paths)  # their own background sync found this one holding the lock
    return report


def _sync_held(chosen: Callable[[], list[Marker]]) -> SyncReport:
    """Record the ``chosen()`` runs, until no new one comes (the caller holds the lock)."""
    report = SyncReport()
    while True:
        batch = [m for m in chosen() if m.run_id not in report.attempted]
        if not batch:
            return report
        for marker in batch:
            if not marker.ready:
                report.running.append(marker.run_id)
                continue
            try:
                recorded = record(marker)
            except Exception as exc:  # the tracker's error: kept with the run, retried later
                marker.error = f"{marker.tracker}: {type(exc).__name__}: {exc}"
                marker.write()
                report.failed[marker.run_id] = marker.error
                continue
            marker.remove()
            if recorded:
                report.synced[marker.run_id] = marker.tracker
            else:
                report.dropped.append(marker.run_id)


def drop(paths: Paths, tracker: str, then: Callable[[], None] | None = None) -> int:
    """Forget the project's runs waiting for ``tracker`` (its data is being deleted), then call
    ``then()``, with no sync running meanwhile; return how many runs were dropped."""
    folder = folder_of(paths)
    if not folder.is_dir():
        if then is not None:
            then()
        return 0
    with file_lock(folder / "sync.lock"):
        dropped = markers(paths, tracker=tracker)
        for marker in dropped:
            marker.remove()
        if then is not None:
            then()
    return len(dropped)


class _LoggedGraph(DescribedGraph):
    """A described graph that describes itself as the run logged it (its result's edges
    included, which a described graph leaves out), so the picture is the live run's."""

    logged: dict[str, Any]

    @classmethod
    def of(cls, data: dict[str, Any]) -> _LoggedGraph:
        described = DescribedGraph.from_dict(data)
        graph = cls(name=described.name, nodes=described.nodes)
        graph.logged = data
        return graph

    def to_dict(self) -> dict[str, Any]:
        return self.logged


class _Replaying(Observer):
    """Hands a replayed run to ``tracker`` as the live run would have: the logged graph, and
    the result loaded from the store."""

    def __init__(self, tracker: Tracker, marker: Marker, graph: dict[str, Any] | None) -> None:
        self.tracker = tracker
        self.marker = marker
        self.graph = graph

    def run_started(self, *, run: RunState, **kwargs: Any) -> None:
        if self.graph is not None and run.kind == "workflow":
            run.graph = _LoggedGraph.of(self.graph)
        self.tracker.run_started(run=run, **kwargs)

    def graph_changed(self, **kwargs: Any) -> None:
        self.tracker.graph_changed(**kwargs)

    def node_started(self, **kwargs: Any) -> None:
        self.tracker.node_started(**kwargs)

    def node_info(self, **kwargs: Any) -> None:
        self.tracker.node_info(**kwargs)

    def node_finished(self, **kwargs: Any) -> None:
        self.tracker.node_finished(**kwargs)

    def run_finished(self, *, run: RunState, **kwargs: Any) -> None:
        if self.marker.result and run.status == "succeeded" and run.store:
            from qflow.store.location import StoreLocation, open_store

            key, index = self.marker.result
            try:
                run.result = open_store(StoreLocation.of(str(run.store))).load(key, int(index))
            except Exception as exc:  # recorded by its summary, as the run record has it
                print(f"run {run.run_id}: its result was not loaded from the store ({exc!r}); "
                      "recorded by its summary", file=sys.stderr)
        self.tracker.run_finished(run=run, **kwargs)


class _WorkflowFiles(importlib.abc.MetaPathFinder):
    """Finds the modules of workflow files (``_qflow_file_...``) a run had loaded, so values
    of their classes load from the store here too; the files run only if a value needs them."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        file = self.files.get(name)
        if file is None or not os.path.isfile(file):
            return None
        return importlib.util.spec_from_file_location(name, file)


def _importable(marker: Marker) -> None:
    """Make what the run could import importable in this process (after its own paths)."""
    for entry in marker.path:
        if entry not in sys.path:
            sys.path.append(entry)
    files = {k: v for k, v in marker.modules.items() if k not in sys.modules}
    if files:
        sys.meta_path.append(_WorkflowFiles(files))


def _events(path: Path) -> list[dict[str, Any]]:
    """The complete events of a run's log (a torn last line is left out)."""
    out = []
    with open(path, "rb") as handle:
        for line in handle:
            if line.endswith(b"\n"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    return out


def record(marker: Marker) -> bool:
    """Replay the run of ``marker`` into its tracker; ``False`` if its event log is gone."""
    paths = marker.paths
    try:
        events = _events(paths.runs / marker.run_id / "events.jsonl")
    except FileNotFoundError:
        return False
    if not events or events[0].get("event") != "run_started":
        return False
    _importable(marker)
    tracker = create(marker.tracker, paths, marker.settings, announce=False)
    now = [float(events[0].get("t") or time.time())]
    tracker.clock = lambda: now[0]
    tracker.commit_of = lambda root: marker.commit
    tracker.replaying = True
    replay = Replay(_Replaying(tracker, marker, events[0]["run"].get("graph")))
    with warnings.catch_warnings():  # a tracker's warnings are shown, never a sync's failure
        for category in (RuntimeWarning, UserWarning):
            warnings.simplefilter("default", category)
        tracker.discard_run(marker.run_id)  # what an interrupted sync left
        for event in events:
            now[0] = float(event.get("t") or now[0])
            replay.apply(event)
        if events[-1].get("event") != "run_finished":
            replay.apply({"event": "run_finished", "t": now[0],
                          "run": {"status": "failed", "ended": now[0], "error": CRASHED}})
    return True


def main(argv: list[str] | None = None) -> int:
    """The background sync: ``python -m qflow.trackers.sync ROOT DATA``. Records every
    pending run of the project, then looks again for runs that ended meanwhile."""
    root, data = argv if argv is not None else sys.argv[1:3]
    paths = Paths(Path(root), data)
    os.chdir(paths.root)  # as the run did: relative paths in settings mean the same
    attempted: set[str] = set()
    while True:
        report = sync(paths, wait=False, background=True, skip=attempted)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        for run_id, tracker in report.synced.items():
            print(f"{stamp} synced {run_id} to {tracker}", flush=True)
        for run_id, error in report.failed.items():
            print(f"{stamp} FAILED {run_id}: {error}", flush=True)
        if report.busy:  # the holder looks for new runs when it lets go
            return 0
        attempted |= report.attempted
        if not [m for m in markers(paths) if m.run_id not in attempted and m.ready
                and m.mode != "manual"]:
            return 0


if __name__ == "__main__":
    sys.exit(main())
