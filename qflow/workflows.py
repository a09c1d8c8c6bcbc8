"""Running a project's workflow, and ``qflow.launch`` for ``python workflow.py``.

``qflow run -w NAME`` and ``python workflows/NAME/workflow.py`` both come here, so they do
the same thing: compose the configuration, validate parameters and inputs against the
workflow class (``qflow.project.workflows``), and compute it with the configured
launcher and tracker, search its parameters with the configured tuner, or plan a run
(``qflow plan``, ``python workflow.py plan``: what would run and why, running nothing).

``python workflow.py [run] [alpha=0.5 | parameters.alpha=0.5 ...]`` outside a project
builds the workflow with those parameters and computes it with the local launcher and
embedded defaults. Exit codes: 0 on success, 1 when a step fails, 2 for a mistake in the
command or the workflow, 130 when interrupted (Ctrl-C), 143 when terminated (SIGTERM, handled
like Ctrl-C: the run is recorded ``killed``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qflow.config.loader import load_config
from qflow.config.paths import Paths, find_project_root
from qflow.errors import ConfigError, QFlowError, StepError, report_error
from qflow.project.workflows import is_notebook_workflow, prepare, tracker_settings
from qflow.runtime.interrupt import exit_code, sigterm_as_interrupt

if TYPE_CHECKING:
    from qflow.config.loader import WorkflowConfig
    from qflow.dsl.decorators import WorkflowBase
    from qflow.launchers.base import Launcher
    from qflow.runtime.events import RunState
    from qflow.runtime.plan import RunPlan

USAGE = """\
usage: python {prog} [run|tune|plan] [NAME=VALUE ...] [--no-cache] [--json]

