"""``qflow cache ls | du | verify | gc``: the project's artifact store in hand (the logic is
:mod:`qflow.cache`)."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qflow.cli.main import CONTEXT

if TYPE_CHECKING:
    from qflow.cache import StoredObject
    from qflow.config.paths import Paths

app = typer.Typer(name="cache", add_completion=False, no_args_is_help=True,
                  context_settings=CONTEXT,
                  help="What the artifact store holds (ls, du), checked (verify) and cleaned (gc).")

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}
_AGES = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
JSON = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def parse_size(text: str) -> int:
    """``10GB`` -> bytes (kB, MB, GB, TB are powers of 1000; KiB, MiB, GiB of 1024)."""
    from qflow.errors import ConfigError

    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = found.group(2).lower() if found else ""
    if not found or unit not in _UNITS:
        raise ConfigError(f"Cannot read the size {text!r}.",
                          hint="Write a number and a unit: 500MB, 10GB, 1.5GiB.")
    return int(float(found.group(1)) * _UNITS[unit])


def parse_age(text: str) -> float:
    """``30d`` -> seconds (s, m, h, d, w)."""
    from qflow.errors import ConfigError

    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text.lower())
    if not found:
        raise ConfigError(f"Cannot read the age {text!r}.",
                          hint="Write a number and a unit: 90m, 12h, 30d, 2w.")
    return float(found.group(1)) * _AGES[found.group(2)]


def size(n: float) -> str:
    """Bytes for people: ``1.2 MB``."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def _paths() -> Paths:
    from qflow.config.loader import project_paths

    return project_paths()


def _open(paths: Paths, *, read_only: bool) -> Any:
    from qflow.store.location import open_store

    return open_store(paths.store_location(), read_only=read_only)


def _runs(obj: StoredObject) -> str:
    if not obj.runs:
        return "none"
    return f"{len(obj.runs)} (newest {obj.runs[0]})" if len(obj.runs) > 1 else obj.runs[0]


@app.command("ls")
def ls(
    workflow: Annotated[str | None, typer.Option("-w", "--workflow",
                                                 help="Only this workflow's objects.")] = None,
    as_json: JSON = False,
) -> None:
    """List what the store holds, by workflow and step.

    Each object with its key, size, last use and the runs that use it.
    """
    from qflow.cache import inventory

    paths = _paths()
    objects = [o for o in inventory(_open(paths, read_only=True), paths.runs)
               if workflow is None or o.workflow == workflow]
    if as_json:
        typer.echo(json.dumps([o.to_dict() for o in objects], indent=1))
        return
    if not objects:
        typer.echo(f"The store {paths.store_location().url} holds nothing"
                   + (f" of {workflow}." if workflow else "."))
        return
    rows = [["WORKFLOW", "STEP", "KEY", "SIZE", "LAST USED", "RUNS"]]
    rows += [[o.workflow or "-", o.step or "-", o.key[:12], size(o.size), _when(o.last_used),
              _runs(o)] for o in objects]
    typer.echo(_table(rows))


@app.command("du")
def du(as_json: JSON = False) -> None:
    """Show how much the store holds per workflow and step."""
    from qflow.cache import inventory, usage

    paths = _paths()
    objects = inventory(_open(paths, read_only=True), paths.runs)
    rows = usage(objects)
    total = {"objects": len(objects), "size": sum(o.size for o in objects)}
    if as_json:
        typer.echo(json.dumps({"store": paths.store_location().url, "rows": rows,
                               "total": total}, indent=1))
        return
    table = [["WORKFLOW", "STEP", "OBJECTS", "SIZE"]]
    table += [[r["workflow"], r["step"], str(r["objects"]), size(r["size"])] for r in rows]
    table.append(["total", "", str(total["objects"]), size(total["size"])])
    typer.echo(_table(table))


@app.command("verify")
def verify(as_json: JSON = False) -> None:
    """Check every object against its checksums; quarantine damaged ones.

    The steps that made a damaged object run again next time. Exits with 1 if any was damaged.
    """
    from qflow.cache import verify as check

    paths = _paths()
    report = check(_open(paths, read_only=False))
    if as_json:
        typer.echo(json.dumps({"checked": report.checked, "size": report.size,
                               "damaged": [vars(d) for d in report.damaged]}, indent=1))
    else:
        typer.echo(f"Checked {_objects(report.checked)} ({size(report.size)}) in "
                   f"{paths.store_location().url}: "
                   + ("every file matches its checksum." if not report.damaged else
                      f"{len(report.damaged)} damaged, moved to quarantine; the steps that "
                      "made them will run again:"))
        for bad in report.damaged:
            typer.echo(f"  {bad.key[:12]}  {bad.node or '-'}  {bad.problem}")
    if report.damaged:
        raise typer.Exit(1)


@app.command("gc")
def gc(
    older_than: Annotated[str | None, typer.Option(
        "--older-than", help="Remove what was last used longer ago than this (30d, 12h).")] = None,
    max_size: Annotated[str | None, typer.Option(
        "--max-size", help="Then remove the least recently used until the store is at most "
        "this big (10GB, 500MB).")] = None,
    keep_runs: Annotated[int | None, typer.Option(
        "--keep-runs", min=0, help="Keep what the N newest runs of each workflow use; alone, "
        "remove everything else.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Remove nothing; list what would "
                                          "be removed.")] = False,
    as_json: JSON = False,
) -> None:
    """Remove the objects no kept run uses, by age, size budget or runs kept.

    What runs in progress use or are storing is always kept, so gc is safe while they run.
    """
    from qflow.cache import collect

    paths = _paths()
    result = collect(_open(paths, read_only=dry_run), paths.runs,
                     older_than=parse_age(older_than) if older_than else None,
                     max_size=parse_size(max_size) if max_size is not None else None,
                     keep_runs=keep_runs, dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps({"dry_run": dry_run, "removed": [o.to_dict() for o in result.removed],
                               "freed": result.freed, "kept": len(result.kept),
                               "left": result.left, "in_use": result.in_use}, indent=1))
        return
    verb = "Would remove" if dry_run else "Removed"
    typer.echo(f"{verb} {_objects(len(result.removed))} ({size(result.freed)}); kept "
               f"{len(result.kept)} ({size(result.left)})"
               + (f", {result.in_use} of them used by runs in progress." if result.in_use else "."))
    if dry_run and result.removed:
        rows = [["  WORKFLOW", "STEP", "KEY", "SIZE", "LAST USED"]]
        rows += [[f"  {o.workflow or '-'}", o.step or "-", o.key[:12], size(o.size),
                  _when(o.last_used)] for o in result.removed]
        typer.echo(_table(rows))


def _objects(n: int) -> str:
    return f"{n} object{'s' * (n != 1)}"
