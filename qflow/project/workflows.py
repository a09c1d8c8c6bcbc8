"""A project's workflows: find them, import their class, compose and check their config.

Everything needed before a workflow computes, and nothing is written: the project root and
its ``workflows/NAME`` folders, the one ``@qflow.workflow`` class of a ``workflow.py``, the
composed configuration validated against that class (parameters and ``inputs:``), and the
configured tracker's settings. :mod:`qflow.workflows` runs and tunes what this prepares;
``qflow visualise`` draws it.
"""

from __future__ import annotations

import importlib.util
import keyword
import sys
from pathlib import Path
from typing import Any

from qflow.config.loader import WorkflowConfig, load_config
from qflow.config.paths import find_project_root
from qflow.dsl.decorators import WorkflowBase
from qflow.errors import ConfigError, SettingsError, user_traceback
from qflow.graph.fingerprint import FILE_MODULE_PREFIX


def project_root(start: Path | str | None = None) -> Path:
    """The project around ``start`` (the working folder by default), or a clear error."""
    root = find_project_root(start)
    if root is None:
        here = Path(start or Path.cwd()).resolve()
        raise ConfigError(f"No QFlow project at {here} or above it (no configs/project.yaml).",
                          hint="Create one with `qflow init -p NAME`, or run from inside one.")
    return root


def workflow_names(root: Path) -> list[str]:
    """The workflows of the project at ``root``."""
    folder = root / "workflows"
    return sorted(p.parent.name for p in folder.glob("*/config.yaml")) if folder.is_dir() else []


def workflow_dir(root: Path, name: str) -> Path:
    """``workflows/NAME`` of the project, checked to exist."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ConfigError(f"{name!r} is not a workflow name (a Python identifier).")
    folder = root / "workflows" / name
    if not (folder / "config.yaml").is_file():
        known = ", ".join(workflow_names(root)) or "none yet"
        raise ConfigError(f"The project {root} has no workflow {name!r} (workflows: {known}).",
                          hint=f"Create it with `qflow new -w {name}`.")
    return folder


def load_workflow_class(path: Path) -> type[WorkflowBase]:
    """Import the workflow file ``path`` and return its one ``@qflow.workflow`` class."""
    if not path.is_file():
        raise ConfigError(f"The workflow file {path} does not exist.")
    root = find_project_root(path.parent)
    for folder in (path.parent, root / "src" if root else None):  # as `python workflow.py` sees
        if folder is not None and folder.is_dir() and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    module_name = f"{FILE_MODULE_PREFIX}{path.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise ConfigError(f"{exc.filename}:{exc.lineno}: syntax error: {exc.msg}.") from None
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"Importing {path} failed:\n{user_traceback(exc)}") from None
    found = [v for v in vars(module).values() if isinstance(v, type)
             and issubclass(v, WorkflowBase) and v.__module__ == module_name]
    if len(found) != 1:
        what = ", ".join(c.__name__ for c in found) or "none"
        raise ConfigError(f"{path} must define exactly one @qflow.workflow class (found: {what}).")
    return found[0]


def build_inputs(config: WorkflowConfig, root: Path, run_inputs: list[str]) -> dict[str, Any]:
    """The ``inputs:`` section as values and providers, checked against ``run()``'s inputs."""
    from qflow import providers
    from qflow.artifacts.saved import SPEC

    out: dict[str, Any] = {}
    for name, spec in config.settings.inputs.items():
        if name not in run_inputs:
            raise ConfigError(
                f"{config.source_of(f'inputs.{name}')}: unknown key 'inputs.{name}': the "
                f"workflow's run() takes {', '.join(run_inputs) or 'no inputs'}.")
        if isinstance(spec, dict) and "path" in spec:
            path = Path(str(spec["path"]))
            full = path if path.is_absolute() else root / path
            if not full.exists():
                raise ConfigError(
                    f"{config.source_of(f'inputs.{name}.path')}: 'inputs.{name}.path': "
                    f"{path} does not exist (looked for {full}).",
                    hint="Fix the path (relative to the project root) or create the data.")
            if "load" in spec or "args" in spec:
                out[name] = _loaded_input(config, name, spec, path)
            elif len(spec) > 1:
                raise _unknown_input_keys(config, name, spec)
            else:
                out[name] = providers.factory_load(path) if (full / SPEC).is_file() \
                    else providers.file(path)
        else:
            out[name] = spec
    return out


