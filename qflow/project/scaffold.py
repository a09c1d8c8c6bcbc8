"""Render the project and workflow templates (the repository's top-level ``templates/``).

The wheel ships them inside the package as ``qflow/templates`` (hatch ``force-include``);
a source checkout reads the top-level folder itself.

A tree is rendered into a temporary sibling folder and renamed into place when complete, so
a failure leaves nothing behind. File names may contain ``__project__`` (replaced by the
project name); files ending in ``.j2`` are Jinja templates (names are validated identifiers,
so they are safe to substitute).
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError
from qflow.project.names import check_name


def _templates() -> Path:
    """``qflow/templates`` in an installed wheel, else ``templates/`` of the source checkout."""
    shipped = importlib.resources.files("qflow") / "templates"
    if shipped.is_dir():
        return Path(str(shipped))
    return Path(__file__).resolve().parents[2] / "templates"


TEMPLATES = _templates()
CODEARTIFACT = "https://{domain}-{account}.d.codeartifact.{region}.amazonaws.com/pypi/{repository}/simple/"


def environment() -> Any:
    """The Jinja environment over QFlow's templates."""
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              autoescape=False)


def render_tree(template: str, target: Path, context: dict[str, Any]) -> Path:
    """Render ``templates/<template>/`` to the new folder ``target``, atomically."""
    if target.exists():
        raise ConfigError(f"{target} already exists; QFlow will not overwrite it.",
                          hint="Choose another name, or remove the folder first.")
    env = environment()
    source = TEMPLATES / template
    tmp = target.with_name(f".{target.name}.qflow-tmp-{os.getpid()}")
    try:
        for path in sorted(source.rglob("*")):
            if path.is_dir() or "__pycache__" in path.parts:
                continue
            rel = path.relative_to(source).as_posix().replace("__project__", context["project"])
            out = tmp / (rel[:-3] if rel.endswith(".j2") else rel)
            out.parent.mkdir(parents=True, exist_ok=True)
            if rel.endswith(".j2"):
                text = env.get_template(path.relative_to(TEMPLATES).as_posix()).render(**context)
                if text.strip() or out.suffix == ".py":
                    out.write_text(text)
            else:
                shutil.copy2(path, out)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def codeartifact(account: str, domain: str, repository: str, region: str) -> dict[str, str]:
    """Package-index settings of a CodeArtifact repository, and the command to log in."""
    if not (account.isdigit() and len(account) == 12):
        raise ConfigError(f"Invalid AWS account id {account!r}: an account id has 12 digits.",
                          hint="Copy it from the AWS console, e.g. -a 123456789012.")
    return {
        "index_url": CODEARTIFACT.format(domain=domain, account=account, region=region,
                                         repository=repository),
        "login": f"aws codeartifact login --tool pip --domain {domain} --domain-owner {account} "
                 f"--repository {repository} --region {region}",
    }


def init_project(name: str, parent: Path, *, account: str | None = None, domain: str = "ml",
                 repository: str = "python", region: str = "us-east-1") -> Path:
    """Create the project ``name`` in ``parent`` from the project template."""
    check_name("project", name)
    context: dict[str, Any] = {"project": name, "account": account, "settings": {}}
    if account:
        context.update(codeartifact(account, domain, repository, region))
    return render_tree("project", parent / name, context)


def new_workflow(root: Path, name: str, *, notebook: bool = False) -> Path:
    """Create ``workflows/<name>/`` (workflow.py, or workflow.ipynb, and config.yaml)."""
    check_name("workflow", name)
    target = (root / "workflows" / name).resolve()
    if target.parent != (root / "workflows").resolve():
        raise ConfigError(f"Invalid workflow name {name!r}: it leaves the project's workflows/.")
    class_name = "".join(part.capitalize() for part in name.split("_") if part) or "Workflow"
    context = {"project": root.name, "workflow": name, "class_name": class_name}
    return render_tree("notebook_workflow" if notebook else "workflow", target, context)
