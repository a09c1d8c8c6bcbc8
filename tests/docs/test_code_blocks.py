"""Every ```python and ```shell block of README.md and docs/**/*.md runs, so an example that
stops working fails the tests. One test per page; the convention is in tests/docs/blocks.py.

Each page runs in a fresh temporary folder (its *current folder* until a ``cd`` directive),
with the virtualenv's ``bin`` first on ``PATH``. Python blocks run in one fresh interpreter
per page (tests/docs/pyrunner.py), or, on a page whose Python blocks use IPython syntax
(``%load_ext qflow``, ``%%qflow_step``), as the cells of one notebook on a real kernel.
Variables a shell block or setup exports carry over to the page's later blocks, as in one
terminal session. Setups may use two variables the test sets:

- ``QFLOW_DOCS_REPO``: this checkout (to copy an example notebook, for instance);
- ``QFLOW_DOCS_S3_ENDPOINT``: the URL of a moto S3 server on loopback, started only for
  pages that mention this variable.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.docs.blocks import Block, Cd, DocsSyntaxError, Item, Setup, parse_file, uses_ipython

VENV_BIN = Path(sys.executable).parent
RUNNER = Path(__file__).with_name("pyrunner.py")
TIMEOUT = 180  # seconds per block
TAIL = 60      # lines of output shown when a block fails
_SHELL_NOISE = {"PWD", "OLDPWD", "SHLVL", "_", "QFLOW_DOCS_ENV_OUT"}


def pages() -> list[Path]:
    """README.md and every Markdown page under docs/, new ones included."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


class BlockFailed(Exception):
    """A block (or setup) failed; the message says where, shows it and its output."""


def _tail(text: str) -> str:
    lines = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).rstrip().splitlines()
    cut = lines[-TAIL:]
    head = [f"... ({len(lines) - TAIL} lines above)"] if len(lines) > TAIL else []
    return "\n".join(head + cut) or "(no output)"


def _failure(item: Block | Setup, why: str, output: str) -> BlockFailed:
    first = item.first_code_line
    numbered = "\n".join(f"{first + n:5d} | {line}" for n, line in enumerate(item.code.splitlines()))
    what = f"```{item.lang} block" if isinstance(item, Block) else "hidden `<!-- test: setup`"
    return BlockFailed(f"{item.where}: {what} {why}\n{numbered}\n"
                       f"----- output (stdout and stderr) -----\n{_tail(output)}")


class PythonSession:
    """The page's Python blocks in one interpreter, in a namespace they share."""

    def __init__(self, shadow: Path, logs: Path) -> None:
        self.shadow, self.logs = shadow, logs
        self.proc: subprocess.Popen | None = None

    def run(self, block: Block, cwd: Path, env: dict[str, str]) -> None:
        if self.proc is None:
            self.proc = subprocess.Popen(
                [sys.executable, str(RUNNER), str(self.shadow)], cwd=cwd, env=env, text=True,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=open(self.logs / "pyrunner.log", "w"), start_new_session=True)
        log = self.logs / f"python-{block.line}.log"
        request = {"first_line": block.first_code_line, "code": block.code, "cwd": str(cwd),
                   "env": env, "log": str(log)}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise _failure(block, "could not start: the page's interpreter has exited",
                           (self.logs / "pyrunner.log").read_text()) from None
        ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
        reply = self.proc.stdout.readline() if ready else None
        output = log.read_text(errors="replace") if log.exists() else ""
        if reply is None:
            self.close()
            raise _failure(block, f"timed out after {TIMEOUT} s", output)
        if not reply:
            raise _failure(block, "ended the page's interpreter",
                           output + (self.logs / "pyrunner.log").read_text())
        if not json.loads(reply)["ok"]:
            raise _failure(block, "raised an exception", output)

    def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        _kill_group(self.proc)
        self.proc.stdout.close()  # type: ignore[union-attr]
        self.proc = None


class KernelSession:
    """The page's Python blocks as the cells of one notebook, in order, on a real kernel."""

    def __init__(self) -> None:
        self.client = None
        self._kernel = None
        self._env: dict[str, str] = {}

    def run(self, block: Block, cwd: Path, env: dict[str, str]) -> None:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, DeadKernelError

        if self.client is None:
            nb = nbformat.v4.new_notebook()
            self.client = NotebookClient(nb, kernel_name="python3", timeout=TIMEOUT,
                                         resources={"metadata": {"path": str(cwd)}})
            self._kernel = self.client.setup_kernel(env=env)
            self._kernel.__enter__()
            self._env = dict(env)
        nb = self.client.nb
        # The page's current folder and exported variables, then the block itself.
        changed = {k: v for k, v in env.items() if self._env.get(k) != v}
        removed = [k for k in self._env if k not in env]
        prelude = (f"import os as _os; _os.chdir({str(cwd)!r}); _os.environ.update({changed!r})\n"
                   f"for _k in {removed!r}: _os.environ.pop(_k, None)\ndel _os")
        self._env = dict(env)
        cells = [nbformat.v4.new_code_cell(prelude), nbformat.v4.new_code_cell(block.code)]
        for cell in cells:
            nb.cells.append(cell)
            try:
                self.client.execute_cell(cell, len(nb.cells) - 1, store_history=cell is cells[1])
            except (CellExecutionError, DeadKernelError) as exc:
                raise _failure(block, "raised an exception", _cell_text(cell) or str(exc)) from None
            except TimeoutError:
                raise _failure(block, f"timed out after {TIMEOUT} s", _cell_text(cell)) from None

    def close(self) -> None:
        if self._kernel is not None:
            self._kernel.__exit__(None, None, None)
            self._kernel = self.client = None


