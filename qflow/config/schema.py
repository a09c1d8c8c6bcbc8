"""The shape of a composed workflow configuration, validated with pydantic."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Component(BaseModel):
    """One component choice (``tracker``, ``launcher``, ``tuner``): its name and settings."""

    model_config = ConfigDict(extra="allow")
    name: str


class PathsSettings(BaseModel):
    """Where QFlow keeps its data: local data relative to the project root, and the store.

    ``store`` is a folder (relative to the project root, or absolute) or an fsspec URL such as
    ``s3://bucket/prefix`` (default ``<data>/store``); ``storage_options`` go to the fsspec
    file system of a URL; ``trust_pickles`` allows loading cloudpickled values from a URL.
    """

    model_config = ConfigDict(extra="forbid")
    data: str = ".qflow"
    store: str | None = None
    storage_options: dict[str, Any] = {}
    trust_pickles: bool = False


class Distribution(BaseModel):
    """A tuned parameter's search space: float (low, high, log), int (low, high, step),
    or categorical (choices)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> Distribution:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty list of choices")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"a {self.type} parameter needs low and high")
            if self.low > self.high:
                raise ValueError(f"low ({self.low}) is greater than high ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("a log scale needs low > 0")
        return self


class TuneSettings(BaseModel):
    """The ``tune:`` section of a workflow's config.yaml."""

    model_config = ConfigDict(extra="forbid")
    objective: str = "result"
    direction: Literal["minimize", "maximize"] = "maximize"
    n_trials: int = Field(default=20, ge=1)
    timeout: float | None = None
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "none"] = "median"
    intermediate: str | None = None
    params: dict[str, Distribution] = Field(min_length=1)


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
    tune: TuneSettings | None = None
