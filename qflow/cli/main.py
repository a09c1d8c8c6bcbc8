"""The ``qflow`` command."""

from __future__ import annotations

import sys

HELP = """\
Usage: qflow [OPTIONS] COMMAND [ARGS]...

  QFlow: a Jupyter-first workflow platform for machine-learning work.

Options:
  -V, --version  Show the version and exit.
  -h, --help     Show this message and exit.

Run a workflow file directly with `python workflows/NAME/workflow.py [NAME=VALUE ...]`.
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``qflow`` console script."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-V", "--version"):
        from qflow import __version__

        print(f"qflow {__version__}")
        return 0
    print(HELP)
    return 0 if not args or args[0] in ("-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main())
