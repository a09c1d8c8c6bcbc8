"""mkdocs hook: execute the tutorial notebooks so the site shows real, current outputs.

``on_pre_build`` runs every ``notebooks/tutorials/*.ipynb`` top to bottom with nbclient, on a
fresh ``python3`` kernel of this interpreter, each in its own temporary working folder, and
writes the executed notebook to ``docs/tutorials/<same name>.ipynb`` (gitignored), which
mkdocs-jupyter renders as it is (``execute: false``). A cell that fails or times out fails
the build, naming the notebook and the cell.

An executed notebook keeps the digest of its source (and of this hook's output format) in its
metadata; a source that has not changed since is not executed again, so repeated builds are
fast. Widget outputs are given a static rendering of their final state (a widget needs a live
kernel or JavaScript from a CDN; the page gets the picture instead), and links between
tutorials and to other pages are rewritten to the site's URLs.

The test suite (``tests/docs/test_tutorials.py``) executes the notebooks with the same
:func:`execute_notebook`.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbformat import NotebookNode

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "notebooks" / "tutorials"
CELL_TIMEOUT = 120  # seconds; a whole tutorial should take well under a minute
KERNEL = "python3"
META = "qflow_docs"  # notebook metadata: {"source_sha256": ..., "seconds": ...}
FORMAT = "2"  # bump when what this hook writes changes, so every tutorial is rebuilt
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# Run in each kernel before the first cell: IPython ignores the exit code of a `!command`, so a
# failing `!qflow ...` would leave its error on the page and the build green. This makes it
# raise, which fails the cell.
STRICT_SHELL = """\
def _qflow_docs_strict_shell():
    ip = get_ipython()
    system = ip.system

    def strict_system(cmd):
        system(cmd)
        code = ip.user_ns.get("_exit_code", 0)
        if code:
            raise RuntimeError(f"The shell command `{cmd}` exited with code {code}.")

    ip.system = strict_system


_qflow_docs_strict_shell()
del _qflow_docs_strict_shell
"""


class TutorialError(Exception):
    """A tutorial notebook did not run: which notebook, which cell, and what went wrong."""


def source_digest(path: Path) -> str:
    """Digest of a tutorial's source, of this hook's output format and of the code that makes
    a notebook's outputs (the Jupyter extension and the notebook session), so a change to
    either runs the tutorial again."""
    digest = hashlib.sha256(FORMAT.encode() + b"\0" + path.read_bytes())
    for code in sorted([*(REPO / "jupyter_ext").glob("*.py"), *(REPO / "qflow/notebook").glob("*.py"),
                        REPO / "qflow/graph/render.py"]):
        digest.update(code.read_bytes())
    return digest.hexdigest()


def execute_notebook(path: Path, workdir: Path, *, timeout: int = CELL_TIMEOUT) -> NotebookNode:
    """Execute the notebook at ``path`` in ``workdir`` on a fresh kernel; return it executed.

    The kernel is this interpreter's (``python3``), and this interpreter's ``bin`` folder
    comes first on its ``PATH``, so ``!qflow ...`` cells run the ``qflow`` installed beside it.
    Raises :class:`TutorialError` naming the notebook and the cell when a cell fails.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    current: dict[str, int] = {}

    def on_cell_start(cell: Any, cell_index: int, **_: Any) -> None:
        current["index"] = cell_index

    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    for name in ("QFLOW_RUN_ID", "QFLOW_WORKFLOW", "QFLOW_NO_CACHE"):
        env.pop(name, None)  # never adopt the run of a process that started this one
    with tempfile.TemporaryDirectory(prefix="qflow-docs-kernel-") as setup:
        startup = Path(setup) / "strict_shell.py"
        startup.write_text(STRICT_SHELL)
        client = NotebookClient(nb, kernel_name=KERNEL, timeout=timeout,
                                on_cell_start=on_cell_start,
                                extra_arguments=[f"--IPKernelApp.exec_files={startup}"],
                                resources={"metadata": {"path": str(workdir)}})
        try:
            client.execute(env=env, cwd=str(workdir))
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
            index = current.get("index")
            where = "before any cell ran" if index is None else _describe_cell(nb, index)
            raise TutorialError(f"Tutorial {path.name} failed {where}:\n"
                                f"{_error_text(exc)}") from exc
    return nb


def _describe_cell(nb: NotebookNode, index: int) -> str:
    first = next((line for line in nb.cells[index].source.splitlines() if line.strip()), "")
    return f"in cell {index} ({first.strip()[:60]!r})"


def _error_text(exc: BaseException) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"
    return str(exc).strip()[-3000:]


