"""Code fingerprints: what a step's code depends on, so an edit anywhere in it re-runs the step.

A fingerprint maps ``module:qualname`` to a digest of the normalised source (its AST without
docstrings: comments and formatting do not count) of every function and class of the user's
project that the step reaches: its methods, the helpers they call (also in other modules,
followed through globals, closures and ``functools.partial``), module-level constants they
read, and project modules they use as a whole. Libraries count by their installed version
(``lib:numpy`` -> ``2.1.0``). A false re-run is acceptable; a false cache hit is not.

Blind spots (documented): mutable module-level objects (a dict of settings) and values
reached by name through ``getattr``/``globals()`` are not followed.
"""

from __future__ import annotations

import ast
import dis
import functools
import hashlib
import importlib.util
import inspect
import os
import sys
import sysconfig
import textwrap
import types
from importlib import metadata
from typing import Any

_CONSTANTS = (bool, int, float, complex, str, bytes, type(None))
_LIBRARY_DIRS = tuple(
    {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)
_memo: dict[Any, dict[str, str]] = {}
FILE_MODULE_PREFIX = "_qflow_file_"


def module_label(name: str) -> str:
    """How module ``name`` is called in keys.

    A script run as ``__main__`` and a workflow file that QFlow imports by path (as
    ``_qflow_file_<stem>``) are both called after their file, so ``python workflow.py`` and
    ``qflow run`` compute the same keys and share the cache.
    """
    if name == "__main__" or name.startswith(FILE_MODULE_PREFIX):
        file = getattr(sys.modules.get(name), "__file__", None)
        if file:
            return os.path.splitext(os.path.basename(file))[0]
    return name


def qualified(obj: Any) -> str:
    """``module:qualname`` of a class or function, with :func:`module_label`'s module name."""
    return f"{module_label(getattr(obj, '__module__', '') or '')}:{obj.__qualname__}"


def _digest(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()[:16]


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _code_digest(code: types.CodeType) -> str:
    parts = [code.co_code, repr(code.co_names).encode()]
    for const in code.co_consts:
        parts.append(_code_digest(const).encode() if isinstance(const, types.CodeType)
                     else repr(const).encode())
    return _digest(b"\0".join(parts))


def source_digest(obj: Any) -> str:
    """Digest of ``obj``'s source without docstrings, comments and formatting."""
    try:
        source = textwrap.dedent(inspect.getsource(obj))
        return _digest(ast.dump(_strip_docstrings(ast.parse(source))))
    except (OSError, TypeError, SyntaxError, IndentationError):
        if isinstance(obj, type):  # no source file (an interactive session): hash the methods
            codes = [getattr(inspect.unwrap(f), "__code__", None) for f in vars(obj).values()
                     if callable(f)]
            return _digest("".join(_code_digest(c) for c in codes if c is not None))
        code = getattr(obj, "__code__", None)
        return _code_digest(code) if code is not None else _digest(repr(obj))


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _imported(code: types.CodeType) -> set[str]:
    """Top-level modules that ``import`` statements inside ``code`` (and nested code) name."""
    found = set()
    for instruction in dis.get_instructions(code):
        if instruction.opname == "IMPORT_NAME" and instruction.argval:
            found.add(str(instruction.argval).split(".")[0])
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _imported(const)
    return found


def _top_module(obj: Any) -> str:
    return (getattr(obj, "__module__", None) or getattr(obj, "__name__", "") or "").split(".")[0]


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def _provides(dist: metadata.Distribution, top: str) -> bool:
    """Whether ``dist`` installs the top-level module or package ``top`` (read as
    ``importlib.metadata.packages_distributions`` reads it: ``top_level.txt``, else the
    files the distribution installed)."""
    declared = dist.read_text("top_level.txt")
    if declared is not None:
        return top in declared.split()
    for file in dist.files or ():
        parts = file.parts
        if parts and (parts[0] if len(parts) > 1 else inspect.getmodulename(str(file))) == top:
            return True
    return False


def _named_after(top: str) -> metadata.Distribution | None:
    """The distribution named ``top`` (``numpy``, ``pandas``...) if it installs ``top``."""
    try:
        dist = metadata.distribution(top)
    except (metadata.PackageNotFoundError, ValueError):
        return None
    return dist if _provides(dist, top) else None


def _version(dist: metadata.Distribution) -> str | None:
    """``dist``'s version, read from the head of its metadata (``dist.version`` parses all of
    it as an e-mail message, long description included: milliseconds per library)."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    for line in text.splitlines():
        if not line.strip():
            break  # the headers end at the first blank line
        if line.startswith("Version:"):
            return line[len("Version:"):].strip()
    return dist.version


@functools.cache
def library_version(top: str) -> str:
    """The installed version of the distribution providing top-level module ``top``.

    Most libraries are distributed under their module's name, which is looked up directly;
    only the others (``sklearn`` from ``scikit-learn``) need the map of every installed
    distribution's modules, which takes most of a second to build where many are installed.
    """
    if top in sys.stdlib_module_names or top == "builtins":
        return f"python-{sys.version_info[0]}.{sys.version_info[1]}"
    named = _named_after(top)
    if named is not None:
        version = _version(named)
        if version:
            return version
    for dist in _distributions().get(top, []):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return str(getattr(sys.modules.get(top), "__version__", "unknown"))


def is_library(obj: Any) -> bool:
    """Whether ``obj`` comes from the standard library, an installed package or QFlow itself."""
    name = getattr(obj, "__module__", None) if not isinstance(obj, types.ModuleType) else obj.__name__
    if not name:
        return True
    if name == "__main__" or name.startswith("__ipython") or name.startswith("_ipython"):
        return False
    if name.split(".")[0] == "qflow":
        return True
    module = obj if isinstance(obj, types.ModuleType) else sys.modules.get(name)
    if module is None:  # code executed outside any imported module: treat it as the user's
        return name.split(".")[0] in sys.stdlib_module_names
    path = getattr(module, "__file__", None)
    return path is None or path.startswith(_LIBRARY_DIRS)


class _Walker:
    def __init__(self) -> None:
        self.out: dict[str, str] = {}
        self.seen: set[int] = set()

    def visit(self, obj: Any) -> None:
        if isinstance(obj, (classmethod, staticmethod)):
            obj = obj.__func__
        if isinstance(obj, property):
            for fn in (obj.fget, obj.fset, obj.fdel):
                if fn is not None:
                    self.visit(fn)
            return
        if isinstance(obj, functools.partial):
            self.visit(obj.func)
            self.value(f"partial:{getattr(obj.func, '__qualname__', '?')}", (obj.args, obj.keywords))
            return
        obj = inspect.unwrap(obj) if callable(obj) else obj
        if id(obj) in self.seen:
            return
        self.seen.add(id(obj))
        if is_library(obj):
            top = _top_module(obj)
            if top and top != "qflow":
                self.out[f"lib:{top}"] = library_version(top)
            return
        if isinstance(obj, type):
            self.visit_class(obj)
        elif isinstance(obj, types.FunctionType):
            self.visit_function(obj)
        elif isinstance(obj, types.ModuleType):
            self.out[module_label(obj.__name__)] = source_digest(obj)

    def value(self, name: str, value: Any) -> None:
        self.out[name] = _digest(repr(value))

    def visit_class(self, cls: type) -> None:
        self.out[qualified(cls)] = source_digest(cls)
        for base in cls.__mro__[1:]:
            self.visit(base)
        for attr in vars(cls).values():
            if hasattr(attr, "__wrapped__") and callable(attr):  # a decorated method
                attr = inspect.unwrap(attr)
            if isinstance(attr, (types.FunctionType, classmethod, staticmethod, property)):
                self.visit_methods_globals(attr)

    def visit_methods_globals(self, attr: Any) -> None:
        fn = attr.__func__ if isinstance(attr, (classmethod, staticmethod)) else attr
        if isinstance(fn, property):
            fn = fn.fget
        fn = inspect.unwrap(fn) if fn is not None else None
        if isinstance(fn, types.FunctionType):
            self.follow(fn)

    def visit_function(self, fn: types.FunctionType) -> None:
        self.out[qualified(fn)] = source_digest(fn)
        if fn.__defaults__ or fn.__kwdefaults__:
            self.value(f"{qualified(fn)}.defaults",
                       (fn.__defaults__, fn.__kwdefaults__))
        self.follow(fn)

    def follow(self, fn: types.FunctionType) -> None:
        """Visit what ``fn`` reads from its globals and closure, and what it imports."""
        for top in sorted(_imported(fn.__code__)):
            self.imported(top)
        for name in sorted(_global_names(fn.__code__)):
            if name in fn.__globals__:
                value = fn.__globals__[name]
                if name == "__name__":  # `getLogger(__name__)`: the same under every entry point
                    value = module_label(value)
                elif name == "__package__":  # None as `__main__`, "" when imported by path
                    value = value or ""
                self.reference(f"{module_label(fn.__module__)}:{name}", value)
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
            try:
                content = cell.cell_contents
            except ValueError:
                continue
            if name != "__class__":  # the cell zero-argument super() uses
                self.reference(f"{qualified(fn)}.{name}", content)

    def imported(self, top: str) -> None:
        """A module imported inside a function: a library's version, or a project file's code."""
        module = sys.modules.get(top)
        if module is not None:
            self.visit(module)
            return
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
        origin = getattr(spec, "origin", None)
        if origin is None or origin in ("built-in", "frozen") or origin.startswith(_LIBRARY_DIRS):
            self.out[f"lib:{top}"] = library_version(top)
        else:
            with open(origin, "rb") as f:
                self.out[top] = _digest(f.read())

    def reference(self, name: str, value: Any) -> None:
        if isinstance(value, _CONSTANTS) or (
            isinstance(value, (tuple, frozenset)) and all(isinstance(v, _CONSTANTS) for v in value)
        ):
            self.value(name, value)
        elif isinstance(value, (type, types.FunctionType, types.ModuleType, functools.partial)):
            self.visit(value)


def code_fingerprint(obj: Any) -> dict[str, str]:
    """``module:qualname`` -> digest for everything of the project that ``obj`` depends on."""
    try:
        return _memo[obj]
    except (KeyError, TypeError):
        pass
    walker = _Walker()
    walker.visit(obj)
    result = dict(sorted(walker.out.items()))
    try:
        _memo[obj] = result
    except TypeError:
        pass
    return result


def forget(obj: Any = None) -> None:
    """Drop memoised fingerprints (all of them, or ``obj``'s), e.g. after a notebook cell edit."""
    if obj is None:
        _memo.clear()
    else:
        _memo.pop(obj, None)
