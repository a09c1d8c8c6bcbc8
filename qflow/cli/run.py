"""``qflow run``: compute a workflow of the project, or any notebook."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def run(
    workflow: Annotated[str | None, typer.Option("-w", "--workflow", help="The workflow to run.")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(
        help="Hydra-style overrides: parameters.alpha=0.3 tracker=file inputs.n=10.")] = None,
    notebook: Annotated[Path | None, typer.Option("--notebook", "-n", help="Run this notebook "
                        "headlessly (papermill) instead of a workflow.")] = None,
    parameter: Annotated[list[str] | None, typer.Option(
        "-p", "--parameter", help="With --notebook: a parameter as KEY=VALUE (repeatable), typed "
        "as papermill types it: True, False, None, an int, a float, else a string.")] = None,
    raw: Annotated[list[str] | None, typer.Option(
        "-r", "--parameter-raw", help="With --notebook: a parameter as KEY=VALUE, the value "
        "always a string (repeatable).")] = None,
    yaml_text: Annotated[list[str] | None, typer.Option(
        "-y", "--parameters-yaml", help="With --notebook: parameters as a YAML mapping "
        "(repeatable).")] = None,
    yaml_file: Annotated[list[Path] | None, typer.Option(
        "-f", "--parameters-file", help="With --notebook: parameters from a YAML file "
        "(repeatable).")] = None,
    kernel: Annotated[str | None, typer.Option(
        "-k", "--kernel", help="With --notebook: the kernel to run, whatever the notebook "
        "names.")] = None,
    cwd: Annotated[Path | None, typer.Option(
        "--cwd", help="With --notebook: the kernel's working folder (default: the notebook's "
        "folder).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute every step.")] = False,
) -> None:
    """Run a workflow: every step runs or comes from the cache, and the run is recorded."""
    from qflow.errors import ConfigError
    from qflow.project.workflows import project_root, workflow_dir
    from qflow.workflows import run_notebook, run_workflow

    notebook_only = {"-p": parameter, "-r": raw, "-y": yaml_text, "-f": yaml_file, "-k": kernel,
                     "--cwd": cwd}
    if notebook is not None:
        values = _parameters(list(yaml_file or []), list(yaml_text or []), list(parameter or []),
                             list(raw or []))
        state = run_notebook(notebook, values, kernel=kernel, cwd=cwd, cache=not no_cache)
    elif workflow is None:
        raise ConfigError("Say what to run: -w WORKFLOW, or --notebook PATH.")
    else:
        used = [name for name, value in notebook_only.items() if value]
        if used:
            raise ConfigError(f"{used[0]} goes with --notebook; a workflow takes overrides.",
                              hint=f"Write `qflow run -w {workflow} parameters.KEY=VALUE`.")
        root = project_root()
        state = run_workflow(root, workflow_dir(root, workflow), list(overrides or []),
                             cache=not no_cache)
    typer.echo(f"run_id: {state.run_id}")
    typer.echo(f"result: {state.result!r}")


def _yaml(text: str, where: str) -> dict[str, Any]:
    """A YAML mapping read as papermill reads it (dates stay strings)."""
    import yaml

    from qflow.errors import ConfigError

    class NoDates(yaml.SafeLoader):
        yaml_implicit_resolvers = {k: [r for r in v if r[0] != "tag:yaml.org,2002:timestamp"]
                                   for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    try:
        data = yaml.load(text, Loader=NoDates)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where} is not valid YAML{at}: {problem}.",
                          hint="Write a mapping such as `alpha: 0.1`.") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ConfigError(f"{where} is not a mapping of parameter names to values.",
                          hint="Write a mapping such as `alpha: 0.1`.")
    return data


def _pairs(items: list[str], option: str) -> list[tuple[str, str]]:
    from qflow.errors import ConfigError

    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(f"Cannot read the parameter {option} {item!r}.",
                              hint=f"Write {option} KEY=VALUE, KEY a Python name.")
        out.append((key, value))
    return out


def _parameters(files: list[Path], texts: list[str], items: list[str],
                raws: list[str]) -> dict[str, Any]:
    """The notebook's parameters in papermill's order: -f files, -y YAML, -p typed, -r raw."""
    from qflow.errors import ConfigError
    from qflow.notebook import typed

    values: dict[str, Any] = {}
    for file in files:
        try:
            text = file.read_text()
        except OSError as exc:
            raise ConfigError(f"Cannot read the parameters file -f {file}: "
                              f"{exc.strerror or exc}.") from None
        values.update(_yaml(text, f"The parameters file {file}"))
    for text in texts:
        values.update(_yaml(text, f"-y {text!r}"))
    values.update({key: typed(value) for key, value in _pairs(items, "-p")})
    values.update(_pairs(raws, "-r"))
    return values
