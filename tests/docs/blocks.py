"""Turn a Markdown page into the actions that test its code blocks, in page order.

The convention (what the pages are written to):

- A ```` ```python ```` or ```` ```shell ```` fence is **run**. Python blocks of one page
  share one namespace; shell blocks run with ``bash`` and ``set -e``.
- ```` ```console ````, ```` ```text ````, ```` ```yaml ````, ```` ```toml ````,
  ```` ```json ````, ```` ```ini ```` and plain ```` ``` ```` fences are **inert** (outputs,
  file contents, synopses). Any other language is an error, so a ```` ```bash ```` block
  cannot slip past the tests unnoticed.
- An HTML comment on the line right before a fence changes what happens to that fence:

  - ``<!-- test: file PATH -->`` writes the block to PATH (relative to the page's current
    folder) instead of running it; any fence language may be written.
  - ``<!-- test: skip REASON -->`` never runs the block (only for what no test can do on
    one machine); the reason is required and skipped blocks are listed after the tests.

- Two comments are actions of their own, anywhere between blocks:

  - ``<!-- test: cd PATH -->`` changes the page's current folder for the blocks after it.
  - ``<!-- test: setup`` / shell lines / ``-->`` runs hidden shell lines before the next
    block (to create the project or data a snippet assumes).

Comments that do not start with ``test:`` are ignored. A mistake in a directive is a
``DocsSyntaxError`` naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

RUN_LANGUAGES = frozenset({"python", "shell"})
INERT_LANGUAGES = frozenset({"", "console", "text", "yaml", "toml", "json", "ini"})
ALIASES = {"py": "python", "python3": "python", "bash": "shell", "sh": "shell",
           "zsh": "shell", "yml": "yaml", "txt": "text"}

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*test:\s*(?P<verb>[\w-]*)\s*(?P<rest>.*?)\s*(?P<end>-->)?\s*$")

Action = Literal["run", "file", "skip", "inert"]


class DocsSyntaxError(Exception):
    """A fence or ``<!-- test: ... -->`` directive the runner cannot follow."""


@dataclass(frozen=True)
class Block:
    """One fenced code block and what the test does with it."""

    path: Path
    line: int        # 1-based line of the opening fence
    lang: str        # the info string's first word, lower case ("" for a plain fence)
    code: str        # the content, ending with a newline unless empty
    action: Action
    argument: str = ""  # file: the PATH to write; skip: the reason

    @property
    def first_code_line(self) -> int:
        return self.line + 1

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Setup:
    """Hidden shell lines run before the next block."""

    path: Path
    line: int        # 1-based line of `<!-- test: setup`
    code: str
    first_code_line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Cd:
    """Change of the page's current folder for the blocks after it."""

    path: Path
    line: int
    folder: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


Item = Block | Setup | Cd


def parse(text: str, path: Path | str = "<page>") -> list[Item]:
    """The page's blocks, setups and folder changes, in page order."""
    path = Path(path)
    lines = text.splitlines()
    items: list[Item] = []
    pending: tuple[int, str, str] | None = None  # (line, verb, argument) of a file/skip
    i = 0
    while i < len(lines):
        number = i + 1
        line = lines[i]
        directive = _DIRECTIVE.match(line)
        fence = _FENCE.match(line)
        if pending is not None and not fence:
            raise DocsSyntaxError(f"{path}:{pending[0]}: `<!-- test: {pending[1]} ... -->` must "
                                  "be on the line right before a code fence")
        if directive:
            verb, rest = directive["verb"], directive["rest"]
            if verb == "setup":
                i, item = _setup(lines, i, path, directive)
                items.append(item)
                continue
            if directive["end"] is None:
                raise DocsSyntaxError(f"{path}:{number}: `<!-- test: {verb}` must end with "
                                      "`-->` on the same line (only `setup` spans lines)")
            if verb in ("file", "skip"):
                if not rest:
                    what = "a PATH" if verb == "file" else "a reason"
                    raise DocsSyntaxError(f"{path}:{number}: `<!-- test: {verb} -->` needs {what}")
                pending = (number, verb, rest)
            elif verb == "cd":
                if not rest:
                    raise DocsSyntaxError(f"{path}:{number}: `<!-- test: cd -->` needs a PATH")
                items.append(Cd(path, number, rest))
            else:
                raise DocsSyntaxError(f"{path}:{number}: unknown directive `test: {verb}` "
                                      "(known: file, skip, cd, setup)")
            i += 1
            continue
        if fence:
            i, block = _block(lines, i, path, fence, pending)
            pending = None
            items.append(block)
            continue
        i += 1
    if pending is not None:
        raise DocsSyntaxError(f"{path}:{pending[0]}: `<!-- test: {pending[1]} ... -->` must be "
                              "on the line right before a code fence")
    return items


