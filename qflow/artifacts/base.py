"""The artifact factory protocol: a name, a format version, save and load."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from qflow.artifacts.checksum import written


class Factory(ABC):
    """Saves and loads one kind of artifact into and from a folder of its own.

    A factory that opens its files with :func:`qflow.artifacts.checksum.written` has them
    hashed as they are written; the store hashes any other file after ``save``.

    Subclasses set ``name`` (unique in a registry), ``version`` (bump when the on-disk format
    changes, which invalidates cached artifacts) and ``types`` (the classes it handles, or
    their dotted names so the library need not be imported), and implement ``save``/``load``.
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    types: ClassVar[tuple[type | str, ...]] = ()

    def accepts(self, obj: Any) -> bool:
        """Whether this factory can save ``obj`` (checked when an annotation picked it)."""
        return True

    @abstractmethod
    def save(self, obj: Any, path: Path) -> None:
        """Write ``obj`` into the existing, empty folder ``path``."""

    @abstractmethod
    def load(self, path: Path) -> Any:
        """Read back what ``save`` wrote into ``path``."""

    def spec(self) -> dict[str, Any]:
        """What the store records to find this factory again when loading."""
        return {"name": self.name, "version": self.version}

    @property
    def ident(self) -> str:
        """A short text identity, part of cache keys."""
        return f"{self.name}@{self.version}"

    def __repr__(self) -> str:
        return f"<factory {self.ident}>"


class BlobFactory(Factory):
    """A factory whose artifact is one blob of bytes made in memory.

    Subclasses implement ``dumps`` and ``loads``; the store keeps such an artifact as a
    single file (its manifest and the bytes), the cheapest thing a file system can create.
    """

    filename: ClassVar[str] = "data.bin"

    @abstractmethod
    def dumps(self, obj: Any) -> bytes:
        """The bytes of ``obj``."""

    @abstractmethod
    def loads(self, data: bytes) -> Any:
        """The object ``dumps`` made ``data`` from."""

    def save(self, obj: Any, path: Path) -> None:
        with written(path / self.filename) as f:
            f.write(self.dumps(obj))

    def load(self, path: Path) -> Any:
        return self.loads((path / self.filename).read_bytes())
