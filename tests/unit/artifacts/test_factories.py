from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

import qflow
from qflow.artifacts.registry import FactoryRegistry
from qflow.errors import FactoryError
from qflow.plugins import Registry


class Point(BaseModel):
    x: float
    y: float


class Opaque:
    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.value == self.value


def roundtrip(registry: FactoryRegistry, obj: Any, tmp_path: Path, declared: Any = None) -> Any:
    factory = registry.choose(declared, obj)
    folder = tmp_path / "a"
    folder.mkdir()
    factory.save(obj, folder)
    return registry.from_spec(factory.spec()).load(folder), factory


@pytest.fixture
def registry() -> FactoryRegistry:
    return FactoryRegistry()


@pytest.mark.parametrize(
    ("obj", "name"),
    [
        ({"a": [1, 2.5, None, True, "x"]}, "json"),
        (3, "json"),
        (b"\x00\x01bytes", "bytes"),
        (Point(x=1, y=2), "pydantic"),
        (Opaque(7), "pickle"),
        ((1, "two", b"3"), "tuple"),
        ([Opaque(1), Opaque(2)], "list"),
        ({"k": Opaque(1)}, "dict"),
    ],
)
def test_builtin_factories_roundtrip(registry, tmp_path, obj, name):
    loaded, factory = roundtrip(registry, obj, tmp_path)
    assert factory.name == name
    assert loaded == obj and type(loaded) is type(obj)


def test_numpy_roundtrip_is_memory_mapped(registry, tmp_path):
    array = np.arange(12, dtype="float32").reshape(3, 4)
    loaded, factory = roundtrip(registry, array, tmp_path)
    assert factory.name == "numpy" and isinstance(loaded, np.memmap)
    np.testing.assert_array_equal(loaded, array)
    loaded[0, 0] = 99  # copy-on-write: the stored file is untouched
    assert np.load(tmp_path / "a" / "array.npy")[0, 0] == 0


def test_object_arrays_fall_back_to_pickle(registry, tmp_path):
    array = np.array([{"a": 1}, None], dtype=object)
    loaded, factory = roundtrip(registry, array, tmp_path)
    assert factory.name == "pickle" and loaded[0] == {"a": 1}


def test_pandas_roundtrip_keeps_index_and_dtypes(registry, tmp_path):
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]},
                         index=pd.Index([10, 20, 30], name="id"))
    loaded, factory = roundtrip(registry, frame, tmp_path)
    assert factory.name == "pandas"
    pd.testing.assert_frame_equal(loaded, frame)


def test_series_roundtrip(registry, tmp_path):
    series = pd.Series([1.5, 2.5], index=["a", "b"], name="price")
    loaded, factory = roundtrip(registry, series, tmp_path)
    assert factory.name == "pandas-series"
    pd.testing.assert_series_equal(loaded, series)


def test_frame_with_non_string_columns_falls_back_to_pickle(registry, tmp_path):
    frame = pd.DataFrame({0: [1], 1: [2]})
    loaded, factory = roundtrip(registry, frame, tmp_path)
    assert factory.name == "pickle"
    pd.testing.assert_frame_equal(loaded, frame)


def test_path_file_and_folder_are_copied(registry, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "model.bin").write_bytes(b"weights")
    (source / "sub").mkdir()
    (source / "sub" / "c.txt").write_text("c")
    loaded, factory = roundtrip(registry, source, tmp_path)
    assert factory.name == "path" and loaded != source
    assert (loaded / "model.bin").read_bytes() == b"weights"
    assert (loaded / "sub" / "c.txt").read_text() == "c"


@pytest.mark.parametrize(
    ("annotation", "ident"),
    [
        (int, "json@1"),
        (np.ndarray, "numpy@1"),
        (pd.DataFrame, "pandas@1"),
        (tuple[np.ndarray, pd.DataFrame], "tuple[numpy@1,pandas@1]@1"),
        (list[np.ndarray], "list[numpy@1]@1"),
        (dict[str, Point], "dict[pydantic@1]@1"),
        (Optional[np.ndarray], "optional[numpy@1]@1"),
        (np.ndarray | None, "optional[numpy@1]@1"),
        (tuple[Any, int], "tuple[*,json@1]@1"),
    ],
)
def test_lookup_by_annotation(registry, annotation, ident):
    assert registry.for_annotation(annotation).ident == ident


def test_unknown_annotations_decide_at_run_time(registry):
    assert registry.for_annotation(Any) is None
    assert registry.for_annotation(Opaque) is None
    assert registry.for_annotation(object) is None


@pytest.mark.parametrize(
    ("annotation", "obj"),
    [
        (tuple[np.ndarray, pd.DataFrame], (np.ones(3), pd.DataFrame({"a": [1]}))),
        (list[np.ndarray], [np.ones(2), np.zeros(3)]),
        (dict[str, Point], {"p": Point(x=0, y=1), "q": Point(x=2, y=3)}),
        (Optional[np.ndarray], None),
        (Optional[np.ndarray], np.arange(3)),
    ],
)
def test_composites_roundtrip(registry, tmp_path, annotation, obj):
    loaded, _ = roundtrip(registry, obj, tmp_path, registry.for_annotation(annotation))
    if obj is None:
        assert loaded is None
    elif isinstance(obj, tuple):
        np.testing.assert_array_equal(loaded[0], obj[0])
        pd.testing.assert_frame_equal(loaded[1], obj[1])
    elif isinstance(obj, list):
        assert len(loaded) == 2 and all(np.array_equal(a, b) for a, b in zip(loaded, obj, strict=True))
    elif isinstance(obj, dict):
        assert loaded == obj
    else:
        np.testing.assert_array_equal(loaded, obj)


