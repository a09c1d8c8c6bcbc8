"""What a step cell reads (``refs``), leaves behind (``outputs``) and mutates: ``analyse``."""

from __future__ import annotations

import pytest

from qflow.notebook.cells import analyse

E: set[str] = set()  # the empty set, for readability in the table

# (id, cell source, expected refs, expected outputs, expected mutated)
CASES: list[tuple[str, str, set[str], set[str], set[str]]] = [
    # -- plain assignment and order within the cell ---------------------------------------------
    ("assign-constant", "x = 1", E, {"x"}, E),
    ("assign-from-inputs", "y = f(x)", {"f", "x"}, {"y"}, E),
    ("use-before-def", "print(x)\nx = 1", {"x"}, {"x"}, E),
    ("def-before-use", "x = 1\nprint(x)", E, {"x"}, E),
    ("self-reference", "x = x + 1", {"x"}, {"x"}, E),
    ("augmented", "x += 1", {"x"}, {"x"}, E),
    ("augmented-after-def", "x = 0\nx += 1", E, {"x"}, E),
    ("chained", "a = b = c", {"c"}, {"a", "b"}, E),
    ("tuple-swap", "a, b = b, a", {"a", "b"}, {"a", "b"}, E),
    ("starred-target", "first, *rest = items", {"items"}, {"first", "rest"}, E),
    ("nested-unpack", "(a, [b, *c]), d = pairs", {"pairs"}, {"a", "b", "c", "d"}, E),
    # -- mutation of the root of a subscript/attribute target -----------------------------------
    ("subscript-assign", "d[k] = v", {"d", "k", "v"}, {"d"}, {"d"}),
    ("subscript-augmented", "counts[w] += 1", {"counts", "w"}, {"counts"}, {"counts"}),
    ("attribute-assign", "obj.a = 1", {"obj"}, {"obj"}, {"obj"}),
    ("attribute-chain", "d[k].a.b = v", {"d", "k", "v"}, {"d"}, {"d"}),
    ("slice-assign", "arr[lo:hi] = 0", {"arr", "lo", "hi"}, {"arr"}, {"arr"}),
    ("mutate-own-name", "cfg = {}\ncfg['lr'] = 0.1", E, {"cfg"}, {"cfg"}),
    ("unpack-into-subscript", "a, d[k] = pair", {"pair", "d", "k"}, {"a", "d"}, {"d"}),
    # the root is a call, not a name: nothing nameable is mutated
    ("call-root-subscript", "make()[0] = 1", {"make"}, E, E),
    # -- del ------------------------------------------------------------------------------------
    ("del-input", "del x", {"x"}, E, E),
    ("del-own-name", "x = 1\ndel x", E, E, E),
    ("del-subscript", "del d[k]", {"d", "k"}, {"d"}, {"d"}),
    ("del-attribute", "del obj.a", {"obj"}, {"obj"}, {"obj"}),
    ("del-tuple", "del (d[k], x)", {"d", "k", "x"}, {"d"}, {"d"}),
    # -- imports --------------------------------------------------------------------------------
    ("import-dotted", "import a.b.c", E, {"a"}, E),
    ("import-as", "import numpy as np", E, {"np"}, E),
    ("import-dotted-as", "import os.path as osp", E, {"osp"}, E),
    ("from-import", "from m import a, b as c", E, {"a", "c"}, E),
    ("import-then-use", "import math\ny = math.pi", E, {"math", "y"}, E),
    # -- functions ------------------------------------------------------------------------------
    (
        "def-params-and-defaults",
        "def f(a, b=c, *args, k=d, **kw):\n    return a + b + k + e + len(args) + len(kw)",
        {"c", "d", "e"},
        {"f"},
        E,
    ),
    ("def-annotations", "def f(x: T) -> R:\n    return x", {"T", "R"}, {"f"}, E),
    ("def-decorator", "@register(name)\ndef step():\n    pass", {"register", "name"}, {"step"}, E),
    ("def-recursive", "def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)", E, {"fact"}, E),
    ("def-free-name-bound-earlier", "w = 2\ndef f(x):\n    return w * x", E, {"w", "f"}, E),
    ("def-locals-not-outputs", "def f():\n    y = 1\n    return y", E, {"f"}, E),
    # the body is walked where the def stands: a global bound later in the cell is still a ref
    # (conservative: at run time f() called after `y = 1` would see the cell's y)
    ("def-reads-name-bound-later", "def f():\n    return y\ny = 1", {"y"}, {"f", "y"}, E),
    # a nested function's parameter does not make the name local to the outer function
    (
        "def-nested-param-not-outer-local",
        "def f():\n    def g(x):\n        return x\n    return g(x)",
        {"x"},
        {"f"},
        E,
    ),
    (
        "def-lambda-param-not-outer-local",
        "def f():\n    g = lambda X: X\n    return g(X)",
        {"X"},
        {"f"},
        E,
    ),
    (
        "def-comprehension-var-not-local",
        "def f():\n    ys = [i for i in r]\n    return i",
        {"r", "i"},
        {"f"},
        E,
    ),
    # mutation inside a function happens at call time, not when the cell runs
    ("def-body-mutation-not-cell-mutation", "def f():\n    d['k'] = 1", {"d"}, {"f"}, E),
    ("def-walrus-is-local", "def f():\n    return (z := 1)", E, {"f"}, E),
    ("async-def", "async def fetch(u):\n    return await get(u)", {"get"}, {"fetch"}, E),
    # -- global ---------------------------------------------------------------------------------
    ("global-assign", "def f():\n    global g\n    g = 1", E, {"f", "g"}, E),
    (
        "global-augmented",
        "def bump():\n    global counter\n    counter += 1",
        {"counter"},
        {"bump", "counter"},
        E,
    ),
    (
        "global-then-read-in-cell",
        "def f():\n    global g\n    g = 1\nf()\nprint(g)",
        E,
        {"f", "g"},
        E,
    ),
    # -- lambdas --------------------------------------------------------------------------------
    ("lambda", "key = lambda r: r[col]", {"col"}, {"key"}, E),
    ("lambda-default", "f = lambda x=y: x + z", {"y", "z"}, {"f"}, E),
    # -- classes --------------------------------------------------------------------------------
    (
        "class-def",
        "class Model(Base, metaclass=Meta):\n    n = 1\n    m = n + k\n"
        "    def fit(self, X):\n        return self.n",
        {"Base", "Meta", "k"},
        {"Model"},
        E,
    ),
    ("class-decorator", "@dataclass\nclass P:\n    x: int = 0", {"dataclass"}, {"P"}, E),
    # class attributes are not visible inside methods: a bare `a` there is a global
    (
        "class-var-invisible-in-method",
        "class C:\n    a = 1\n    def m(self):\n        return a",
        {"a"},
        {"C"},
        E,
    ),
    # a method's default value and decorators are evaluated in the class body: they see it
    (
        "class-var-in-method-default",
        "class C:\n    n = 1\n    @deco(n)\n    def m(self, k=n):\n        return k",
        {"deco"},
        {"C"},
        E,
    ),
    # ...nor inside a comprehension's element, only its first iterable
    (
        "class-var-in-comprehension",
        "class C:\n    n = 1\n    ys = [x + n for x in range(n)]",
        {"n"},
        {"C"},
        E,
    ),
    # -- comprehensions -------------------------------------------------------------------------
    ("listcomp", "ys = [x * w for x in xs]", {"w", "xs"}, {"ys"}, E),
    ("listcomp-var-does-not-leak", "ys = [i for i in r]\nprint(i)", {"r", "i"}, {"ys"}, E),
    ("setcomp-with-condition", "s = {x for x in xs if x > lo}", {"xs", "lo"}, {"s"}, E),
    ("dictcomp", "m = {k: v for k, v in pairs.items()}", {"pairs"}, {"m"}, E),
    ("genexp", "total = sum(x for x in xs)", {"xs"}, {"total"}, E),
    ("first-iterable-read-outside", "ys = [x for x in x]", {"x"}, {"ys"}, E),
    ("several-generators", "ps = [(i, j) for i in a for j in range(i, b)]", {"a", "b"}, {"ps"}, E),
    ("nested-comprehension", "t = [[x * y for x in row] for row in m]", {"y", "m"}, {"t"}, E),
    # -- walrus ---------------------------------------------------------------------------------
    ("walrus-cell-level", "if (n := len(xs)) > 3:\n    big = True", {"xs"}, {"n", "big"}, E),
    (
        "walrus-in-comprehension",
        "hits = [y for x in xs if (y := f(x))]\nprint(y)",
        {"xs", "f"},
        {"hits", "y"},
        E,
    ),
    # -- loops, with, try -----------------------------------------------------------------------
    ("for-loop", "t = 0\nfor i in range(n):\n    t += i", {"n"}, {"t", "i"}, E),
    ("for-accumulate-input", "for i in range(3):\n    t += i", {"t"}, {"t", "i"}, E),
    (
        "for-tuple-target",
        "for k, v in d.items():\n    out[k] = v",
        {"d", "out"},
        {"k", "v", "out"},
        {"out"},
    ),
    ("for-else", "for x in xs:\n    pass\nelse:\n    y = x", {"xs"}, {"x", "y"}, E),
    ("while", "while n > 0:\n    n -= 1", {"n"}, {"n"}, E),
    ("with-as", "with open(path) as f:\n    text = f.read()", {"path"}, {"f", "text"}, E),
    # the exception name is unbound when the handler ends: not an output
    (
        "try-except-as",
        "try:\n    r = parse(s)\nexcept ValueError as e:\n    r = str(e)",
        {"parse", "s"},
        {"r"},
        E,
    ),
    (
        "except-type-is-read",
        "try:\n    pass\nexcept (MyError, KeyError):\n    pass",
        {"MyError"},
        E,
        E,
    ),
    # bound before the handler: kept as an output (it is still bound if nothing was raised)
    (
        "except-name-bound-before",
        "e = 0\ntry:\n    pass\nexcept E as e:\n    pass",
        {"E"},
        {"e"},
        E,
    ),
    # -- conditional definitions (may-bind: one branch binding is enough) -----------------------
    ("conditional-def-then-read", "if c:\n    y = 1\nprint(y)", {"c"}, {"y"}, E),
    (
        "conditional-both-branches",
        "if c:\n    y = 1\nelse:\n    y = 2\nz = y",
        {"c"},
        {"y", "z"},
        E,
    ),
    # the else branch never sees what the if branch bound
    ("conditional-read-in-else", "if c:\n    y = 1\nelse:\n    z = y", {"c", "y"}, {"y", "z"}, E),
    # -- match ----------------------------------------------------------------------------------
    (
        "match-captures",
        "match cmd:\n    case [op, *args]:\n        r = op\n    case {'k': v, **rest}:\n        r = v\n"
        "    case Point(x=px) as p if px > lim:\n        r = px",
        {"cmd", "Point", "lim"},
        {"op", "args", "v", "rest", "px", "p", "r"},
        E,
    ),
    (
        "match-cases-exclusive",
        "match v:\n    case 1:\n        y = 1\n    case _:\n        z = y",
        {"v", "y"},
        {"y", "z"},
        E,
    ),
    # -- private names --------------------------------------------------------------------------
    ("private-never-output", "_tmp = load(p)\nresult = _tmp * 2", {"load", "p"}, {"result"}, E),
    ("private-mutation", "_cache[k] = 1", {"_cache", "k"}, E, {"_cache"}),
    ("private-def-and-import", "def _helper():\n    pass\nimport numpy as _np", E, E, E),
    # -- builtins -------------------------------------------------------------------------------
    ("builtins-not-refs", "print(len(range(3)))", E, E, E),
    ("shadowed-builtin", "len = 3\nprint(len)", E, {"len"}, E),
    # -- annotations ----------------------------------------------------------------------------
    ("annotated-with-value", "x: int = f()", {"f"}, {"x"}, E),
    ("annotated-without-value", "x: Frame", {"Frame"}, E, E),
    ("annotated-attribute-without-value", "obj.a: int", {"obj"}, E, E),
    ("annotated-subscript-with-value", "d[k]: int = 1", {"d", "k"}, {"d"}, {"d"}),
    # -- star import (star_import itself: see test_star_import_flag) ----------------------------
    ("star-import", "from m import *\ny = a", {"a"}, {"y"}, E),
    # -- IPython-transformed code (transform_cell output) ---------------------------------------
    # `%time f()`: the magic's argument is a string, so f is NOT a ref
    ("line-magic", "get_ipython().run_line_magic('time', 'f()')", E, E, E),
    # `%%time\nx = f()`: the whole body is a string -- nothing is read or bound
    ("cell-magic", "get_ipython().run_cell_magic('time', '', 'x = f()\\n')", E, E, E),
    ("shell-capture", "files = get_ipython().getoutput('ls {path}')", E, {"files"}, E),
    # -- documented blind spots -----------------------------------------------------------------
    # blind spot: mutation through a method call is invisible
    ("blind-method-append", "lst.append(1)", {"lst"}, E, E),
    ("blind-inplace", "df.drop(columns=c, inplace=True)", {"df", "c"}, E, E),
    ("blind-model-fit", "model.fit(X, y)", {"model", "X", "y"}, E, E),
    # blind spot: names reached by string
    ("blind-eval", "eval('x')", E, E, E),
    ("blind-globals-subscript", "globals()['y'] = 1", E, E, E),
    # blind spot: what a function from another cell reads at run time (only `train` is seen)
    ("blind-other-cell-function", "result = train()", {"train"}, {"result"}, E),
]


