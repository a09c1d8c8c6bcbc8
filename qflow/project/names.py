"""Rules for project and workflow names: identifiers that stay inside the project."""

from __future__ import annotations

import keyword
import re
import sys

from qflow.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_RESERVED = {"qflow", "test", "tests", "src", "configs", "workflows", "notebooks"}


def check_name(kind: str, name: str) -> str:
    """``name`` if it is a valid ``kind`` ("project" or "workflow") name; else a clear error."""
    shown = repr(name)
    if not name or not _NAME.match(name):
        if any(sep in name for sep in ("/", "\\")) or name in (".", ".."):
            where = "in the project's workflows/ folder" if kind == "workflow" \
                else "inside the current folder"
            why = f"it is a path; give a plain name (it is created {where})"
        else:
            why = "it must be a Python identifier: ASCII letters, digits and _, not starting " \
                  "with a digit, at most 63 characters"
        raise ConfigError(f"Invalid {kind} name {shown}: {why}.",
                          hint=f"For example: `my_{kind}`.")
    if keyword.iskeyword(name):
        raise ConfigError(f"Invalid {kind} name {shown}: it is a Python keyword.",
                          hint=f"For example: `{name}_{kind}`.")
    if kind == "project" and (name in sys.stdlib_module_names or name in _RESERVED):
        raise ConfigError(f"Invalid project name {shown}: a module of that name already exists "
                          "(Python's or QFlow's), and the project's package would hide it.",
                          hint=f"For example: `{name}_project`.")
    return name