def test_declared_factory_that_does_not_fit_falls_back_to_the_value(registry, tmp_path):
    loaded, factory = roundtrip(registry, [1, 2], tmp_path, registry.for_annotation(np.ndarray))
    assert factory.name == "json" and loaded == [1, 2]


def test_user_factory_by_decorator_and_register(registry, tmp_path):
    class Celsius(float):
        pass

    class CelsiusFactory(qflow.Factory):
        name = "celsius"
        types = (Celsius,)

        def save(self, obj: Any, path: Path) -> None:
            (path / "c.txt").write_text(repr(float(obj)))

        def load(self, path: Path) -> Any:
            return Celsius(float((path / "c.txt").read_text()))

    registry.register(CelsiusFactory())
    loaded, factory = roundtrip(registry, Celsius(21.5), tmp_path)
    assert factory.name == "celsius" and loaded == 21.5 and isinstance(loaded, Celsius)
    assert registry.for_annotation(Celsius).name == "celsius"

    qflow.factory(CelsiusFactory)  # the decorator registers in the default registry
    assert qflow.registry.get("celsius").name == "celsius"


def test_factory_version_mismatch_is_an_error(registry):
    with pytest.raises(FactoryError, match="version 7"):
        registry.from_spec({"name": "json", "version": 7})
    with pytest.raises(FactoryError, match="No artifact factory named 'nope'"):
        registry.from_spec({"name": "nope", "version": 1})


def test_unpicklable_value_is_a_clear_error(registry, tmp_path):
    import threading

    with pytest.raises(FactoryError, match="cannot be pickled"):
        roundtrip(registry, threading.Lock(), tmp_path)


def test_entry_point_factories_are_discovered(tmp_path, monkeypatch):
    package = tmp_path / "qflow_kelvin"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from pathlib import Path\n"
        "import qflow\n"
        "class Kelvin(float):\n    pass\n"
        "class KelvinFactory(qflow.Factory):\n"
        "    name = 'kelvin'\n"
        "    types = ('qflow_kelvin.Kelvin',)\n"
        "    def save(self, obj, path):\n        (path / 'k').write_text(repr(float(obj)))\n"
        "    def load(self, path):\n        return Kelvin(float((path / 'k').read_text()))\n"
    )
    dist = tmp_path / "qflow_kelvin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: qflow-kelvin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[qflow.factories]\nkelvin = qflow_kelvin:KelvinFactory\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import qflow.artifacts.registry as module

    monkeypatch.setattr(module, "plugins", Registry("qflow.factories", {}))
    registry = FactoryRegistry()
    import qflow_kelvin  # type: ignore[import-not-found]

    loaded, factory = roundtrip(registry, qflow_kelvin.Kelvin(300.0), tmp_path)
    assert factory.name == "kelvin" and loaded == 300.0


def test_save_and_load_outside_the_store(tmp_path):
    frame = pd.DataFrame({"a": [1, 2]})
    qflow.save(frame, tmp_path / "table")
    pd.testing.assert_frame_equal(qflow.load(tmp_path / "table"), frame)
    qflow.save({"replaced": True}, tmp_path / "table")
    assert qflow.load(tmp_path / "table") == {"replaced": True}
    with pytest.raises(FactoryError, match="not a saved artifact"):
        qflow.load(tmp_path)


def test_json_values_under_composite_annotations_are_one_file(registry):
    assert registry.choose(registry.for_annotation(list[float]), [1.0, 2.0]).name == "json"
    assert registry.choose(registry.for_annotation(dict[str, int]), {"a": 1}).name == "json"
    assert registry.choose(registry.for_annotation(tuple[int, int]), (1, 2)).name == "tuple"


@pytest.mark.parametrize("array", [
    np.arange(12.0).reshape(3, 4), np.asfortranarray(np.arange(12).reshape(3, 4)),
    np.arange(20)[::3], np.array(5.0), np.zeros((0, 3)), np.array(["a", "bc"]),
    np.arange(4, dtype=">i4"), np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
    np.array(["2020-01-01"], dtype="M8[D]")])
def test_numpy_files_are_what_numpy_save_writes(registry, tmp_path, array):
    """The factory writes the array's buffer itself (hashing it, copying nothing): the file
    must stay byte for byte what ``numpy.save`` writes."""
    import io

    from qflow.artifacts.checksum import file_digest, recording

    expected = io.BytesIO()
    np.save(expected, array, allow_pickle=False)
    with recording() as recorded:
        registry.get("numpy").save(array, tmp_path)
    written = tmp_path / "array.npy"
    assert written.read_bytes() == expected.getvalue()
    assert recorded[str(written)][1] == file_digest(written)
