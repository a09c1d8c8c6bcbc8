"""numpy arrays as ``.npy`` files, loaded memory-mapped (copy-on-write).

Saving writes the ``.npy`` header, then the array's own buffer in one ``write``: the bytes are
hashed on their way to the file (:func:`~qflow.artifacts.checksum.written`) and never copied,
where ``numpy.save`` to anything but a plain file copies them in 16 MiB chunks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qflow.artifacts.base import Factory
from qflow.artifacts.checksum import written


def _write_npy(f: Any, array: Any) -> None:
    """Write ``array`` to ``f`` in the ``.npy`` format, as ``numpy.save`` does."""
    import numpy as np

    fmt = np.lib.format
    header = fmt.header_data_from_array_1_0(array)
    try:
        fmt.write_array_header_1_0(f, header)
    except ValueError:  # a header too long for format 1.0 (many fields)
        fmt.write_array_header_2_0(f, header)
    if array.flags.c_contiguous:
        data = array
    elif array.flags.f_contiguous:  # the header says fortran_order: write it as stored
        data = array.T
    else:  # strided: numpy.save's own loop, one chunk copied at a time
        for chunk in np.nditer(array, flags=["external_loop", "buffered", "zerosize_ok"],
                               buffersize=max(16 * 1024 ** 2 // max(array.itemsize, 1), 1),
                               order="C"):
            f.write(chunk.tobytes("C"))
        return
    f.write(memoryview(data.reshape(-1).view(np.uint8)))


class NumpyFactory(Factory):
    """``numpy.ndarray`` of any non-object dtype; loads memory-mapped, so nothing is read early."""

    name = "numpy"
    types = ("numpy.ndarray",)

    def accepts(self, obj: Any) -> bool:
        import numpy as np

        # dtypes of the new API (StringDType) hold pointers: numpy.save would pickle them
        return (isinstance(obj, np.ndarray) and not obj.dtype.hasobject
                and getattr(type(obj.dtype), "_legacy", True))

    def save(self, obj: Any, path: Path) -> None:
        with written(path / "array.npy") as f:
            _write_npy(f, obj)

    def load(self, path: Path) -> Any:
        import numpy as np

        array = np.load(path / "array.npy", mmap_mode="c", allow_pickle=False)
        return array if array.ndim else array[()]
