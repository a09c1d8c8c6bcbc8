"""Where a stored blob object's bytes are, for tests that damage or rewrite them."""

from __future__ import annotations

from pathlib import Path

from qflow.store.packs import Packs


def span(root: Path | str, key: str) -> tuple[Path, int, int]:
    """The file that holds blob object ``key`` (its pack, or its ``.blob`` file) and the
    offset and length of its record there."""
    packs = Packs(Path(root))
    entry = packs.find(key)
    if entry is not None:
        writer, offset, length = entry
        return packs.pack_path(writer), offset, length
    path = Path(root) / "objects" / key[:2] / f"{key}.blob"
    return path, 0, path.stat().st_size


def record(root: Path | str, key: str) -> bytes:
    """The record of blob object ``key``: its manifest line, then its payload."""
    path, offset, length = span(root, key)
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def overwrite(root: Path | str, key: str, data: bytes) -> None:
    """Replace the record of ``key`` in place with ``data`` of the same length."""
    path, offset, length = span(root, key)
    assert len(data) == length
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def loosen(root: Path | str, key: str) -> Path:
    """Turn the packed object ``key`` into a ``.blob`` file, as stores made before packs (or
    large values) hold it; returns the file."""
    data = record(root, key)
    Packs(Path(root)).withdraw(key)
    path = Path(root) / "objects" / key[:2] / f"{key}.blob"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
