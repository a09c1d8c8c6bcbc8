"""pandas DataFrames and Series as parquet files (pyarrow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qflow.artifacts.base import Factory


def _parquet_safe(columns: Any) -> bool:
    return all(isinstance(c, str) for c in columns)


class DataFrameFactory(Factory):
    """``pandas.DataFrame`` with string column names, index and dtypes kept."""

    name = "pandas"
    types = ("pandas.DataFrame", "pandas.core.frame.DataFrame")

    def accepts(self, obj: Any) -> bool:
        import pandas as pd

        return isinstance(obj, pd.DataFrame) and _parquet_safe(obj.columns)

    def save(self, obj: Any, path: Path) -> None:
        obj.to_parquet(path / "frame.parquet", engine="pyarrow")

    def load(self, path: Path) -> Any:
        import pandas as pd

        return pd.read_parquet(path / "frame.parquet", engine="pyarrow")


class SeriesFactory(Factory):
    """``pandas.Series``, stored as a one-column parquet file."""

    name = "pandas-series"
    types = ("pandas.Series", "pandas.core.series.Series")

    def accepts(self, obj: Any) -> bool:
        import pandas as pd

        return isinstance(obj, pd.Series) and (obj.name is None or isinstance(obj.name, str))

    def save(self, obj: Any, path: Path) -> None:
        (path / "series.json").write_text(json.dumps({"name": obj.name}))
        obj.to_frame(name="values").to_parquet(path / "series.parquet", engine="pyarrow")

    def load(self, path: Path) -> Any:
        import pandas as pd

        name = json.loads((path / "series.json").read_text())["name"]
        return pd.read_parquet(path / "series.parquet", engine="pyarrow")["values"].rename(name)
