"""Hamilton's side of the peer benchmark: a chain of no-op functions, built and executed by its
driver (``driver.Builder().with_modules(...).build()`` then ``execute``), as its docs show.

Usage: ``python hamilton_work.py chain DIR N MB``; prints ``{"seconds": ...}`` last. The
module of N functions (``s0(x)``, ``s1(s0)``...) is generated before the clock starts, and a
2-function chain runs first so that Hamilton's own imports are loaded. Hamilton walks the
graph recursively, so a 1,000-deep chain needs a higher recursion limit.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import types

from hamilton import driver


def chain_module(n: int) -> types.ModuleType:
    source = "def s0(x: int) -> int:\n    return x + 1\n" + "".join(
        f"def s{i}(s{i - 1}: int) -> int:\n    return s{i - 1} + 1\n" for i in range(1, n))
    module = sys.modules[f"chain{n}"] = types.ModuleType(f"chain{n}")  # as if imported
    exec(compile(source, f"chain{n}.py", "exec"), module.__dict__)
    return module


def chain(module: types.ModuleType, n: int) -> None:
    dr = driver.Builder().with_modules(module).build()
    assert dr.execute([f"s{n - 1}"], inputs={"x": 0})[f"s{n - 1}"] == n


def main() -> None:
    name, n = sys.argv[1], int(sys.argv[3])
    if name != "chain":
        raise SystemExit(f"unknown workload {name!r}")
    logging.disable(logging.WARNING)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20 * n))
    chain(chain_module(2), 2)
    module = chain_module(n)
    start = time.perf_counter()
    chain(module, n)
    print(json.dumps({"seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