def parse_file(path: Path, root: Path | None = None) -> list[Item]:
    """Parse a page; locations are relative to ``root`` when given."""
    shown = path.relative_to(root) if root is not None else path
    return parse(path.read_text(encoding="utf-8"), shown)


def _setup(lines: list[str], i: int, path: Path, directive: re.Match) -> tuple[int, Setup]:
    start = i + 1
    if directive["end"] is not None:  # `<!-- test: setup qflow init -p demo -->` on one line
        if not directive["rest"]:
            raise DocsSyntaxError(f"{path}:{start}: `<!-- test: setup -->` has no shell lines")
        return i + 1, Setup(path, start, directive["rest"] + "\n", start)
    body = [directive["rest"]] if directive["rest"] else []
    i += 1
    while i < len(lines) and lines[i].strip() != "-->":
        if _FENCE.match(lines[i]):
            raise DocsSyntaxError(f"{path}:{start}: `<!-- test: setup` is not closed by a `-->` "
                                  f"line before the fence at line {i + 1}")
        body.append(lines[i])
        i += 1
    if i == len(lines):
        raise DocsSyntaxError(f"{path}:{start}: `<!-- test: setup` is never closed by `-->`")
    if not "".join(body).strip():
        raise DocsSyntaxError(f"{path}:{start}: `<!-- test: setup` has no shell lines")
    first = start if directive["rest"] else start + 1
    return i + 1, Setup(path, start, "\n".join(body) + "\n", first)


def _block(lines: list[str], i: int, path: Path, fence: re.Match,
           pending: tuple[int, str, str] | None) -> tuple[int, Block]:
    start = i + 1
    indent, marker = len(fence["indent"]), fence["fence"]
    words = fence["info"].split()
    lang = words[0].lower() if words else ""
    body = []
    i += 1
    while i < len(lines):
        closing = re.match(r"^ {0,3}(`{3,}|~{3,})\s*$", lines[i])
        if closing and closing[1][0] == marker[0] and len(closing[1]) >= len(marker):
            break
        line = lines[i]
        body.append(line[min(indent, len(line) - len(line.lstrip(" "))):])
        i += 1
    else:
        raise DocsSyntaxError(f"{path}:{start}: the code fence is never closed")
    code = "\n".join(body) + "\n" if body else ""
    if pending is not None:
        _, verb, argument = pending
        if verb == "skip" and lang not in RUN_LANGUAGES:
            raise DocsSyntaxError(f"{path}:{start}: `skip` on a ```{lang} block, which never "
                                  "runs anyway")
        return i + 1, Block(path, start, lang, code, "file" if verb == "file" else "skip",
                            argument)
    if lang in RUN_LANGUAGES:
        return i + 1, Block(path, start, lang, code, "run")
    if lang in INERT_LANGUAGES:
        return i + 1, Block(path, start, lang, code, "inert")
    hint = (f"write ```{ALIASES[lang]}" if lang in ALIASES
            else "use python or shell (run), or console, text, yaml, toml, json, ini (not run)")
    raise DocsSyntaxError(f"{path}:{start}: unknown code fence language {lang!r}: {hint}")


def uses_ipython(items: list[Item]) -> bool:
    """Whether the page's Python blocks need IPython (a line starting with ``%`` or ``!``):
    then they run as cells of one notebook on a real kernel instead of plain Python."""
    return any(isinstance(item, Block) and item.lang == "python" and item.action == "run"
               and re.search(r"^\s*[%!]", item.code, re.MULTILINE) for item in items)
