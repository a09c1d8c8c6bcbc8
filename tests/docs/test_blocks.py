"""The docs convention's parser (tests/docs/blocks.py) and the page runner's failure reports."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.docs.blocks import Block, Cd, DocsSyntaxError, Setup, parse, uses_ipython
from tests.docs.test_code_blocks import BlockFailed, Page, page_env

PAGE = """# A page

```python
x = 1
```

```shell
echo hi
```

```console
$ qflow run
```

```
plain
```

<!-- test: file pkg/mod.py -->
```python
VALUE = 2
```

<!-- test: skip needs a second machine -->
```shell
ssh elsewhere
```

<!-- test: cd demo -->
<!-- test: setup
qflow init -p demo
echo done
-->
~~~yaml
a: 1
~~~
"""


def test_fences_directives_and_line_numbers_in_page_order():
    items = parse(PAGE, "docs/page.md")
    kinds = [(type(i).__name__, getattr(i, "lang", None), getattr(i, "action", None), i.line)
             for i in items]
    assert kinds == [("Block", "python", "run", 3), ("Block", "shell", "run", 7),
                     ("Block", "console", "inert", 11), ("Block", "", "inert", 15),
                     ("Block", "python", "file", 20), ("Block", "shell", "skip", 25),
                     ("Cd", None, None, 29), ("Setup", None, None, 30),
                     ("Block", "yaml", "inert", 34)]
    first, *_ = items
    assert isinstance(first, Block) and first.code == "x = 1\n" and first.first_code_line == 4
    assert first.where == "docs/page.md:3"
    written, skipped, cd, setup = items[4], items[5], items[6], items[7]
    assert written.argument == "pkg/mod.py" and written.code == "VALUE = 2\n"
    assert skipped.argument == "needs a second machine"
    assert isinstance(cd, Cd) and cd.folder == "demo"
    assert isinstance(setup, Setup) and setup.code == "qflow init -p demo\necho done\n"
    assert setup.first_code_line == 31
    assert not uses_ipython(items)


def test_one_line_setup_indented_fences_and_longer_fences():
    items = parse("<!-- test: setup touch a -->\n- item\n\n   ````python\n   if x:\n       y = 1\n"
                  "   ```\n   ````\n")
    assert isinstance(items[0], Setup) and items[0].code == "touch a\n"
    block = items[1]
    assert isinstance(block, Block) and block.code == "if x:\n    y = 1\n```\n"


def test_magics_make_a_page_run_on_a_kernel():
    assert uses_ipython(parse("```python\n%load_ext qflow\n```\n"))
    assert uses_ipython(parse("```python\nx = 1\n```\n```python\n%%qflow_step a\nb = 2\n```\n"))
    # A written file or a skipped block is never run, so it needs no kernel.
    assert not uses_ipython(parse("<!-- test: file x.py -->\n```python\n%time 1\n```\n"))
    assert not uses_ipython(parse("```python\nx = 100 % 7\n```\n"))


def test_other_comments_are_ignored():
    assert parse("<!-- a note -->\n```text\nx\n```\n")[0].action == "inert"


@pytest.mark.parametrize("text, message", [
    ("```bash\nls\n```\n", "page.md:1: unknown code fence language 'bash': write ```shell"),
    ("```rust\nfn main() {}\n```\n", "unknown code fence language 'rust'"),
    ("```python\nx = 1\n", "page.md:1: the code fence is never closed"),
    ("<!-- test: skip -->\n```shell\nls\n```\n", "page.md:1: `<!-- test: skip -->` needs a reason"),
    ("<!-- test: file -->\n```shell\nls\n```\n", "needs a PATH"),
    ("<!-- test: cd -->\n", "needs a PATH"),
    ("<!-- test: skip why -->\n\n```shell\nls\n```\n", "page.md:1: `<!-- test: skip ... -->` must be "
                                                         "on the line right before a code fence"),
    ("<!-- test: file a.py -->\n", "must be on the line right before a code fence"),
    ("<!-- test: skip why -->\n```yaml\na: 1\n```\n", "page.md:2: `skip` on a ```yaml block"),
    ("<!-- test: frobnicate -->\n", "unknown directive `test: frobnicate` (known: file, skip, cd, setup)"),
    ("<!-- test: cd demo\n", "must end with `-->` on the same line"),
    ("<!-- test: setup\nqflow init -p demo\n", "page.md:1: `<!-- test: setup` is never closed"),
    ("<!-- test: setup\nls\n```shell\nls\n```\n-->\n", "is not closed by a `-->` line before the fence at line 3"),
    ("<!-- test: setup\n\n-->\n", "has no shell lines"),
])
def test_mistakes_name_the_file_and_line(text, message):
    with pytest.raises(DocsSyntaxError) as info:
        parse(text, "page.md")
    assert message in str(info.value)


def _run(text: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Run a page; return the failure report ("" when every block passed)."""
    try:
        Page(parse(text, "docs/page.md"), tmp_path, page_env(text, request)).run()
    except BlockFailed as exc:
        return str(exc)
    return ""


def test_blocks_share_a_namespace_files_folders_and_exported_variables(tmp_path, request):
    text = """<!-- test: setup
mkdir sub && export GREETING=hello
-->
<!-- test: cd sub -->
<!-- test: file helper.py -->
```python
def twice(x):
    return 2 * x
```

```python
import os
import sys
from helper import twice

value = twice(21)
assert os.environ["GREETING"] == "hello"
```

```shell
export SHOUT=HELLO
echo "$GREETING" > greeting.txt
```

```python
assert value == 42 and open("greeting.txt").read() == "hello\\n"
assert os.environ["SHOUT"] == "HELLO" and os.getcwd().endswith("sub")
```
"""
    assert _run(text, tmp_path, request) == ""


def test_a_failing_python_block_is_reported_with_its_line_and_output(tmp_path, request):
    text = "# Page\n\n```python\nprint('before')\n\nraise ValueError('boom')\n```\n"
    report = _run(text, tmp_path, request)
    assert report.startswith("docs/page.md:3: ```python block raised an exception\n")
    assert "    6 | raise ValueError('boom')" in report
    assert "before" in report and "ValueError: boom" in report
    assert 'line 6, in <module>' in report  # the traceback counts the page's lines
    assert "pyrunner" not in report


def test_a_failing_shell_block_is_reported_with_its_exit_code(tmp_path, request):
    text = "```shell\necho one\nfalse\necho never\n```\n"
    report = _run(text, tmp_path, request)
    assert report.startswith("docs/page.md:1: ```shell block failed with exit code 1\n")
    output = report.split("-----")[-1]
    assert "one" in output and "never" not in output


def test_a_missing_cd_folder_is_reported(tmp_path, request):
    report = _run("<!-- test: cd nowhere -->\n", tmp_path, request)
    assert report.startswith("docs/page.md:1: `<!-- test: cd nowhere -->`: no such folder")


def test_the_virtualenv_comes_first_on_path(tmp_path, request):
    env = page_env("", request)
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
