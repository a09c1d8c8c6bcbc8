"""Compose a workflow's configuration with Hydra and validate it.

The workflow's folder is the config dir and its ``config.yaml`` the primary config; the
project's ``configs/`` folder is on the search path, so ``defaults: [project, _self_]`` pulls
in ``configs/project.yaml`` and its component groups, and ``override tracker: file`` in the
workflow's defaults switches a component for that workflow alone. Command-line overrides in
Hydra syntax come last; ``parameters.*`` and ``inputs.*`` overrides are applied after
composing so that any parameter of the workflow class can be set, even one the file omits.
A bare ``NAME=VALUE`` whose name is no top-level key (``tracker``, ``launcher``...) is the
workflow parameter ``parameters.NAME``, as ``python workflow.py NAME=VALUE`` reads it.
Every mistake is a :class:`~qflow.errors.ConfigError` naming the file and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from qflow.config.paths import Paths, find_project_root
from qflow.config.schema import WorkflowSettings
from qflow.errors import ConfigError

_OWN_SECTIONS = ("parameters.", "inputs.")


@dataclass
class WorkflowConfig:
    """A validated configuration and where each of its values came from."""

    settings: WorkflowSettings
    files: list[Path]
    workflow_file: Path
    from_command_line: set[str] = field(default_factory=set)

    def source_of(self, key: str) -> str:
        """The file (or "the command line") that sets dotted ``key``."""
        if key in self.from_command_line:
            return "the command line"
        for path in self.files:
            if _has_key(_read_yaml(path), key.split(".")):
                return str(path)
        return str(self.workflow_file)


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: the YAML cannot be read: {problem}.",
                          hint="Fix the syntax at that position (indentation, colons, quotes).") \
            from None
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc}.") from None


def _has_key(data: Any, parts: list[str]) -> bool:
    for part in parts:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def parse_value(raw: str) -> Any:
    """A command-line value as YAML would read it (``0.5``, ``true``, ``[1, 2]``, ``text``)."""
    import yaml

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _split_overrides(overrides: list[str]) -> tuple[list[str], dict[str, Any]]:
    hydra, own = [], {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Cannot read the override {item!r}.",
                              hint="Write overrides as KEY=VALUE, e.g. parameters.alpha=0.3 "
                                   "or tracker=file.")
        if key.isidentifier() and key not in WorkflowSettings.model_fields:
            key = f"parameters.{key}"  # a bare name is a workflow parameter, as in workflow.py
        if key.startswith(_OWN_SECTIONS):
            own[key] = parse_value(raw)
        else:
            hydra.append(item)
    return hydra, own


def load_config(root: Path, workflow_dir: Path, overrides: list[str] | None = None) -> WorkflowConfig:
    """Compose and validate the configuration of the workflow in ``workflow_dir``."""
    primary = workflow_dir / "config.yaml"
    if not primary.is_file():
        raise ConfigError(f"The workflow folder {workflow_dir} has no config.yaml.",
                          hint="Create it with `qflow new -w NAME`, or add a config.yaml with "
                               "`defaults: [project, _self_]`.")
    configs = root / "configs"
    files = [primary, *sorted(configs.rglob("*.yaml"))]
    for path in files:  # clear YAML errors before Hydra reports them its own way
        _read_yaml(path)
    hydra_overrides, own = _split_overrides(list(overrides or []))
    _check_choices(primary, configs, hydra_overrides)
    data = _compose(workflow_dir, configs, hydra_overrides)
    for key, value in own.items():
        section, _, name = key.partition(".")
        target = data.setdefault(section, {})
        for part in name.split(".")[:-1]:
            target = target.setdefault(part, {})
        target[name.split(".")[-1]] = value
    config = WorkflowConfig(WorkflowSettings.model_construct(), files, primary,
                            {k for k in own} | {o.partition("=")[0] for o in hydra_overrides})
    try:
        config.settings = WorkflowSettings.model_validate(data)
    except ValidationError as exc:
        raise _config_error(config, exc) from None
    return config


def project_settings(root: Path) -> WorkflowSettings:
    """The project's own configuration (``configs/project.yaml`` and its component choices),
    composed as a workflow with no settings of its own sees it: the paths, tracker and
    launcher that commands about the whole project use (``qflow cache``, notebooks)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:  # a workflow folder of the project's defaults
        (Path(tmp) / "config.yaml").write_text("defaults: [project, _self_]\n")
        return load_config(root, Path(tmp)).settings


def project_paths(start: Path | str | None = None) -> Paths:
    """Where the project around ``start`` (the working folder by default) keeps its runs and
    its store, as its ``paths:`` configuration says; outside a project, ``./.qflow``."""
    root = find_project_root(start)
    if root is None:
        return Paths.discover(start)
    return Paths.from_settings(root, project_settings(root).paths)


def _check_choices(primary: Path, configs: Path, overrides: list[str]) -> None:
    """Each component choice (``- tracker: mlflow`` in a defaults list, ``tracker=file`` on the
    command line) names a file ``configs/<component>/<choice>.yaml``; else one clear error."""
    groups = {p.name for p in configs.iterdir() if p.is_dir()} if configs.is_dir() else set()
    chosen: list[tuple[str, str, str]] = []  # (where, component, choice)
    for path in (configs / "project.yaml", primary):
        defaults = _read_yaml(path).get("defaults") if path.is_file() else None
        for entry in defaults if isinstance(defaults, list) else []:
            if isinstance(entry, dict) and len(entry) == 1:
                [(group, choice)] = entry.items()
                group = str(group).removeprefix("override").strip()
                if group in groups and isinstance(choice, str):
                    chosen.append((f"{path}: defaults: `- {group}: {choice}`", group, choice))
    for item in overrides:
        group, _, choice = item.partition("=")
        if group in groups:
            chosen.append((f"the command line: {item}", group, choice))
    for where, group, choice in chosen:
        if not (configs / group / f"{choice}.yaml").is_file():
            known = sorted(p.stem for p in (configs / group).glob("*.yaml"))
            raise ConfigError(
                f"{where}: unknown {group} {choice!r} (no configs/{group}/{choice}.yaml); "
                f"choices: {', '.join(known) or 'none'}.",
                hint=f"Fix the name, or add a {group} with `qflow configure -c {group}=CHOICE`.")


def _compose(workflow_dir: Path, configs: Path, overrides: list[str]) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(workflow_dir.resolve()), version_base=None):
            cfg = compose(config_name="config",
                          overrides=[f"hydra.searchpath=[file://{configs.resolve()}]", *overrides])
        data = OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as exc:
        message = str(exc).strip().replace("\n", " ")
        raise ConfigError(f"Cannot compose the configuration of {workflow_dir}: {message}",
                          hint="Check the override or the defaults list; group choices are the "
                               "file names under configs/<group>/.") from None
    finally:
        GlobalHydra.instance().clear()
    assert isinstance(data, dict)
    return data


def _config_error(config: WorkflowConfig, exc: ValidationError) -> ConfigError:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        source = config.source_of(key)
        if err["type"] == "extra_forbidden":
            parts.append(f"{source}: unknown key '{key}'")
        elif err["type"] == "missing":
            parts.append(f"{source}: missing key '{key}'")
        else:
            parts.append(f"{source}: '{key}': {err['msg'].lower()}, got {err.get('input')!r}")
    return ConfigError("; ".join(parts) + ".",
                       hint="Known top-level keys: " + ", ".join(WorkflowSettings.model_fields))
