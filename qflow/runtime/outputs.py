"""A past run's outputs as a mapping that loads each one from the artifact store when asked.

Names are a workflow run's step (node) names, or, for a notebook session, the variables its
step cells defined (:func:`variable_slots`). Nothing is read until a name is looked up, and
then only that output: other names of the same step stay unread (beyond the checksum check
the store makes before it trusts an object), and numpy arrays come back memory-mapped, as the
store's numpy factory loads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from qflow.errors import ConfigError

FINISHED = ("ran", "cached")
"""Node statuses whose outputs are in the store."""


@dataclass(frozen=True)
class Slot:
    """Where a name's value is: the object ``key`` of the node ``node``; output ``index``, or
    every output (one value, or a tuple for several) when ``index`` is ``None``."""

    node: str
    key: str
    index: int | None = None


def finished(nodes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The node entries (of a run record) whose outputs were stored: steps and cached
    providers that ran or came from the cache."""
    return {nid: n for nid, n in nodes.items()
            if n.get("key") and n.get("kind") != "input" and n.get("status") in FINISHED}


def step_slots(nodes: dict[str, dict[str, Any]]) -> dict[str, Slot]:
    """A slot per finished node, by node name: every output of the node."""
    return {nid: Slot(nid, str(n["key"])) for nid, n in finished(nodes).items()}


def variable_slots(nodes: dict[str, dict[str, Any]], store: Any,
                   hidden: Iterable[str] = ()) -> dict[str, Slot]:
    """A slot per variable the finished step cells stored (their manifests' ``names``), in
    the order the cells ran, a later cell winning for a name several define; ``hidden``
    names (the session's own) are left out."""
    hidden = set(hidden)
    out: dict[str, Slot] = {}
    for nid, node in finished(nodes).items():
        key = str(node["key"])
        for index, name in enumerate(store.manifest(key).get("names") or []):
            if name not in hidden:
                out.pop(name, None)  # re-inserted: the mapping lists names in the cells' order
                out[name] = Slot(nid, key, index)
    return out


class LazyArtifacts(Mapping[str, Any]):
    """A run's outputs by name, each loaded from the artifact store on first access and kept.

    Args:
        slots: where each name's value is.
        store: the opened store, or its URL (opened on first access; a local folder that
            is not there is a :class:`ConfigError`).
        run_id: the run, for messages.
    """

    def __init__(self, slots: dict[str, Slot], store: Any, *, run_id: str | None = None) -> None:
        self._slots = dict(slots)
        self._store = store
        self.run_id = run_id
        self._values: dict[str, Any] = {}

    @property
    def store(self) -> Any:
        """The artifact store the values come from."""
        if self._store is None or isinstance(self._store, str):
            from qflow.store.location import StoreLocation, open_store

            url = self._store or ""
            location = StoreLocation.of(url)
            if not url or (location.is_local and not location.path.is_dir()):
                raise ConfigError(f"The artifact store of this run ({url or 'unknown'}) is not "
                                  "reachable from here.")
            self._store = open_store(location)
        return self._store

    @property
    def loaded(self) -> set[str]:
        """The names loaded so far."""
        return set(self._values)

    def slot(self, name: str) -> Slot:
        """Where ``name``'s value is (its step and key), without loading it."""
        try:
            return self._slots[name]
        except KeyError:
            where = f" of run {self.run_id}" if self.run_id else ""
            raise KeyError(f"{name!r}: no artifact of that name{where} (names: "
                           f"{', '.join(self._slots) or 'none'})") from None

    def __getitem__(self, name: str) -> Any:
        if name not in self._values:
            slot = self.slot(name)
            store = self.store
            if slot.index is not None:
                self._values[name] = store.load(slot.key, slot.index)
            else:
                count = len(store.manifest(slot.key)["outputs"])
                values = [store.load(slot.key, i) for i in range(count)]
                self._values[name] = values[0] if count == 1 else tuple(values)
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._slots)

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, name: object) -> bool:
        return name in self._slots

    def __repr__(self) -> str:
        run = f" of run {self.run_id}" if self.run_id else ""
        return f"LazyArtifacts{run}({', '.join(self._slots)})"
