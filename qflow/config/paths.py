"""Project discovery and the paths of QFlow's local data (``.qflow/``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qflow.config.schema import PathsSettings

PROJECT_MARKER = Path("configs") / "project.yaml"


def find_project_root(start: Path | str | None = None) -> Path | None:
    """The nearest folder at or above ``start`` that holds ``configs/project.yaml``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_MARKER).is_file():
            return folder
    return None


@dataclass(frozen=True)
class Paths:
    """Where a project (or, outside any project, the working folder) keeps QFlow's data."""

    root: Path
    data_dir: str = ".qflow"

    @classmethod
    def discover(cls, start: Path | str | None = None) -> Paths:
        """The project around ``start``, else ``start`` itself (embedded defaults in ``./.qflow``)."""
        return cls(find_project_root(start) or Path(start or Path.cwd()).resolve())

    @classmethod
    def from_settings(cls, root: Path, settings: PathsSettings) -> Paths:
        """The paths a composed configuration's ``paths:`` section gives the project at ``root``."""
        return cls(root, settings.data)

    @property
    def data(self) -> Path:
        """``.qflow/`` (or the project's ``paths.data``): store, runs, tracker and tuner data."""
        return self.root / self.data_dir

    @property
    def store(self) -> Path:
        """The artifact store."""
        return self.data / "store"

    @property
    def runs(self) -> Path:
        """One folder per run: ``runs/<run_id>/record.json``."""
        return self.data / "runs"

    @property
    def tracker(self) -> Path:
        """Tracker data (the file tracker's JSON lines, MLflow's database)."""
        return self.data / "tracker"
