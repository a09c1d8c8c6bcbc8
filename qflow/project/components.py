"""Project components (tracker, launcher, tuner, paths): configure and tear down choices.

A choice is a file ``configs/<component>/<choice>.yaml`` rendered from
``templates/components``; the project's default is the ``- <component>: <choice>``
line of ``configs/project.yaml``'s defaults list, edited in place so comments survive.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError
from qflow.project.scaffold import TEMPLATES, environment

FALLBACK = {"tracker": "file", "launcher": "local", "tuner": "optuna", "paths": "default"}
DATA = {"tracker": "tracker", "tuner": "tuner"}  # components whose choices keep local data


@dataclass(frozen=True)
class Choice:
    """A component and one of its choices, e.g. ``tracker=mlflow``."""

    component: str
    name: str

    def config_file(self, root: Path) -> Path:
        """``configs/<component>/<name>.yaml``."""
        return root / "configs" / self.component / f"{self.name}.yaml"

    def data_dir(self, root: Path, data: str = ".qflow") -> Path | None:
        """The local data this choice keeps, if any (``.qflow/tracker/mlflow``)."""
        sub = DATA.get(self.component)
        return root / data / sub / self.name if sub else None


def choices(component: str) -> list[str]:
    """The choices QFlow has templates for."""
    folder = TEMPLATES / "components" / component
    return sorted(p.name.removesuffix(".yaml.j2") for p in folder.glob("*.yaml.j2"))


def parse(spec: str) -> tuple[str, str | None]:
    """``"tracker=mlflow"`` -> ``("tracker", "mlflow")``; ``"tracker"`` -> ``("tracker", None)``."""
    component, _, name = spec.partition("=")
    if component not in FALLBACK:
        raise ConfigError(f"Unknown component {component!r}; components: "
                          f"{', '.join(sorted(FALLBACK))}.",
                          hint="For example: -c tracker=mlflow.")
    if name and name not in choices(component):
        raise ConfigError(f"Unknown {component} {name!r}; choices: {', '.join(choices(component))}.")
    return component, name or None


def settings_of(choice: Choice, project: str = "") -> dict[str, Any]:
    """The settings a choice's template asks for (``{{ settings.X | default(D) }}``), each with
    the default an empty answer keeps (``D`` evaluated; ``None`` when there is none)."""
    text = (TEMPLATES / "components" / choice.component / f"{choice.name}.yaml.j2").read_text()
    env = environment()
    out: dict[str, Any] = {}
    for name, default in re.findall(r"settings\.(\w+)(?:\s*\|\s*default\(([^)]*)\))?", text):
        if name not in out:
            out[name] = env.compile_expression(default)(project=project) if default else None
    return out


def current(root: Path, component: str) -> str:
    """The project's default choice for ``component``."""
    text = (root / "configs" / "project.yaml").read_text()
    found = re.search(rf"^\s*-\s*{component}\s*:\s*(\w+)\s*$", text, re.M)
    if not found:
        raise ConfigError(f"{root / 'configs/project.yaml'} has no `- {component}: ...` line in "
                          "its defaults list.", hint=f"Add `  - {component}: "
                                                      f"{FALLBACK[component]}` under defaults:.")
    return found.group(1)


def configured_tracker(root: Path) -> tuple[str, dict[str, Any]]:
    """The project's default tracker and its settings (``configs/tracker/<name>.yaml``, with
    the project's ``project_name`` and ``experiment_name``), as its runs were recorded with."""
    import yaml

    name = current(root, "tracker")
    path = Choice("tracker", name).config_file(root)
    own = yaml.safe_load(path.read_text()) if path.is_file() else None
    project = yaml.safe_load((root / "configs" / "project.yaml").read_text()) or {}
    settings = {k: v for k, v in (own or {}).items() if k != "name" and v is not None}
    settings.update(project=project.get("project_name") or root.name,
                    experiment=project.get("experiment_name"))
    return name, settings


def set_default(root: Path, choice: Choice) -> None:
    """Make ``choice`` the project's default for its component (edits one line)."""
    path = root / "configs" / "project.yaml"
    current(root, choice.component)
    text = re.sub(rf"^(\s*-\s*{choice.component}\s*:\s*)\w+(\s*)$", rf"\g<1>{choice.name}\g<2>",
                  path.read_text(), count=1, flags=re.M)
    path.write_text(text)


def write_config(root: Path, choice: Choice, settings: dict[str, Any]) -> Path:
    """Render ``configs/<component>/<choice>.yaml`` with ``settings``."""
    template = environment().get_template(f"components/{choice.component}/{choice.name}.yaml.j2")
    path = choice.config_file(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(template.render(settings=settings, project=root.name))
    return path


def workflows_overriding(root: Path, choice: Choice) -> list[str]:
    """Workflows whose config.yaml selects ``choice`` with an ``override`` line."""
    pattern = re.compile(rf"override\s+{choice.component}\s*:\s*{choice.name}\b")
    return sorted(p.parent.name for p in (root / "workflows").glob("*/config.yaml")
                  if pattern.search(p.read_text()))


def remove(root: Path, choice: Choice, *, dry_run: bool = False) -> list[str]:
    """Remove ``choice``'s config (switching the default back to the fallback); say what
    changed, or with ``dry_run`` what would change. Its local data is left alone."""
    done = []
    fallback = Choice(choice.component, FALLBACK[choice.component])
    if current(root, choice.component) == choice.name and choice != fallback:
        if not dry_run:
            if not fallback.config_file(root).exists():
                write_config(root, fallback, {})
            set_default(root, fallback)
        done.append(f"default {choice.component} is now {fallback.name}")
    if choice != fallback and choice.config_file(root).exists():
        if not dry_run:
            choice.config_file(root).unlink()
        done.append(f"removed {choice.config_file(root).relative_to(root)}")
    return done


def remove_data(root: Path, choice: Choice, folder: Path) -> int:
    """Delete a choice's local data ``folder``; for a tracker, also the project's runs still
    waiting to be synced into it (while no sync runs); return how many runs were dropped."""
    if choice.component != "tracker":
        shutil.rmtree(folder)
        return 0
    from qflow.config.paths import Paths
    from qflow.trackers.sync import drop

    return drop(Paths.discover(root), choice.name, then=lambda: shutil.rmtree(folder))