def _cell_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif output["output_type"] == "error":
            parts.append("\n".join(output["traceback"]))
        else:
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop what a block left running in its process group (its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Page:
    """One page's run: its folder, its environment and its Python session."""

    def __init__(self, items: list[Item], tmp: Path, env: dict[str, str]) -> None:
        self.items = items
        self.root = tmp / "work"
        self.logs = tmp / "logs"
        self.root.mkdir()
        self.logs.mkdir()
        self.cwd = self.root
        self.env = env
        if uses_ipython(items):
            self.python: PythonSession | KernelSession = KernelSession()
        else:
            shadow = self.logs / "page.py"
            _write_shadow(shadow, [b for b in items if isinstance(b, Block)
                                   and b.lang == "python" and b.action == "run"])
            self.python = PythonSession(shadow, self.logs)

    def run(self) -> None:
        try:
            for item in self.items:
                if isinstance(item, Cd):
                    self.cd(item)
                elif isinstance(item, Setup):
                    self.shell(item)
                elif item.action == "file":
                    target = self.cwd / item.argument
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(item.code)
                elif item.action == "run" and item.lang == "shell":
                    self.shell(item)
                elif item.action == "run":
                    self.python.run(item, self.cwd, self.env)
        finally:
            self.python.close()

    def cd(self, item: Cd) -> None:
        folder = (self.cwd / item.folder).resolve()
        if not folder.is_dir():
            raise BlockFailed(f"{item.where}: `<!-- test: cd {item.folder} -->`: no such folder "
                              f"{folder} (the blocks above should create it)")
        self.cwd = folder

    def shell(self, item: Block | Setup) -> None:
        first = item.first_code_line
        script = self.logs / f"shell-{item.line}.sh"
        env_out = self.logs / f"shell-{item.line}.env"
        # `set -e` and the env dump share line 1; then the block sits at its line in the page,
        # so bash's "line N" in an error message is the page's line.
        script.write_text("set -e; trap 'env -0 > \"$QFLOW_DOCS_ENV_OUT\"' EXIT\n"
                          + "\n" * max(first - 2, 0) + item.code)
        proc = subprocess.Popen(["bash", str(script)], cwd=self.cwd,
                                env={**self.env, "QFLOW_DOCS_ENV_OUT": str(env_out)},
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            output, _ = proc.communicate()
            raise _failure(item, f"timed out after {TIMEOUT} s", output) from None
        finally:
            _kill_group(proc)
        if proc.returncode != 0:
            raise _failure(item, f"failed with exit code {proc.returncode}", output)
        if env_out.exists():
            pairs = (entry.split("=", 1) for entry in env_out.read_text().split("\0") if entry)
            self.env = {k: v for k, v in pairs if k not in _SHELL_NOISE}


def _write_shadow(path: Path, blocks: list[Block]) -> None:
    """Every Python block at its line of the page, blank lines elsewhere."""
    lines: list[str] = []
    for block in blocks:
        lines += [""] * (block.first_code_line - 1 - len(lines))
        lines += block.code.splitlines()
    path.write_text("\n".join(lines) + "\n")


def page_env(text: str, request: pytest.FixtureRequest) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(VENV_BIN.parent),
               QFLOW_DOCS_REPO=str(REPO), MPLBACKEND="Agg", PYTHONHASHSEED="random")
    env.pop("PYTHONHOME", None)
    if "QFLOW_DOCS_S3_ENDPOINT" in text:
        env["QFLOW_DOCS_S3_ENDPOINT"] = request.getfixturevalue("s3_endpoint")
    return env


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_code_blocks(page: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    problem = None
    try:
        items = parse_file(page, REPO)
        env = page_env(page.read_text(encoding="utf-8"), request)
        env["IPYTHONDIR"] = str(tmp_path / "ipython")
        Page(items, tmp_path, env).run()
    except (DocsSyntaxError, BlockFailed) as exc:
        problem = str(exc)
    if problem is not None:  # outside the `except`: no "during handling" chain in the report
        pytest.fail(problem, pytrace=False)
