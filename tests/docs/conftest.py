"""After a run of the docs tests, list the code blocks they skip, each with its reason."""

from __future__ import annotations

import pytest

from tests.docs.blocks import Block, DocsSyntaxError, parse_file


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    ran = [r for reports in terminalreporter.stats.values() for r in reports
           if getattr(r, "nodeid", "").startswith("tests/docs/test_code_blocks.py::test_code_blocks")]
    if not ran:
        return
    from tests.docs.test_code_blocks import REPO, pages

    skipped = []
    for page in pages():
        try:
            items = parse_file(page, REPO)
        except DocsSyntaxError:
            continue  # its test fails and says why
        skipped += [b for b in items if isinstance(b, Block) and b.action == "skip"]
    if skipped:
        terminalreporter.section("code blocks not run (<!-- test: skip -->)")
        for block in skipped:
            terminalreporter.write_line(f"{block.where} ```{block.lang}: {block.argument}")
