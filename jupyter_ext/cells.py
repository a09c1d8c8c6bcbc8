"""Running a step cell's code in IPython: what it prints is recorded, its errors read well.

:class:`CellRunner` executes the code the way IPython runs a cell (the last expression is the
cell's value, tracebacks name the cell ``In [N]``) while recording what the cell printed and
displayed, so a cache hit can show it again (:func:`replay`). A failing step cell shows only
the user's frames: :class:`StepCellFailed` carries the error to a handler IPython calls
instead of its own traceback display.
"""

from __future__ import annotations

import ast
import linecache
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class StepCellFailed(Exception):
    """A step cell raised ``error``; shown by :func:`show_step_error`, frames of ``filename``
    (the cell) only."""

    def __init__(self, error: BaseException, filename: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.filename = filename


def show_step_error(shell: Any, etype: type, value: StepCellFailed, tb: Any,
                    tb_offset: int | None = None) -> list[str]:
    """IPython's custom exception handler for :class:`StepCellFailed`: the user's traceback
    from the cell's first frame on, under the error's own name."""
    error = value.error
    trace = error.__traceback__
    while trace is not None and trace.tb_frame.f_code.co_filename != value.filename:
        trace = trace.tb_next
    trace = trace or error.__traceback__
    sys.last_type, sys.last_value, sys.last_traceback = type(error), error, trace  # for %debug
    stb = shell.InteractiveTB.structured_traceback(type(error), error, trace, tb_offset=0)
    shell._showtraceback(type(error), error, stb)
    return []


class _Tee:
    """A text stream that also records what is written to it."""

    def __init__(self, stream: Any, name: str, outputs: list[dict[str, Any]]) -> None:
        self._stream, self._name, self._outputs = stream, name, outputs

    def write(self, text: str) -> int:
        last = self._outputs[-1] if self._outputs else None
        if last is not None and last.get("type") == "stream" and last["name"] == self._name:
            last["text"] += text
        else:
            self._outputs.append({"type": "stream", "name": self._name, "text": text})
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def recording(shell: Any) -> Iterator[list[dict[str, Any]]]:
    """Record stdout, stderr and displays (widget views left out: they need their kernel)
    while still showing them."""
    outputs: list[dict[str, Any]] = []
    out, err = sys.stdout, sys.stderr
    publisher = shell.display_pub
    publish = publisher.publish

    def recorded(data: dict[str, Any], metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("update") and not kwargs.get("transient"):
            kept = {k: v for k, v in data.items() if k != WIDGET_VIEW}
            if WIDGET_VIEW not in data or set(kept) - {"text/plain"}:
                outputs.append({"type": "display", "data": kept, "metadata": metadata or {}})
        return publish(data, metadata, *args, **kwargs)

    sys.stdout, sys.stderr = _Tee(out, "stdout", outputs), _Tee(err, "stderr", outputs)
    publisher.publish = recorded
    try:
        yield outputs
    finally:
        sys.stdout, sys.stderr = out, err
        publisher.publish = publish


def replay(shell: Any, outputs: list[dict[str, Any]]) -> None:
    """Show recorded outputs again, each display marked ``{"qflow": {"replayed": true}}``."""
    for output in outputs:
        if output.get("type") == "stream":
            stream = sys.stderr if output.get("name") == "stderr" else sys.stdout
            stream.write(output.get("text", ""))
            stream.flush()
        elif output.get("type") == "display":
            metadata = {**(output.get("metadata") or {}), "qflow": {"replayed": True}}
            shell.display_pub.publish(output.get("data") or {}, metadata)


class CellRunner:
    """Executes a step cell's code in the shell's namespace, as IPython would run the cell."""

    def __init__(self, shell: Any, source: str, number: int, missing: Any = None) -> None:
        self.shell = shell
        self.source = source  # the whole cell, its %%qflow_step line included
        self.number = number  # its execution count, In [number]
        self.missing = missing  # name -> where it comes from, for NameErrors

    def __call__(self, code: str) -> tuple[Any, list[dict[str, Any]]]:
        shell = self.shell
        code = "\n" + code  # line numbers as the user sees the cell, its magic line first
        filename = shell.compile.cache(code, self.number, raw_code=self.source)
        if len(self.source.splitlines()) == len(code.splitlines()):  # show the cell as written
            lines = [line + "\n" for line in self.source.splitlines()]
            linecache.cache[filename] = (len(self.source), None, lines, filename)
        tree = ast.parse(code, filename)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        with recording(shell) as outputs:
            try:
                exec(compile(tree, filename, "exec"), shell.user_ns)  # noqa: S102 - the user's cell
                result = None
                if last is not None:
                    result = eval(compile(ast.Expression(last.value), filename, "eval"),  # noqa: S307
                                  shell.user_ns)
            except NameError as exc:
                if self.missing is not None and getattr(exc, "name", None):
                    better = NameError(f"{exc}. {self.missing(exc.name)}", name=exc.name)
                    raise StepCellFailed(better.with_traceback(exc.__traceback__),
                                         filename) from None
                raise StepCellFailed(exc, filename) from None
            except Exception as exc:
                raise StepCellFailed(exc, filename) from None
        return result, outputs


def notebook_path() -> Path | None:
    """The notebook this kernel runs, when its launcher says (papermill's ``QFLOW_NOTEBOOK``,
    Jupyter Server's ``JPY_SESSION_NAME``)."""
    import os

    for name in ("QFLOW_NOTEBOOK", "JPY_SESSION_NAME"):
        value = os.environ.get(name)
        if value and value.endswith(".ipynb"):
            return Path(value)
    return None