@pytest.mark.parametrize(
    ("source", "refs", "outputs", "mutated"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_analyse(source: str, refs: set[str], outputs: set[str], mutated: set[str]) -> None:
    names = analyse(source)
    assert names.refs == refs
    assert names.outputs == outputs
    assert names.mutated == mutated


def test_case_ids_are_unique() -> None:
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("source", ["x = ", "%time f()", "def f(:\n    pass"])
def test_invalid_code_raises_syntax_error(source: str) -> None:
    with pytest.raises(SyntaxError):
        analyse(source)


def test_outputs_exclude_deleted_names() -> None:
    names = analyse("x = 1\ny = 2\nd[0] = 1\ndel x\ndel d")
    assert names.defs == {"x", "y"}
    assert names.mutated == {"d"}
    assert names.deleted == {"x", "d"}
    assert names.outputs == {"y"}


@pytest.mark.parametrize(
    "source",
    [
        "del x\nx = 2",
        "del x\nimport x",
        "del x\nfor x in r:\n    pass",
        "del x\n[(x := i) for i in r]",
    ],
)
def test_delete_then_rebind_is_an_output(source: str) -> None:
    names = analyse(source)
    assert "x" in names.refs  # `del x` needs an x to delete
    assert names.deleted == set()
    assert "x" in names.outputs


def test_outputs_drop_private_names_but_defs_keep_them() -> None:
    names = analyse("_a = 1\nb = 2")
    assert names.defs == {"_a", "b"}
    assert names.outputs == {"b"}


def test_star_import_flag() -> None:
    assert analyse("from m import *").star_import is True
    assert analyse("from m import a\nimport m").star_import is False


def test_real_ipython_transform_matches_table() -> None:
    transformer = pytest.importorskip("IPython.core.inputtransformer2").TransformerManager()
    line = analyse(transformer.transform_cell("%time f()\n"))
    assert (line.refs, line.outputs) == (set(), set())
    cell = analyse(transformer.transform_cell("%%time\nx = f()\n"))
    assert (cell.refs, cell.outputs) == (set(), set())
