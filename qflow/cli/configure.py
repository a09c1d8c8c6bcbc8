"""``qflow configure`` and ``qflow teardown``: add, switch and remove project components."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

Component = Annotated[str, typer.Option("-c", "--component",
                                        help="COMPONENT[=CHOICE], e.g. tracker=mlflow "
                                             "(components: tracker, launcher, tuner, paths).")]


def _interactive() -> bool:
    return sys.stdin.isatty()


def configure(
    component: Component,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="A setting as KEY=VALUE (repeatable); prompted for when interactive.")] = None,
) -> None:
    """Configure new component for Qflow project and make it the project's default."""
    from qflow.config.loader import parse_value
    from qflow.errors import ConfigError
    from qflow.project import components as comp
    from qflow.project.workflows import project_root

    root = project_root()
    name, choice_name = comp.parse(component)
    if choice_name is None:
        if not _interactive():
            raise ConfigError(f"Say which {name} to use: -c {name}=CHOICE "
                              f"(choices: {', '.join(comp.choices(name))}).")
        choice_name = typer.prompt(f"{name} ({', '.join(comp.choices(name))})",
                                   default=comp.current(root, name))
        comp.parse(f"{name}={choice_name}")
    choice = comp.Choice(name, choice_name)
    known = comp.settings_of(choice, root.name)
    given = {}
    for item in set_ or []:
        key, sep, raw = item.partition("=")
        if not sep or key not in known:
            raise ConfigError(f"Unknown setting {item!r} for {name} {choice_name}; settings: "
                              f"{', '.join(known) or 'none'}.")
        given[key] = parse_value(raw)
    if _interactive():
        for key, default in known.items():
            if key not in given:
                shown = "empty" if default is None else default
                answer = typer.prompt(f"{name}.{key} [{shown}]", default="", show_default=False)
                if answer:
                    given[key] = parse_value(answer)
    path = comp.write_config(root, choice, given)
    comp.set_default(root, choice)
    typer.echo(f"Wrote {path.relative_to(root)}; the project's {name} is now {choice_name}.")


def teardown(
    component: Component,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Tear down without asking, local "
                                      "data included (needed without a terminal).")] = False,
) -> None:
    """Tear down selected configuration: remove its config and, once confirmed, its local data."""
    from qflow.errors import ConfigError
    from qflow.project import components as comp
    from qflow.project.workflows import project_root

    root = project_root()
    name, choice_name = comp.parse(component)
    choice = comp.Choice(name, choice_name or comp.current(root, name))
    changes = comp.remove(root, choice, dry_run=True)
    data = choice.data_dir(root)
    data = data if data is not None and data.exists() else None
    if not changes and data is None:
        why = (f"{choice.name} is the fallback {name}, kept" if choice.name == comp.FALLBACK[name]
               else f"no {choice.config_file(root).relative_to(root)}")
        typer.echo(f"Nothing to tear down for {name} {choice.name}: {why}, and no local data.")
        return
    todo = changes + ([f"delete {data.relative_to(root)}"] if data else [])
    if not yes and not _interactive():
        raise ConfigError(f"Tearing down {name} {choice.name} would: {'; '.join(todo)}. "
                          "Without a terminal to confirm, nothing was changed.",
                          hint=f"Pass --yes: qflow teardown -c {name}={choice.name} --yes.")
    if changes and (yes or typer.confirm(f"Tear down {name} {choice.name} ({'; '.join(changes)})?")):
        for line in comp.remove(root, choice):
            typer.echo(line)
    if choice.name == comp.FALLBACK[name]:
        typer.echo(f"Kept {choice.config_file(root).relative_to(root)}: {choice.name} is the "
                   f"fallback {name}.")
    users = comp.workflows_overriding(root, choice)
    if users:
        typer.echo(f"Warning: workflows {', '.join(users)} still select {name} {choice.name} in "
                   "their config.yaml (`override ...`); edit them.", err=True)
    if data is None:
        return
    if yes or typer.confirm(f"Delete {data.relative_to(root)}?"):
        dropped = comp.remove_data(root, choice, data)
        typer.echo(f"Deleted {data.relative_to(root)}")
        if dropped:
            typer.echo(f"Dropped {dropped} run{'s' if dropped > 1 else ''} waiting to be synced "
                       f"into {choice.name}.")
    else:
        typer.echo(f"Kept {data.relative_to(root)} (pass --yes to delete it).")
