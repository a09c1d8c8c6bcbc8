"""The shape of a composed workflow configuration, validated with pydantic."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Component(BaseModel):
    """One component choice (``tracker``, ``launcher``, ``tuner``): its name and settings."""

    model_config = ConfigDict(extra="allow")
    name: str


class PathsSettings(BaseModel):
    """Where QFlow keeps its local data, relative to the project root."""

    model_config = ConfigDict(extra="forbid")
    data: str = ".qflow"


class WorkflowSettings(BaseModel):
    """configs/project.yaml + component groups + a workflow's config.yaml + overrides."""

    model_config = ConfigDict(extra="forbid")
    project_name: str
    experiment_name: str | None = None
    experiment_id: str | None = None
    run_name: str | None = None
    run_id: str | None = None
    paths: PathsSettings = PathsSettings()
    launcher: Component = Component(name="local")
    tracker: Component = Component(name="file")
    tuner: Component | None = None
    inputs: dict[str, Any] = {}
    parameters: dict[str, Any] = {}
    tune: dict[str, Any] | None = None