# -- static pictures of widgets ------------------------------------------------------------------
def _widget_html(model_id: str, models: dict[str, Any], depth: int = 0) -> str | None:
    """HTML for the final state of widget ``model_id``, or ``None`` if it has no static form."""
    model = models.get(model_id)
    if model is None or depth > 20:
        return None
    name, state = model.get("model_name", ""), model.get("state", {})
    if name in ("HTMLModel", "HTMLMathModel"):
        return f"<div class='qflow-static-widget'>{state.get('value', '')}</div>"
    if name == "LabelModel":
        return f"<span>{html.escape(str(state.get('value', '')))}</span>"
    if name in ("FloatProgressModel", "IntProgressModel"):
        value, top = state.get("value", 0), state.get("max", 100)
        return f"<progress value='{value}' max='{top}'>{value}/{top}</progress>"
    if name in ("HBoxModel", "VBoxModel", "BoxModel", "TabModel", "AccordionModel"):
        parts = []
        titles = state.get("titles") or []
        for i, child in enumerate(state.get("children", [])):
            rendered = _widget_html(str(child).removeprefix("IPY_MODEL_"), models, depth + 1)
            if rendered is None:
                continue
            if i < len(titles) and titles[i]:
                rendered = f"<h4>{html.escape(titles[i])}</h4>{rendered}"
            parts.append(rendered)
        if not parts:
            return None
        flow = "row" if name == "HBoxModel" else "column"
        return (f"<div style='display:flex; flex-direction:{flow}; gap:0.5em; "
                f"align-items:center'>{''.join(parts)}</div>")
    return None


def static_widgets(nb: NotebookNode) -> int:
    """Replace each widget view in ``nb``'s outputs by HTML of the widget's final state (or by
    its text alone when it has no static form); drop the saved widget state. Returns how many
    outputs changed."""
    models = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    changed = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            view = data.pop(WIDGET_VIEW, None)
            if view is None:
                continue
            changed += 1
            rendered = _widget_html(view.get("model_id", ""), models)
            if rendered is not None:
                data["text/html"] = rendered
    nb.metadata.pop("widgets", None)
    return changed


# -- links ---------------------------------------------------------------------------------------
_LINK = re.compile(r"\]\((?!https?:|#|/)([^)\s#]+?)\.(ipynb|md)(#[^)\s]*)?\)")


def site_links(nb: NotebookNode, use_directory_urls: bool = True) -> None:
    """Rewrite relative links to ``*.ipynb`` and ``*.md`` in markdown cells to the URLs the
    pages get on the site (``other.ipynb`` -> ``../other/`` with directory URLs)."""
    def url(match: re.Match[str]) -> str:
        target, anchor = match.group(1), match.group(3) or ""
        if use_directory_urls:
            return f"](../{target}/{anchor})"
        return f"]({target}.html{anchor})"

    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _LINK.sub(url, cell.source)


# -- the build -----------------------------------------------------------------------------------
def _up_to_date(source: Path, target: Path) -> bool:
    if not target.is_file():
        return False
    try:
        meta = json.loads(target.read_text()).get("metadata", {}).get(META, {})
    except (OSError, ValueError):
        return False
    return meta.get("source_sha256") == source_digest(source)


def build_tutorial(source: Path, target: Path, *, use_directory_urls: bool = True) -> float:
    """Execute ``source`` in a fresh temporary folder and write it, with its outputs made
    static, to ``target``. Returns the seconds it took."""
    import nbformat

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"qflow-tutorial-{source.stem}-") as tmp:
        nb = execute_notebook(source, Path(tmp))
    static_widgets(nb)
    site_links(nb, use_directory_urls)
    seconds = round(time.perf_counter() - started, 1)
    nb.metadata[META] = {"source_sha256": source_digest(source), "seconds": seconds}
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".ipynb.partial")
    nbformat.write(nb, partial)
    partial.replace(target)  # a build stopped half-way never leaves a half-written notebook
    return seconds


def build_tutorials(source_dir: Path, target_dir: Path, *, use_directory_urls: bool = True,
                    force: bool = False, log: Any = print) -> list[Path]:
    """Execute every changed tutorial of ``source_dir`` into ``target_dir``; return those
    built. Executed notebooks whose source is gone are removed."""
    sources = sorted(source_dir.glob("*.ipynb"))
    built = []
    for source in sources:
        target = target_dir / source.name
        if not force and _up_to_date(source, target):
            log(f"Tutorial {source.name}: unchanged, not executed again")
            continue
        log(f"Tutorial {source.name}: executing")
        seconds = build_tutorial(source, target, use_directory_urls=use_directory_urls)
        log(f"Tutorial {source.name}: executed in {seconds} s -> {target}")
        built.append(target)
    names = {s.name for s in sources}
    for old in target_dir.glob("*.ipynb") if target_dir.is_dir() else ():
        if old.name not in names:
            old.unlink()
    return built


def on_pre_build(config: Any, **kwargs: Any) -> None:
    """Execute the changed tutorials into ``<docs_dir>/tutorials/`` before mkdocs reads it."""
    import logging

    from mkdocs.exceptions import PluginError

    logger = logging.getLogger("mkdocs.hooks.tutorials")
    try:
        build_tutorials(SOURCE, Path(config["docs_dir"]) / "tutorials",
                        use_directory_urls=bool(config.get("use_directory_urls", True)),
                        log=logger.info)
    except TutorialError as exc:
        raise PluginError(str(exc)) from exc