Runs the workflow {name} (`plan`: says which steps a run would compute and why, runs
nothing; --json for scripts). NAME is a workflow parameter ({fields}); the Hydra spelling
parameters.NAME=VALUE works too. Values are parsed as JSON where they can be (0.5, true, [1,2]).
"""


def run_notebook_workflow(root: Path, folder: Path, overrides: list[str], *,
                          cache: bool = True, console: bool = True) -> RunState:
    """Run ``workflows/NAME/workflow.ipynb`` headlessly with its configured parameters.

    The kernel runs in the folder the notebook was exported from (``qflow export`` notes it),
    so the notebook's relative paths hold as they did there.
    """
    from qflow.launchers.papermill import PapermillLauncher
    from qflow.notebook import parameter_names, read, working_folder

    config = load_config(root, folder, overrides)
    notebook = folder / "workflow.ipynb"
    nb = read(notebook)
    known = parameter_names(nb, notebook)
    values = config.settings.parameters
    for name in values:
        if name not in known:
            key = f"parameters.{name}"
            raise ConfigError(f"{config.source_of(key)}: unknown key '{key}': the notebook has no "
                              f"parameter {name!r} (parameters: {', '.join(known) or 'none'}).")
    settings = config.settings
    launcher = PapermillLauncher(Paths.from_settings(root, settings.paths),
                                 tracker=settings.tracker.name,
                                 tracker_settings=tracker_settings(config), console=console,
                                 cache=cache)
    return launcher.launch(notebook, values, name=folder.name, cwd=working_folder(nb, notebook))


def run_notebook(path: Path, values: dict[str, Any], *, kernel: str | None = None,
                 cwd: Path | None = None, cache: bool = True) -> RunState:
    """Run any notebook headlessly with ``values`` as its parameters (``qflow run --notebook``).

    The run is tracked in files and kept by the project of the current folder, else in the
    current folder; the kernel runs in ``cwd`` (default: the notebook's folder).
    """
    from qflow.launchers.papermill import PapermillLauncher

    path = path.resolve()
    launcher = PapermillLauncher(Paths.discover(), tracker="file", kernel=kernel, cache=cache)
    return launcher.launch(path, values, name=path.stem, cwd=cwd)


def make_launcher(config: WorkflowConfig, root: Path, *, console: bool = True,
                  cache: bool = True) -> Launcher:
    """The configured launcher (``launcher:``), with the project's paths and tracker."""
    from qflow.launchers import launchers

    settings = config.settings
    launcher_cls: Any = launchers.get(settings.launcher.name)
    own = {k: v for k, v in (settings.launcher.model_extra or {}).items() if v is not None}
    try:
        return launcher_cls(Paths.from_settings(root, settings.paths),
                            tracker=settings.tracker.name,
                            tracker_settings=tracker_settings(config), console=console,
                            cache=cache, **own)
    except ConfigError as exc:
        raise ConfigError(f"{config.source_of('launcher.name')}: {exc.message}",
                          hint=exc.hint) from None


def run_workflow(root: Path, folder: Path, overrides: list[str], *,
                 cls: type[WorkflowBase] | None = None, cache: bool = True,
                 console: bool = True) -> RunState:
    """Compose, validate and compute the workflow in ``folder`` of the project at ``root``."""
    if cls is None and is_notebook_workflow(folder):
        return run_notebook_workflow(root, folder, overrides, cache=cache, console=console)
    config, workflow, inputs = prepare(root, folder, overrides, cls=cls)
    with make_launcher(config, root, console=console, cache=cache) as launcher:
        return launcher.launch(workflow, inputs, name=folder.name)


def plan_workflow(root: Path, folder: Path, overrides: list[str], *,
                  cls: type[WorkflowBase] | None = None, cache: bool = True) -> RunPlan:
    """What ``run_workflow`` would do with the same arguments, computing nothing: which steps
    would run and why, which come from the cache, and the time they took in past runs."""
    if cls is None and is_notebook_workflow(folder):
        raise ConfigError(f"{folder / 'workflow.ipynb'} is a notebook workflow: its steps are "
                          "known only as its cells run, so it cannot be planned.",
                          hint=f"Run it (`qflow run -w {folder.name}`): cells whose key is in "
                               "the cache load instead of running.")
    from qflow.launchers.base import GraphLauncher

    config, workflow, inputs = prepare(root, folder, overrides, cls=cls)
    with make_launcher(config, root, console=False, cache=cache) as launcher:
        if not isinstance(launcher, GraphLauncher):
            raise ConfigError(f"The {launcher.name} launcher runs notebooks; it cannot plan "
                              f"the workflow {folder.name}.")
        return launcher.plan(workflow, inputs, name=folder.name)


def tune_workflow(root: Path, folder: Path, overrides: list[str], *, n_trials: int | None = None,
                  n_jobs: int = 1, cls: type[WorkflowBase] | None = None) -> Any:
    """Run the workflow's Optuna study (its ``tune:`` section) and print the best trial."""
    from qflow.tuners import tuners
    from qflow.tuners.optuna import TuneRequest

    config, workflow, inputs = prepare(root, folder, overrides, cls=cls)
    settings = config.settings
    tune = settings.tune
    if tune is None:
        raise ConfigError(f"{config.workflow_file} has no `tune:` section.",
                          hint="Add `tune: {objective: result, direction: maximize, n_trials: 20, "
                               "params: {alpha: {type: float, low: 0.001, high: 1.0, log: true}}}`.")
    fields = type(workflow).model_fields
    for name in tune.params:
        if name not in fields:
            key = f"tune.params.{name}"
            raise ConfigError(f"{config.source_of(key)}: unknown key '{key}': "
                              f"{type(workflow).__name__} has no parameter {name!r} "
                              f"(parameters: {', '.join(fields) or 'none'}).")
    tuner_settings = settings.tuner.model_extra if settings.tuner else {}
    with make_launcher(config, root, console=False) as launcher:
        request = TuneRequest(
            name=folder.name, study=f"{settings.project_name}/{folder.name}",
            cls=type(workflow), parameters=workflow.model_dump(), inputs=inputs, settings=tune,
            launcher=launcher, storage=(tuner_settings or {}).get("storage"))
        tuner_cls: Any = tuners.get(settings.tuner.name if settings.tuner else "optuna")
        study = tuner_cls(request).tune(n_trials=n_trials, n_jobs=n_jobs)
    try:
        best = study.best_trial
    except ValueError:
        raise ConfigError(f"No trial of {request.study} completed.",
                          hint="Look at the failed runs with `qflow ps -w " + folder.name + "`.") \
            from None
    command = " ".join(f"parameters.{k}={v!r}" if isinstance(v, str) else f"parameters.{k}={v}"
                       for k, v in best.params.items())
    print(f"Best trial {best.number}: {tune.objective}={best.value:.6g} with "
          + ", ".join(f"{k}={v!r}" for k, v in best.params.items()))
    print(f"Run the workflow with them: qflow run -w {folder.name} {command}")
    return study


def parse_overrides(workflow_cls: Any, items: list[str]) -> dict[str, Any]:
    """``["alpha=0.5", "parameters.depth=3"]`` -> ``{"alpha": 0.5, "depth": 3}``, checked."""
    fields = getattr(workflow_cls, "model_fields", {})
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.removeprefix("parameters.").strip()
        if not sep or not name:
            raise ConfigError(f"Cannot read the argument {item!r}.",
                              hint="Pass parameters as NAME=VALUE, e.g. alpha=0.5.")
        if name not in fields:
            raise ConfigError(
                f"{workflow_cls.__name__} has no parameter {name!r} "
                f"(parameters: {', '.join(fields) or 'none'}).",
                hint="Check the spelling, or add the field to the workflow class.",
            )
        if fields[name].annotation is str:
            out[name] = raw
        else:
            try:
                out[name] = json.loads(raw)
            except json.JSONDecodeError:
                out[name] = raw
    return out


def _project_folder(workflow_cls: Any) -> tuple[Path, Path] | None:
    """The project root and workflow folder of a workflow file that has a config.yaml."""
    file = getattr(sys.modules.get(workflow_cls.__module__), "__file__", None)
    if not file:
        return None
    folder = Path(file).resolve().parent
    root = find_project_root(folder)
    return (root, folder) if root and (folder / "config.yaml").is_file() else None


def launch(workflow_cls: Any, argv: list[str] | None = None) -> Any:
    """Run ``workflow_cls`` from the command line; exits the process on failure.

    Inside a project (a ``config.yaml`` beside the file), the run composes the project's
    configuration exactly as ``qflow run -w NAME`` does. Returns the finished run
    (``RunState``) when it succeeds, so IDE users can inspect it.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    prog = sys.argv[0] if sys.argv and sys.argv[0] else "workflow.py"
    if any(a in ("-h", "--help") for a in args):
        fields = ", ".join(getattr(workflow_cls, "model_fields", {})) or "none"
        print(USAGE.format(prog=prog, name=workflow_cls.__name__, fields=fields))
        return None
    command = args.pop(0) if args and args[0] in ("run", "tune", "plan") else "run"
    cache = "--no-cache" not in args
    as_json = command == "plan" and "--json" in args
    args = [a for a in args if a != "--no-cache" and not (as_json and a == "--json")]
    try:
        with sigterm_as_interrupt():
            if command == "plan":
                return _plan(workflow_cls, args, prog, cache, as_json)
            return _launch(workflow_cls, command, args, prog, cache)
    except StepError as exc:
        report_error(exc)
        sys.exit(1)
    except QFlowError as exc:
        report_error(exc)
        sys.exit(2)
    except KeyboardInterrupt as exc:
        print("Terminated." if exit_code(exc) != 130 else "Interrupted.", file=sys.stderr)
        sys.exit(exit_code(exc))


def _overrides(workflow_cls: Any, args: list[str], prog: str) -> list[str]:
    """The command line's overrides, a bare parameter name as ``parameters.NAME``."""
    bad = [a for a in args if a.startswith("-")]
    if bad:
        raise ConfigError(f"Unknown option {bad[0]}.", hint=f"See `python {prog} --help`.")
    fields = getattr(workflow_cls, "model_fields", {})
    return [f"parameters.{a}" if a.partition("=")[0] in fields else a for a in args]


def _plan(workflow_cls: Any, args: list[str], prog: str, cache: bool, as_json: bool) -> RunPlan:
    """``python workflow.py plan``: print what a run would do (in a project, as ``qflow plan``)."""
    overrides = _overrides(workflow_cls, args, prog)
    project = _project_folder(workflow_cls)
    if project is not None:
        result = plan_workflow(*project, overrides, cls=workflow_cls, cache=cache)
    else:
        from qflow.launchers.local import LocalLauncher

        workflow = workflow_cls(**parse_overrides(workflow_cls, args))
        result = LocalLauncher(cache=cache).plan(workflow)
    print(json.dumps(result.to_dict(), indent=1, default=repr) if as_json else result.describe())
    return result


def _launch(workflow_cls: Any, command: str, args: list[str], prog: str, cache: bool) -> Any:
    """``launch()`` once the command line is split: tune, run in a project, or run alone."""
    overrides = _overrides(workflow_cls, args, prog)
    project = _project_folder(workflow_cls)
    if command == "tune":
        if project is None:
            raise ConfigError(f"Tuning {prog} needs a project: the `tune:` section of the "
                              "workflow's config.yaml says what to search.",
                              hint="Create the workflow with `qflow new -w NAME` in a project.")
        return tune_workflow(*project, overrides, cls=workflow_cls)
    if project is not None:
        return run_workflow(*project, overrides, cls=workflow_cls, cache=cache)
    params = parse_overrides(workflow_cls, args)
    workflow = workflow_cls(**params)
    from qflow.launchers.local import LocalLauncher

    return LocalLauncher(cache=cache).launch(workflow)
