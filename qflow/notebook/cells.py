"""Which names a notebook cell reads and which it binds: static analysis of its source.

Used by the ``%%qflow_step`` magic and by ``qflow export`` (so it lives in the engine).

A flow-ordered walk over the cell's AST: right-hand sides before targets, so ``x = x + 1``
reads ``x`` and binds it. At cell level, a name *read* before the cell binds it is an input
(``refs``); a name *bound* (assignment, import, ``def``, ``class``, ``for`` target, ``with ...
as``, walrus, ``global`` in a function) is an output (``defs``); ``x += 1`` is both.
``obj.a = v``, ``d[k] = v``, ``d[k] += v`` and ``del d[k]`` read ``obj``/``d`` and *mutate*
it (``mutated``); ``del x`` removes ``x`` (``deleted``). Function, lambda and class bodies are
scopes of their own: their free names are reads of the cell (a function defined here that
reads a global depends on it), their locals are not. Comprehension variables stay local.
Names starting with ``_`` are private to the cell and never outputs.

Blind spots (see the docs): mutation through a method call (``lst.append(1)``,
``df.drop(..., inplace=True)``, ``model.fit(X)``) is invisible; so are names reached by
string (``eval``, ``globals()[...]``) and what functions from other cells read at run time.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field

_BUILTINS = frozenset(dir(builtins))


@dataclass
class CellNames:
    """The names a cell reads (``refs``), binds (``defs``), mutates and deletes."""

    refs: set[str] = field(default_factory=set)
    defs: set[str] = field(default_factory=set)
    mutated: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    star_import: bool = False
    imported: set[str] = field(default_factory=set)
    loop_vars: set[str] = field(default_factory=set)

    @property
    def outputs(self) -> set[str]:
        """What the cell leaves behind for later cells: bound or mutated, not private."""
        return {n for n in (self.defs | self.mutated) - self.deleted if not n.startswith("_")}

    @property
    def results(self) -> set[str]:
        """The outputs a step cell keeps: not names only an ``import`` binds (they are imported
        again) nor only a ``for`` loop binds (the last item of a loop is rarely a result)."""
        return self.outputs - self.imported - self.loop_vars


def _root(node: ast.AST) -> str | None:
    """``d`` for ``d[k].a``: the name at the root of a subscript/attribute chain."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class _Scope:
    def __init__(self, names: set[str]) -> None:
        self.names = names


