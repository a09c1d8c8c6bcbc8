"""The generated command-line reference (docs_hooks/cli_reference.py) covers the real app:
every registered command, and every option, argument, type and default of each."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import typer

from qflow.cli.main import COMMANDS, LazyGroup, app
from tests.conftest import REPO


def _hook() -> ModuleType:
    # mkdocs loads hooks by path; so does this test (docs_hooks/ is not a package).
    spec = importlib.util.spec_from_file_location("cli_reference",
                                                  REPO / "docs_hooks" / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def page() -> str:
    return _hook().render()


def _section(page: str, name: str) -> str:
    """The part of the page about ``qflow NAME``."""
    match = re.search(rf"^## `qflow {name}`\n(.*?)(?=^## |\Z)", page, re.S | re.M)
    assert match, f"no section for `qflow {name}`"
    return match[1]


def test_every_command_has_a_section_and_an_entry_in_the_table(page: str) -> None:
    assert page.startswith("# Command-line reference\n")
    assert "Usage: qflow [OPTIONS] COMMAND [ARGS]..." in page
    for name, (_, summary) in COMMANDS.items():
        assert f"| [`{name}`](#qflow-{name}) | {summary} |" in page
        assert f"Usage: qflow {name} [OPTIONS]" in _section(page, name)
    headings = re.findall(r"^## `qflow ?(\w*)`$", page, re.M)
    assert headings == ["", *sorted(COMMANDS)]


def test_group_options(page: str) -> None:
    group = re.search(r"^## `qflow`\n(.*?)(?=^## )", page, re.S | re.M)
    assert group
    for option in ("`-V`, `--version`", "`--debug`", "`-h`, `--help`"):
        assert option in group[1]


def test_every_option_of_run_is_documented(page: str) -> None:
    section = _section(page, "run")
    command = LazyGroup.load("run")
    assert command.help and command.help.strip() in section
    ctx = command.context_class(command, info_name="run", **command.context_settings)
    params = command.get_params(ctx)
    assert {p.name for p in params} >= {"workflow", "overrides", "notebook", "parameter",
                                        "no_cache", "help"}
    for param in params:
        for opt in [*param.opts, *param.secondary_opts]:
            if param.param_type_name == "option":
                assert f"`{opt}`" in section, opt
        if param.help:
            assert param.help in section, param.name
    assert "| `--no-cache` | flag | off | Recompute every step. |" in section
    assert "| `-w`, `--workflow` | str |  | The workflow to run. |" in section
    assert "| `overrides...` | list[str] |" in section


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_of_every_command(page: str, name: str) -> None:
    section = _section(page, name)
    command = LazyGroup.load(name)
    ctx = command.context_class(command, info_name=name, **command.context_settings)
    for param in command.get_params(ctx):
        if param.param_type_name == "option":
            names = ", ".join(f"`{opt}`" for opt in sorted(
                param.opts, key=lambda opt: opt.startswith("--")))
            row = next((line for line in section.splitlines()
                        if line.startswith(f"| {names} |")), None)
            assert row, f"qflow {name}: {names} is missing"
            if param.required:
                assert "| required |" in row
            elif param.default not in (None, False) and not param.multiple:
                assert f"| `{param.default}` |" in row
        else:
            assert f"`{param.name}" in section


def test_a_group_documents_its_sub_commands(page: str) -> None:
    section = _section(page, "cache")
    for sub in ("ls", "du", "verify", "gc"):
        assert f"### `qflow cache {sub}`" in section
        assert f"Usage: qflow cache {sub} [OPTIONS]" in section
    assert "| `--keep-runs` | int, >= 0 |  | Keep what the N newest runs" in section


def test_defaults_and_bounds(page: str) -> None:
    assert "| `--path` | path | `.` |" in _section(page, "init")
    assert "| `-n`, `--limit` | int, >= 1 | `20` |" in _section(page, "ps")
    assert "| `-f`, `--format` | str | `svg` |" in _section(page, "visualise")


def test_the_group_loads_every_command() -> None:
    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="qflow")
    assert group.list_commands(ctx) == sorted(COMMANDS)


def test_mkdocs_runs_the_hook_into_a_virtual_page(tmp_path: Path) -> None:
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files

    (tmp_path / "docs").mkdir()
    config = MkDocsConfig(config_file_path=str(REPO / "mkdocs.yml"))
    config.load_dict({"site_name": "t", "docs_dir": str(tmp_path / "docs"),
                      "site_dir": str(tmp_path / "site"),
                      "hooks": [str(REPO / "docs_hooks" / "cli_reference.py")]})
    errors, _ = config.validate()
    assert not errors
    files = config.plugins.on_files(Files([]), config=config)
    generated = files.get_file_from_path("reference/cli.md")
    assert generated is not None and generated.generated_by
    assert "## `qflow run`" in generated.content_string
    assert not (tmp_path / "docs" / "reference").exists()  # nothing written under docs/