_PATH_INPUT_KEYS = ("path", "load", "args")


def _unknown_input_keys(config: WorkflowConfig, name: str, spec: dict[str, Any]) -> ConfigError:
    key = f"inputs.{name}.{next(k for k in spec if k not in _PATH_INPUT_KEYS)}"
    return ConfigError(f"{config.source_of(key)}: unknown key '{key}': a file input takes "
                       f"{', '.join(_PATH_INPUT_KEYS)}.",
                       hint="e.g. {path: data/a.csv, load: pandas.read_csv, args: {sep: ';'}}.")


def _loaded_input(config: WorkflowConfig, name: str, spec: dict[str, Any], path: Path) -> Any:
    """``{path, load, args}``: the file read by the named loader, checked to be importable."""
    from qflow import providers

    if any(k not in _PATH_INPUT_KEYS for k in spec):
        raise _unknown_input_keys(config, name, spec)
    key = f"inputs.{name}.load"
    loader = spec.get("load")
    if not isinstance(loader, str) or not loader:
        raise ConfigError(f"{config.source_of(key)}: '{key}' must name a loader such as "
                          f"pandas.read_csv, got {loader!r}.",
                          hint="Set `load:` to an importable callable (module.function).")
    try:
        providers.import_loader(loader)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        raise ConfigError(f"{config.source_of(key)}: '{key}': cannot use {loader!r} as a "
                          f"loader: {exc}.",
                          hint="Name an importable callable, e.g. pandas.read_csv or "
                          "package.module:function, and install its package.") from None
    args = spec.get("args") or {}
    if not isinstance(args, dict):
        akey = f"inputs.{name}.args"
        raise ConfigError(f"{config.source_of(akey)}: '{akey}' must be a mapping of keyword "
                          f"arguments of {loader}, got {args!r}.")
    return providers.read(path, loader, dict(args)) if args else providers.read(path, loader)


def make_workflow(cls: type[WorkflowBase], config: WorkflowConfig) -> WorkflowBase:
    """The workflow instance with the configured parameters, or an error naming the key."""
    params = config.settings.parameters
    unknown = [k for k in params if k not in cls.model_fields]
    if unknown:
        key = f"parameters.{unknown[0]}"
        raise ConfigError(
            f"{config.source_of(key)}: unknown key '{key}': {cls.__name__} has no parameter "
            f"{unknown[0]!r} (parameters: {', '.join(cls.model_fields) or 'none'}).",
            hint="Fix the name, or add the field to the workflow class.")
    try:
        return cls(**params)
    except SettingsError as exc:
        sources = sorted({config.source_of(f"parameters.{k}") for k in params})
        raise ConfigError(f"{' / '.join(sources) or config.workflow_file}: {exc.message}",
                          hint="Fix the value under `parameters:` or on the command line.") from None


def prepare(root: Path, folder: Path, overrides: list[str], *,
            cls: type[WorkflowBase] | None = None) -> tuple[WorkflowConfig, WorkflowBase, dict[str, Any]]:
    """The validated config, the workflow instance and its inputs; nothing is written."""
    import inspect

    config = load_config(root, folder, overrides)
    cls = cls or load_workflow_class(folder / "workflow.py")
    workflow = make_workflow(cls, config)
    run_inputs = list(inspect.signature(cls.run).parameters)[1:]
    return config, workflow, build_inputs(config, root, run_inputs)


def is_notebook_workflow(folder: Path) -> bool:
    """Whether ``workflows/NAME`` is a notebook (``workflow.ipynb``, no ``workflow.py``)."""
    return (folder / "workflow.ipynb").is_file() and not (folder / "workflow.py").is_file()


def tracker_settings(config: WorkflowConfig) -> dict[str, Any]:
    """The configured tracker's settings, with the project and experiment names."""
    settings = config.settings
    out = {k: v for k, v in (settings.tracker.model_extra or {}).items() if v is not None}
    out.update(project=settings.project_name, experiment=settings.experiment_name)
    return out
