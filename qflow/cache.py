"""The artifact store in hand: what it holds and for which runs, checked, and collected.

``qflow cache ls | du | verify | gc`` come here. A stored object is joined with the run
records by its key: a run *uses* an object when one of its nodes has that key (it ran and
stored it, or took it from the cache). An object's *last use* is the end of the newest run
that used it, or when it was stored.

``gc`` removes what no kept run uses, and is safe while runs are in flight: it holds the
store's lock (:meth:`~qflow.store.local.Store.lock`) while it chooses and removes; a run
holds the same lock shared from finding a key in the store until its record names that key.
So everything a run in progress (a record ``running`` whose process is alive) uses, and
everything it is storing, is kept; ``tmp/`` (objects being written), ``scratch/`` and
``quarantine/`` are never touched. Only the store's public methods are used (``keys``,
``manifest``, ``size``, ``verify``, ``remove``, ``lock``), so the store's format stays its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError, IntegrityError, QFlowError, StoreError
from qflow.runtime.record import effective_status, list_records, node_entries
from qflow.store.local import Store


@dataclass
class RunUse:
    """The objects one run uses, by key."""

    run_id: str
    workflow: str
    last: float
    """When the run ended (or now, for a run in progress)."""
    running: bool
    keys: dict[str, str] = field(default_factory=dict)
    """key -> the node (step) that has it."""


@dataclass
class StoredObject:
    """One object of the store: its size, what made it, and the runs that use it."""

    key: str
    size: int
    created: float
    node: str | None
    """The step that stored it (its manifest's ``node``)."""
    made_by: str | None
    """The run that stored it."""
    workflow: str | None
    """The workflow of the newest run that uses it (else of the run that stored it)."""
    step: str | None
    runs: list[str] = field(default_factory=list)
    """The runs that use it, newest first."""
    last_used: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, for ``--json``."""
        return dict(vars(self))


def run_uses(runs_dir: Path | str, now: float | None = None) -> list[RunUse]:
    """What every recorded run uses, newest first (a run in progress included)."""
    now = time.time() if now is None else now
    out = []
    for record in list_records(runs_dir):
        running = effective_status(record) == "running"
        nodes = node_entries(runs_dir, record)
        keys = {str(n["key"]): nid for nid, n in nodes.items()
                if n.get("key") and n.get("kind") != "input"}
        last = now if running else float(record.get("ended") or record.get("started") or 0.0)
        out.append(RunUse(run_id=str(record.get("run_id")), workflow=str(record.get("workflow")),
                          last=last, running=running, keys=keys))
    return out


def local_store(store: Any, command: str) -> Store:
    """``store`` if it is a local store; a clear error for a remote one."""
    if isinstance(store, Store):
        return store
    raise StoreError(f"`qflow cache {command}` is not supported for remote stores yet (the "
                     f"store is {getattr(store, 'url', store)}).",
                     hint="Manage the bucket with its own tools; the local cache of a remote "
                          "store (paths.data/cache) can be deleted at any time.")


def _objects(store: Store, uses: list[RunUse]) -> Iterator[StoredObject]:
    by_key: dict[str, list[RunUse]] = {}
    for use in uses:
        for key in use.keys:
            by_key.setdefault(key, []).append(use)
    runs = {use.run_id: use for use in uses}
    for key in store.keys():
        try:
            manifest = store.manifest(key)
        except IntegrityError:  # unreadable: the store moved it to quarantine
            continue
        except QFlowError:  # unreadable in a read-only store (verify says more), or removed
            manifest = {}
        try:
            size = store.size(key)
        except OSError:
            continue
        using = by_key.get(key, [])
        made_by = manifest.get("run_id")
        node = manifest.get("node")
        created = float(manifest.get("created") or 0.0)
        if using:
            workflow, step = using[0].workflow, using[0].keys[key]
        else:
            maker = runs.get(str(made_by))
            workflow, step = (maker.workflow if maker else None), node
        yield StoredObject(key=key, size=size, created=created, node=node, made_by=made_by,
                           workflow=workflow, step=step, runs=[u.run_id for u in using],
                           last_used=max([created, *(u.last for u in using)]))


def inventory(store: Any, runs_dir: Path | str) -> list[StoredObject]:
    """Every object of the local ``store`` with the runs (records in ``runs_dir``) that use
    it, by workflow, step and last use (newest first)."""
    objects = list(_objects(local_store(store, "ls"), run_uses(runs_dir)))
    return sorted(objects, key=lambda o: (o.workflow or "~", o.step or "", -o.last_used))


def usage(objects: list[StoredObject]) -> list[dict[str, Any]]:
    """Totals per workflow and step: ``{"workflow", "step", "objects", "size"}`` rows."""
    totals: dict[tuple[str, str], list[int]] = {}
    for obj in objects:
        row = totals.setdefault((obj.workflow or "-", obj.step or "-"), [0, 0])
        row[0] += 1
        row[1] += obj.size
    return [{"workflow": w, "step": s, "objects": n, "size": size}
            for (w, s), (n, size) in sorted(totals.items())]


@dataclass
class Damaged:
    """An object whose files did not match their checksums; it was quarantined."""

    key: str
    node: str | None
    problem: str


@dataclass
class Verification:
    """What ``verify`` checked and found."""

    checked: int = 0
    size: int = 0
    damaged: list[Damaged] = field(default_factory=list)


def verify(store: Any) -> Verification:
    """Check every file of every object against its checksum (the store's own ``verify``,
    in full); a damaged object is quarantined, so the step that made it is recomputed."""
    store = local_store(store, "verify")
    report = Verification()
    for key in list(store.keys()):
        node = None
        try:
            node = store.manifest(key).get("node")
            report.size += store.size(key)
            store.verify(key, full=True)
        except IntegrityError as exc:
            report.damaged.append(Damaged(key, node, exc.message))
        except StoreError:  # removed meanwhile (by gc)
            continue
        report.checked += 1
    store.flush()  # large files verified in full are stamped: later loads need not hash them
    return report


@dataclass
class Collection:
    """What ``gc`` removed (or would remove, with ``dry_run``) and kept."""

    removed: list[StoredObject]
    kept: list[StoredObject]
    in_use: int
    """How many kept objects runs in progress use or are storing."""
    dry_run: bool = False

    @property
    def freed(self) -> int:
        """Bytes removed (or that would be)."""
        return sum(o.size for o in self.removed)

    @property
    def left(self) -> int:
        """Bytes the store holds afterwards."""
        return sum(o.size for o in self.kept)


def collect(store: Any, runs_dir: Path | str, *, older_than: float | None = None,
            max_size: int | None = None, keep_runs: int | None = None, dry_run: bool = False,
            now: float | None = None) -> Collection:
    """Remove the objects no kept run uses.

    Args:
        older_than: remove objects last used more than this many seconds ago.
        max_size: then remove the least recently used until the store holds at most this
            many bytes.
        keep_runs: keep what the newest ``keep_runs`` runs of each workflow use; without
            ``older_than`` or ``max_size``, remove everything else.
        dry_run: remove nothing; say what would be removed.

    What runs in progress use or are storing is always kept.
    """
    if older_than is None and max_size is None and keep_runs is None:
        raise ConfigError("Say what gc removes: --older-than AGE, --max-size SIZE or "
                          "--keep-runs N.", hint="Add --dry-run to see it before anything "
                                                 "is removed, e.g. `qflow cache gc --keep-runs 3 "
                                                 "--dry-run`.")
    store = local_store(store, "gc")
    with store.lock():  # runs wait before using a key from the store until gc is done
        started = time.time()
        now = started if now is None else now
        uses = run_uses(runs_dir, now)
        objects = list(_objects(store, uses))
        running = {u.run_id for u in uses if u.running}
        in_use = {k for u in uses if u.running for k in u.keys}
        in_use |= {o.key for o in objects if o.made_by in running or o.created >= started}
        kept = set(in_use)
        if keep_runs is not None:
            seen: dict[str, int] = {}
            for use in uses:  # newest first
                if seen.get(use.workflow, 0) < keep_runs:
                    kept |= set(use.keys)
                seen[use.workflow] = seen.get(use.workflow, 0) + 1
        free = sorted((o for o in objects if o.key not in kept), key=lambda o: o.last_used)
        if older_than is None and max_size is None:
            chosen = free
        else:
            old = {o.key for o in free if older_than is not None and o.last_used < now - older_than}
            total = sum(o.size for o in objects if o.key not in old)
            for obj in free:  # least recently used first
                if max_size is None or total <= max_size:
                    break
                if obj.key not in old:
                    old.add(obj.key)
                    total -= obj.size
            chosen = [o for o in free if o.key in old]
        gone = {o.key for o in chosen}
        if not dry_run:
            for key in gone:
                store.remove(key)
            store.compact()  # packed objects leave their packs
    return Collection(removed=sorted(chosen, key=lambda o: (o.workflow or "~", o.step or "")),
                      kept=[o for o in objects if o.key not in gone],
                      in_use=sum(1 for o in objects if o.key in in_use), dry_run=dry_run)
