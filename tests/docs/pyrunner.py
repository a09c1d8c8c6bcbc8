"""A page's Python blocks in one fresh interpreter: ``python pyrunner.py SHADOW``.

Reads one JSON request a line on standard input — ``{"first_line", "code", "cwd", "env",
"log"}`` — and runs the block in the page's shared namespace, a module named ``__main__``
whose file is SHADOW. SHADOW holds every Python block of the page at its line in the
Markdown file, so tracebacks, ``inspect.getsource`` and QFlow's code fingerprints see the
real source, and line numbers in tracebacks are the page's. The block's output (its file
descriptors 1 and 2, so subprocesses' output too) goes to the file ``log``. One JSON reply a
request, ``{"ok": bool}``, goes to the original standard output.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import types


def main(shadow: str) -> None:
    replies = os.fdopen(os.dup(1), "w")
    module = types.ModuleType("__main__")
    module.__file__ = shadow
    module.__builtins__ = __builtins__
    sys.modules["__main__"] = module
    sys.argv = [shadow]  # as if the page were a script run with no arguments
    sys.path.insert(0, "")  # like `python file.py` in the current folder: its modules import
    for request in sys.stdin:
        block = json.loads(request)
        os.chdir(block["cwd"])
        os.environ.clear()
        os.environ.update(block["env"])
        ok = run(module, block, shadow)
        replies.write(json.dumps({"ok": ok}) + "\n")
        replies.flush()


def run(module: types.ModuleType, block: dict, shadow: str) -> bool:
    source = "\n" * (block["first_line"] - 1) + block["code"]
    log = os.open(block["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        exec(compile(source, shadow, "exec"), module.__dict__)
        return True
    except SystemExit as exc:  # a block may call sys.exit(0), as a script does
        if exc.code in (None, 0):
            return True
        _print_error(exc)
        return False
    except BaseException as exc:
        _print_error(exc)
        return False
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, log):
            os.close(fd)


def _print_error(exc: BaseException) -> None:
    """The traceback without this runner's own frame."""
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    traceback.print_exception(type(exc), exc, tb)


if __name__ == "__main__":
    main(sys.argv[1])