class _Visitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.result = CellNames()
        self.bound: set[str] = set()  # names bound so far at cell level
        self.scopes: list[_Scope] = []  # enclosing function/class/comprehension scopes

    # -- reads and writes of plain names ------------------------------------------------------
    def read(self, name: str) -> None:
        visible = [s for s in self.scopes if not isinstance(s, _Class) or s is self.scopes[-1]]
        if any(name in s.names for s in visible) or name == "get_ipython":
            return
        if name not in self.bound and name not in _BUILTINS:
            self.result.refs.add(name)

    def write(self, name: str) -> None:
        if self.scopes:
            self.scopes[-1].names.add(name)
            return
        self.bound.add(name)
        self.result.defs.add(name)
        self.result.deleted.discard(name)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.read(node.id)
        elif isinstance(node.ctx, ast.Store):
            self.write(node.id)
        else:  # Del
            self.read(node.id)
            if not self.scopes:
                self.bound.discard(node.id)
                self.result.deleted.add(node.id)

    # -- targets: subscripts and attributes mutate their root ---------------------------------
    def _target(self, target: ast.AST) -> None:
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            self.visit(target)  # reads the root, the index, the attribute chain
            root = _root(target)
            if root is not None and not self.scopes:
                self.result.mutated.add(root)
            return
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._target(element)
            return
        if isinstance(target, ast.Starred):
            self._target(target.value)
            return
        self.visit(target)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self._target(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.annotation)
        if node.value is not None:
            self._target(node.target)
        elif not isinstance(node.target, ast.Name):
            self.visit(node.target)  # ``obj.a: int`` evaluates ``obj`` but assigns nothing

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self.read(node.target.id)
            self.write(node.target.id)
        else:
            self._target(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        scopes = [s for s in self.scopes if not isinstance(s, _Comprehension)]
        if len(scopes) == len(self.scopes):
            self.write(node.target.id)
        elif scopes:
            scopes[-1].names.add(node.target.id)
        else:  # walrus in a comprehension at cell level binds in the cell
            self.bound.add(node.target.id)
            self.result.defs.add(node.target.id)
            self.result.deleted.discard(node.target.id)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._target(target)

    def _branches(self, branches: list[list[ast.AST]]) -> None:
        """Alternatives: each starts from what was bound before; after them, what any bound."""
        before, after = self.bound, set(self.bound)
        for branch in branches:
            self.bound = set(before)
            for node in branch:
                self.visit(node)
            after |= self.bound
        self.bound = after

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        self._branches([node.body, node.orelse])

    def visit_Match(self, node: ast.Match) -> None:
        self.visit(node.subject)
        self._branches([[c.pattern, *([c.guard] if c.guard else []), *c.body] for c in node.cases])

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name is not None:
            self.write(node.name)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name is not None:
            self.write(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self.generic_visit(node)
        if node.rest is not None:
            self.write(node.rest)

    def visit_For(self, node: ast.For) -> None:
        self.visit(node.iter)
        self._target(node.target)
        for statement in node.body + node.orelse:
            self.visit(statement)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._target(item.optional_vars)
        for statement in node.body:
            self.visit(statement)

    visit_AsyncWith = visit_With

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:  # the exception name is unbound after the handler: not an output
            was_bound = node.name in self.bound
            self.write(node.name)
            for statement in node.body:
                self.visit(statement)
            if not self.scopes and not was_bound:
                self.bound.discard(node.name)
                self.result.defs.discard(node.name)
            return
        for statement in node.body:
            self.visit(statement)

    # -- imports -------------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.write(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.result.star_import = True
            else:
                self.write(alias.asname or alias.name)

    def visit_Global(self, node: ast.Global) -> None:
        for name in node.names:  # inside a function: assigning it binds a cell-level name
            self.result.defs.add(name)

    # -- scopes --------------------------------------------------------------------------------
    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        args = node.args
        for default in [*args.defaults, *[d for d in args.kw_defaults if d is not None]]:
            self.visit(default)
        if not isinstance(node, ast.Lambda):
            for decorator in node.decorator_list:
                self.visit(decorator)
            for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if a is not None and a.annotation is not None:
                    self.visit(a.annotation)
            if node.returns is not None:
                self.visit(node.returns)
            self.write(node.name)
        params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs,
                                  args.vararg, args.kwarg] if a is not None}
        body = node.body if isinstance(node.body, list) else [node.body]
        local = params | _locals(body)
        globals_ = {n for s in ast.walk(ast.Module(body=body, type_ignores=[]))
                    if isinstance(s, ast.Global) for n in s.names}
        self.scopes.append(_Scope(local - globals_))
        for statement in body:
            self.visit(statement)
        self.scopes.pop()
        if not self.scopes:  # bound only after the body: the body's own reads are inputs
            self.bound |= globals_

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.bases, *[k.value for k in node.keywords], *node.decorator_list]:
            self.visit(expr)
        self.scopes.append(_Class(set()))
        for statement in node.body:
            self.visit(statement)
        self.scopes.pop()
        self.write(node.name)

    def _comprehension(self, node: ast.AST, elements: list[ast.AST]) -> None:
        generators = node.generators  # type: ignore[attr-defined]
        self.visit(generators[0].iter)  # the first iterable is evaluated outside
        self.scopes.append(_Comprehension(set()))
        for i, gen in enumerate(generators):
            if i:
                self.visit(gen.iter)
            self._target(gen.target)
            for condition in gen.ifs:
                self.visit(condition)
        for element in elements:
            self.visit(element)
        self.scopes.pop()

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._comprehension(node, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node, [node.key, node.value])


class _Comprehension(_Scope):
    pass


class _Class(_Scope):
    """A class body: its names are not visible in its methods, lambdas or comprehensions."""


def _locals(body: list[ast.stmt]) -> set[str]:
    """Names a function body binds (Python's rule: any binding anywhere makes a name local)."""
    found: set[str] = set()
    todo: list[ast.AST] = list(body)
    while todo:  # not into nested scopes: their bindings are their own
        node = todo.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            found.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
            continue
        elif isinstance(node, ast.Lambda):
            continue
        elif isinstance(node, ast.comprehension):  # its variable is local; a walrus binds here
            todo.extend([node.iter, *node.ifs])
            continue
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            found.add(node.name)
        todo.extend(ast.iter_child_nodes(node))
    return found


def _bound_only_by(tree: ast.Module, kinds: tuple[type, ...]) -> set[str]:
    """Cell-level names bound by statements of ``kinds`` (imports, ``for`` targets) and by no
    other cell-level statement."""
    by_kind: set[str] = set()
    other: set[str] = set()
    todo: list[tuple[ast.AST, bool]] = [(n, False) for n in tree.body]
    while todo:
        node, inside = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            other.add(node.name)
            continue
        if isinstance(node, (ast.Lambda, ast.comprehension)):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
            (by_kind if isinstance(node, kinds) else other).update(names)
            continue
        if isinstance(node, (ast.For, ast.AsyncFor)):
            targets = {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
            (by_kind if isinstance(node, kinds) else other).update(targets)
            todo.extend((n, inside) for n in [node.iter, *node.body, *node.orelse])
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            other.add(node.id)
        todo.extend((n, inside) for n in ast.iter_child_nodes(node))
    return by_kind - other


def analyse(source: str) -> CellNames:
    """The names ``source`` (plain Python: run ``transform_cell`` first) reads and binds."""
    visitor = _Visitor()
    tree = ast.parse(source)
    visitor.visit(tree)
    visitor.result.imported = _bound_only_by(tree, (ast.Import, ast.ImportFrom))
    visitor.result.loop_vars = _bound_only_by(tree, (ast.For, ast.AsyncFor))
    return visitor.result
