"""The ``qflow`` command: a Typer app whose sub-commands are imported only when used.

``COMMANDS`` is a static table, so ``qflow --help`` lists every command with its one-line
help without importing any command module (nor Hydra, pydantic or a tracker library). A
command is a function, or a ``typer.Typer`` app for a group of sub-commands (``qflow cache``).
"""

from __future__ import annotations

import functools
import importlib
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

COMMANDS: dict[str, tuple[str, str]] = {
    "cache": ("qflow.cli.cache:app", "Inspect, verify and clean the artifact store"),
    "configure": ("qflow.cli.configure:configure", "Configure new component for Qflow project"),
    "diff": ("qflow.cli.diff:diff", "Compare two runs"),
    "export": ("qflow.cli.export:export", "Export a notebook as a workflow"),
    "init": ("qflow.cli.init:init", "Create a new Qflow project"),
    "new": ("qflow.cli.new:new", "Create a new workflow"),
    "plan": ("qflow.cli.plan:plan", "Show what a run would do, running nothing"),
    "ps": ("qflow.cli.ps:ps", "List runs for the workflow"),
    "run": ("qflow.cli.run:run", "Run a workflow"),
    "sync": ("qflow.cli.sync:sync", "Sync finished runs into their tracker (MLflow)"),
    "teardown": ("qflow.cli.configure:teardown", "Tear down selected configuration"),
    "tune": ("qflow.cli.tune:tune", "Tune hyperparameters"),
    "visualise": ("qflow.cli.visualise:visualise", "Visualise workflow execution graph"),
}
CONTEXT = {"help_option_names": ["-h", "--help"]}
_state = {"debug": False}


def _guard(function: Any) -> Any:
    """Turn QFlow's errors into one clear message and an exit code (1: a step, 2: a mistake,
    130: Ctrl-C, 143: SIGTERM, which stops a run as Ctrl-C does)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from qflow.errors import QFlowError, StepError, report_error
        from qflow.runtime.interrupt import exit_code, sigterm_as_interrupt

        try:
            with sigterm_as_interrupt():
                return function(*args, **kwargs)
        except QFlowError as exc:
            if _state["debug"]:
                raise
            report_error(exc)
            raise typer.Exit(1 if isinstance(exc, StepError) else 2) from None
        except KeyboardInterrupt as exc:
            code = exit_code(exc)
            typer.echo("Interrupted." if code == 130 else "Terminated.", err=True)
            raise typer.Exit(code) from None

    wrapper.__qflow_guarded__ = True  # type: ignore[attr-defined]
    return wrapper


class LazyGroup(TyperGroup):
    """Lists commands from ``COMMANDS``; imports a command's module only to run it."""

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        return TyperCommand(name=cmd_name, help=COMMANDS[cmd_name][1])

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] in COMMANDS:
            return args[0], self.load(args[0]), args[1:]
        return super().resolve_command(ctx, args)

    @staticmethod
    def load(name: str) -> Any:
        """The real command ``name``, built from its module's function (or Typer app)."""
        module_name, _, attr = COMMANDS[name][0].partition(":")
        function = getattr(importlib.import_module(module_name), attr)
        if isinstance(function, typer.Typer):
            for info in function.registered_commands:
                if not getattr(info.callback, "__qflow_guarded__", False):
                    info.callback = _guard(info.callback)
            group = typer.main.get_command(function)
            group.name = name
            return group
        sub = typer.Typer(add_completion=False, context_settings=CONTEXT)
        sub.command(name=name, context_settings=CONTEXT)(_guard(function))
        return typer.main.get_command(sub)


app = typer.Typer(cls=LazyGroup, add_completion=False, context_settings=CONTEXT,
                  no_args_is_help=True, help="Qflow CLI interface")


def _version(value: bool) -> None:
    if value:
        from qflow.version import __version__

        typer.echo(f"qflow {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("-V", "--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """Qflow CLI interface."""
    _state["debug"] = debug


def main() -> None:
    """Entry point of the ``qflow`` console script."""
    app(prog_name="qflow")


if __name__ == "__main__":
    main()
