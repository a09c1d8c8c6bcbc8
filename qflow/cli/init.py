"""``qflow init``: create a project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def init(
    project: Annotated[str, typer.Option("-p", "--project", help="Name of the project "
                                         "(a Python identifier; also its package name).")],
    aws_id: Annotated[str | None, typer.Option(
        "-a", "--aws-id", help="AWS account whose CodeArtifact repository is the package "
                               "index.")] = None,
    path: Annotated[Path, typer.Option("--path", help="Folder to create the project in.")] = Path("."),
    domain: Annotated[str, typer.Option(help="CodeArtifact domain (with -a).")] = "ml",
    repository: Annotated[str, typer.Option(help="CodeArtifact repository (with -a).")] = "python",
    region: Annotated[str, typer.Option(help="AWS region of the repository (with -a).")] = "us-east-1",
) -> None:
    """Create a new Qflow project: configs, notebooks, src/NAME with tests, an example workflow."""
    from qflow.project.scaffold import codeartifact, init_project

    root = init_project(project, path.resolve(), account=aws_id, domain=domain,
                        repository=repository, region=region)
    typer.echo(f"Created project {project} in {root}")
    typer.echo(f"  cd {root}\n  qflow run -w example     # run the example workflow")
    typer.echo("  qflow new -w NAME         # add a workflow")
    if aws_id:
        login = codeartifact(aws_id, domain, repository, region)["login"]
        typer.echo(f"Packages come from CodeArtifact (pip.conf, pyproject.toml). Log in with:\n"
                   f"  {login}")
