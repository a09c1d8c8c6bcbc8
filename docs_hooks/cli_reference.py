"""An mkdocs hook that writes ``reference/cli.md`` from the real ``qflow`` Typer app.

The page is generated into the build only (a virtual file, nothing under ``docs/``), so it
cannot drift from the code: every command of ``qflow.cli.main.COMMANDS`` is loaded and its
help, usage, arguments and options are read from the click objects Typer builds (a group's
sub-commands, such as ``qflow cache ls``, get sections of their own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PAGE = "reference/cli.md"
PROG = "qflow"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _is_flag(param: Any) -> bool:
    return param.param_type_name == "option" and bool(param.is_flag)


def _type(param: Any, ctx: Any) -> str:
    """The parameter's type as ``--help`` shows it, with its bounds."""
    if _is_flag(param):
        return "flag"
    text = param.display_type(ctx).strip("<>")
    bounds = [f"{sign} {value}" for sign, value in ((">=", param.min), ("<=", param.max))
              if value is not None]
    if bounds:
        text = text.removesuffix(" range")
    return _cell(", ".join([text, *bounds]))


def _default(param: Any) -> str:
    if param.required:
        return "required"
    value = param.default
    if value is None or callable(value) or (param.multiple and not value):
        return ""
    if _is_flag(param):
        return "on" if value else "off"
    return f"`{_cell(str(value))}`"


def _names(param: Any) -> str:
    if param.param_type_name == "argument":
        suffix = "..." if param.nargs == -1 else ""
        return f"`{param.name}{suffix}`"
    # Short options first, as `--help` shows them (and a stable order: Typer's help option
    # names come from a set).
    names = sorted([*param.opts, *param.secondary_opts], key=lambda opt: opt.startswith("--"))
    return ", ".join(f"`{opt}`" for opt in names)


def _params_table(title: str, params: list[Any], ctx: Any) -> list[str]:
    if not params:
        return []
    lines = [f"**{title}**", "", "| name | type | default | help |", "| --- | --- | --- | --- |"]
    for param in params:
        lines.append(f"| {_names(param)} | {_type(param, ctx)} | {_default(param)} | "
                     f"{_cell(param.help or '')} |")
    return [*lines, ""]


def _context(command: Any, name: str, parent: Any) -> Any:
    """The context ``--help`` would see (its settings name ``-h`` as a help option too)."""
    return command.context_class(command, info_name=name, parent=parent,
                                 **command.context_settings)


def _section(command: Any, ctx: Any, level: int = 2, subcommands: bool = True) -> list[str]:
    """Heading, help, usage and parameter tables of one command (Typer's click objects); a
    group's sub-commands follow, a level down."""
    lines = [f"{'#' * level} `{ctx.command_path}`", ""]
    if command.help:
        lines += [command.help.strip(), ""]
    lines += ["```text", ctx.get_usage().strip(), "```", ""]
    params = [p for p in command.get_params(ctx) if not p.hidden]
    lines += _params_table("Arguments", [p for p in params if p.param_type_name == "argument"],
                           ctx)
    lines += _params_table("Options", [p for p in params if p.param_type_name == "option"], ctx)
    for name in command.list_commands(ctx) if subcommands and hasattr(command, "list_commands") \
            else []:
        sub = command.get_command(ctx, name)
        lines += _section(sub, _context(sub, name, ctx), level + 1)
    return lines


def render() -> str:
    """The markdown of the command-line reference, read from the ``qflow`` app."""
    import typer

    from qflow.cli.main import COMMANDS, LazyGroup, app

    group = typer.main.get_command(app)
    root = _context(group, PROG, None)
    lines = [
        "# Command-line reference",
        "",
        "This page is generated from the `qflow` command itself when the site is built: what",
        f"`{PROG} COMMAND --help` prints, as tables. The guide to the commands and to project",
        "configuration is [The qflow command](../cli.md).",
        "",
        *_section(group, root, subcommands=False),
        "**Commands**",
        "",
        "| command | what it does |",
        "| --- | --- |",
    ]
    for name in sorted(COMMANDS):
        lines.append(f"| [`{name}`](#{PROG}-{name}) | {_cell(COMMANDS[name][1])} |")
    lines.append("")
    for name in sorted(COMMANDS):
        command = LazyGroup.load(name)
        lines += _section(command, _context(command, name, root))
    return "\n".join(lines).rstrip() + "\n"


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    """Add the generated page to the build (it is never written under ``docs/``)."""
    from mkdocs.structure.files import File

    if Path(config["docs_dir"], PAGE).exists():
        files.remove(files.get_file_from_path(PAGE))
    files.append(File.generated(config, PAGE, content=render()))
    return files
