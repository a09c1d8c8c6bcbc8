"""``qflow.launch(Workflow)``: make a workflow file runnable as ``python workflow.py``.

``python workflow.py [run] [alpha=0.5 | parameters.alpha=0.5 ...]`` builds the workflow with
those parameters and computes it with the local launcher and embedded defaults. Exit codes:
0 on success, 1 when a step fails, 2 for a mistake in the command or the workflow, 130 when
interrupted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from qflow.config.paths import find_project_root
from qflow.errors import ConfigError, QFlowError, StepError

USAGE = """\
usage: python {prog} [run|tune] [NAME=VALUE ...] [--no-cache]

Runs the workflow {name}. NAME is a workflow parameter ({fields}); the Hydra spelling
parameters.NAME=VALUE works too. Values are parsed as JSON where they can be (0.5, true, [1,2]).
"""


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


def report_error(exc: QFlowError, stream: Any = None) -> None:
    """Print ``exc`` for a person: its headline, message, hint, and a failed step's traceback."""
    stream = stream or sys.stderr
    print(f"Error: {exc.headline}", file=stream)
    print(f"  {exc.message}", file=stream)
    if isinstance(exc, StepError) and exc.__cause__ is not None \
            and not isinstance(exc.__cause__, QFlowError):
        from qflow.runtime.executor import user_traceback

        print("\n" + user_traceback(exc.__cause__), file=stream)
    if exc.hint:
        print(f"Hint: {exc.hint}", file=stream)


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
    command = args.pop(0) if args and args[0] in ("run", "tune") else "run"
    cache = "--no-cache" not in args
    args = [a for a in args if a != "--no-cache"]
    try:
        bad = [a for a in args if a.startswith("-")]
        if bad:
            raise ConfigError(f"Unknown option {bad[0]}.", hint=f"See `python {prog} --help`.")
        project = _project_folder(workflow_cls)
        fields = getattr(workflow_cls, "model_fields", {})
        overrides = [f"parameters.{a}" if a.partition("=")[0] in fields else a for a in args]
        if command == "tune":
            if project is None:
                raise ConfigError(f"Tuning {prog} needs a project: the `tune:` section of the "
                                  "workflow's config.yaml says what to search.",
                                  hint="Create the workflow with `qflow new -w NAME` in a project.")
            from qflow.cli.workflows import tune_workflow

            return tune_workflow(*project, overrides, cls=workflow_cls)
        if project is not None:
            from qflow.cli.workflows import run_workflow

            return run_workflow(*project, overrides, cls=workflow_cls, cache=cache)
        params = parse_overrides(workflow_cls, args)
        workflow = workflow_cls(**params)
        from qflow.launchers.local import LocalLauncher

        return LocalLauncher(cache=cache).launch(workflow)
    except StepError as exc:
        report_error(exc)
        sys.exit(1)
    except QFlowError as exc:
        report_error(exc)
        sys.exit(2)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)
