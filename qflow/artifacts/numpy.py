"""numpy arrays as ``.npy`` files, loaded memory-mapped (copy-on-write)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qflow.artifacts.base import Factory


class NumpyFactory(Factory):
    """``numpy.ndarray`` of any non-object dtype; loads memory-mapped, so nothing is read early."""

    name = "numpy"
    types = ("numpy.ndarray",)

    def accepts(self, obj: Any) -> bool:
        import numpy as np

        return isinstance(obj, np.ndarray) and not obj.dtype.hasobject

    def save(self, obj: Any, path: Path) -> None:
        import numpy as np

        with open(path / "array.npy", "wb") as f:
            np.save(f, obj, allow_pickle=False)

    def load(self, path: Path) -> Any:
        import numpy as np

        array = np.load(path / "array.npy", mmap_mode="c", allow_pickle=False)
        return array if array.ndim else array[()]
