"""A static check that no Cypher query text is built from data or user input.

:func:`scan_source` finds every expression that builds text by formatting (f-string, ``%``,
``.format``, ``+``) whose literal parts look like Cypher (a clause keyword such as ``MATCH`` or
``MERGE`` at the start, or next to Cypher syntax such as ``(n:``, ``$param``, ``-[``, ``AS``).
Such a builder is allowed only in ``graphkit/store/neo4j*.py``, and everything it interpolates
must be *safe*: a call to the identifier-quoting function ``_q``, a string or number literal, an
upper-case module constant (the schema's ``NODES``, ``RUN_LABEL``...), or something derived from
safe values only: attributes, subscripts and string methods of safe values, conditional
expressions, joins and comprehensions over safe iterables, locals whose every assignment is safe,
parameters that every call site in the module passes safe values for, and calls of module
functions whose every ``return`` is safe. Anything else (a parameter nobody in the module passes,
a value read from a frame, a row or the command line) is a violation.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

_KEYWORDS = "MATCH|MERGE|CREATE|UNWIND|RETURN|SET|DELETE|CALL|REMOVE|DETACH|OPTIONAL|WITH"
_ANY_KEYWORD = re.compile(r"\b(?:MATCH|MERGE|CREATE|UNWIND|RETURN|SET|DELETE|CALL)\b")
_STARTS_WITH_KEYWORD = re.compile(rf"^\s*(?:{_KEYWORDS})\b")
_CYPHER_SYNTAX = re.compile(r"\(\w*:\w|\$\w|-\[|\]-|\bAS\b|\bLIMIT\b|\bWHERE\b|\bIF NOT EXISTS\b")
_CONSTANT_NAME = re.compile(r"^_?[A-Z][A-Z0-9_]*$")
_SAFE_METHODS = {"lower", "upper", "strip", "title", "join", "replace", "items", "values", "keys"}
_SAFE_BUILTINS = {"str", "int", "len", "sorted", "tuple", "list", "repr"}
ALLOWED_FILES = re.compile(r"(^|/)graphkit/store/neo4j[^/]*\.py$")
_HOLE = "x"


@dataclass(frozen=True)
class Violation:
    """A Cypher-building expression at ``path:line`` that breaks the rule, and why."""

    path: str
    line: int
    reason: str
    source: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}: {self.source}"


def looks_like_cypher(text: str) -> bool:
    """Whether literal text (holes filled with a placeholder) reads as a Cypher query part."""
    if not _ANY_KEYWORD.search(text):
        return False
    return bool(_STARTS_WITH_KEYWORD.match(text) or _CYPHER_SYNTAX.search(text))


def _literal_text(node: ast.AST) -> str | None:
    """The literal text of a string-building expression (holes as a placeholder), or None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else _HOLE for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal_text(node.left), _literal_text(node.right)
        if left is None and right is None:
            return None
        return (left or _HOLE) + (right or _HOLE)
    return None


def _builders(node: ast.AST) -> tuple[str, list[ast.expr]] | None:
    """``(literal text, interpolated expressions)`` when ``node`` builds text by formatting."""
    if isinstance(node, ast.JoinedStr):
        holes = [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
        return _literal_text(node) or "", holes
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        text = _literal_text(node.left)
        if text is not None:
            right = node.right
            return text, list(right.elts) if isinstance(right, ast.Tuple) else [right]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        text = _literal_text(node)
        if text is not None:
            return text, _add_operands(node)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    ):
        text = _literal_text(node.func.value)
        if text is not None:
            return text, [*node.args, *(k.value for k in node.keywords)]
    return None


def _add_operands(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _add_operands(node.left) + _add_operands(node.right)
    return [] if isinstance(node, ast.Constant) else [node]


Function = ast.FunctionDef | ast.AsyncFunctionDef


class _Module:
    """Safety of expressions within one module (see the module docstring)."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.functions: dict[str, list[Function]] = {}
        self.scope_of: dict[int, Function | None] = {}
        self.calls: list[tuple[ast.Call, Function | None]] = []
        self._index(tree, None)
        self._params: dict[tuple[int, str], bool] = {}
        self._returns: dict[int, bool] = {}

    def _index(self, node: ast.AST, scope: Function | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                self.functions.setdefault(child.name, []).append(child)
                inner = child
            self.scope_of[id(child)] = inner
            if isinstance(child, ast.Call):
                self.calls.append((child, inner))
            self._index(child, inner)

    def safe(self, node: ast.AST, scope: Function | None, env: dict[str, bool]) -> bool:
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.JoinedStr):
            return all(self.safe(v, scope, env) for v in node.values)
        if isinstance(node, ast.FormattedValue):
            return self.safe(node.value, scope, env) and (
                node.format_spec is None or self.safe(node.format_spec, scope, env)
            )
        if isinstance(node, ast.Name):
            return self._name(node.id, scope, env)
        if isinstance(node, ast.Attribute):
            return self.safe(node.value, scope, env)
        if isinstance(node, ast.Subscript):
            return self.safe(node.value, scope, env) and self.safe(node.slice, scope, env)
        if isinstance(node, ast.IfExp):
            return self.safe(node.body, scope, env) and self.safe(node.orelse, scope, env)
        if isinstance(node, ast.BinOp):
            return self.safe(node.left, scope, env) and self.safe(node.right, scope, env)
        if isinstance(node, ast.BoolOp):
            return all(self.safe(v, scope, env) for v in node.values)
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            return all(self.safe(e, scope, env) for e in node.elts)
        if isinstance(node, ast.ListComp | ast.GeneratorExp | ast.SetComp):
            inner = dict(env)
            for generator in node.generators:
                safe_iter = self.safe(generator.iter, scope, inner)
                for name in _names(generator.target):
                    inner[name] = safe_iter
            return self.safe(node.elt, scope, inner)
        if isinstance(node, ast.Call):
            return self._call(node, scope, env)
        return False

    def _call(self, node: ast.Call, scope: Function | None, env: dict[str, bool]) -> bool:
        func = node.func
        args = [*node.args, *(k.value for k in node.keywords)]
        if isinstance(func, ast.Name) and func.id == "_q":
            return True
        if isinstance(func, ast.Name) and func.id in _SAFE_BUILTINS:
            return all(self.safe(a, scope, env) for a in args)
        if isinstance(func, ast.Attribute) and func.attr in _SAFE_METHODS:
            return self.safe(func.value, scope, env) and all(self.safe(a, scope, env) for a in args)
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name in self.functions:
            return all(self._returns_safe(f) for f in self.functions[name])
        return False

    def _returns_safe(self, function: Function) -> bool:
        key = id(function)
        if key not in self._returns:
            self._returns[key] = False  # a recursive function is not proven safe
            returns = [n for n in ast.walk(function) if isinstance(n, ast.Return)]
            self._returns[key] = bool(returns) and all(
                r.value is None or self.safe(r.value, function, {}) for r in returns
            )
        return self._returns[key]

    def _name(self, name: str, scope: Function | None, env: dict[str, bool]) -> bool:
        if name in env:
            return env[name]
        if _CONSTANT_NAME.match(name):
            return True
        if scope is not None and name in _parameters(scope):
            return self._parameter_safe(scope, name)
        owner = scope if scope is not None else self.tree
        bindings = list(_bindings(owner, name))
        if not bindings and scope is not None:
            bindings = list(_bindings(self.tree, name, top_level_only=True))
            scope = None
        return bool(bindings) and all(self._binding_safe(b, scope) for b in bindings)

    def _binding_safe(self, binding: tuple[ast.AST, int | None], scope: Function | None) -> bool:
        value, index = binding
        if isinstance(value, ast.For | ast.comprehension):
            iterable = value.iter
            if isinstance(iterable, ast.Tuple | ast.List):
                return all(self.safe(_element(e, index), scope, {}) for e in iterable.elts)
            return self.safe(iterable, scope, {})
        if index is not None and isinstance(value, ast.Tuple | ast.List):
            return self.safe(value.elts[index], scope, {})
        return self.safe(value, scope, {})

    def _parameter_safe(self, function: Function, name: str) -> bool:
        key = (id(function), name)
        if key in self._params:
            return self._params[key]
        self._params[key] = False
        params = _parameters(function)
        position = params.index(name)
        default = _default(function, name)
        sites = [
            (call, scope)
            for call, scope in self.calls
            if (isinstance(call.func, ast.Name) and call.func.id == function.name)
            or (isinstance(call.func, ast.Attribute) and call.func.attr == function.name)
        ]
        verdict = bool(sites)
        for call, scope in sites:
            shift = 1 if isinstance(call.func, ast.Attribute) and params[:1] == ["self"] else 0
            passed = next((k.value for k in call.keywords if k.arg == name), None)
            if passed is None and 0 <= position - shift < len(call.args):
                passed = call.args[position - shift]
            if passed is None:
                passed = default
            verdict &= passed is not None and self.safe(passed, scope, {})
        self._params[key] = verdict
        return verdict


def _names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [n for e in target.elts for n in _names(e)]
    return []


def _element(node: ast.expr, index: int | None) -> ast.expr:
    if index is not None and isinstance(node, ast.Tuple | ast.List):
        return node.elts[index]
    return node


def _parameters(function: Function) -> list[str]:
    a = function.args
    return [p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs]]


def _default(function: Function, name: str) -> ast.expr | None:
    a = function.args
    positional = [*a.posonlyargs, *a.args]
    defaulted = positional[len(positional) - len(a.defaults) :]
    for param, default in zip(defaulted, a.defaults, strict=True):
        if param.arg == name:
            return default
    for param, default in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        if param.arg == name:
            return default
    return None


def _bindings(
    owner: ast.AST, name: str, top_level_only: bool = False
) -> list[tuple[ast.AST, int | None]]:
    """Every (value, tuple index) ``name`` is bound to in ``owner``: assignments, augmented
    assignments, for-loop and comprehension targets (whose value is the loop itself)."""
    found: list[tuple[ast.AST, int | None]] = []
    nodes = ast.iter_child_nodes(owner) if top_level_only else ast.walk(owner)
    for node in nodes:
        targets: list[tuple[ast.AST, ast.AST]] = []
        if isinstance(node, ast.Assign):
            targets = [(t, node.value) for t in node.targets]
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and node.value is not None:
            targets = [(node.target, node.value)]
        elif isinstance(node, ast.For | ast.comprehension):
            targets = [(node.target, node)]
        elif isinstance(node, ast.NamedExpr):
            targets = [(node.target, node.value)]
        for target, value in targets:
            if isinstance(target, ast.Name) and target.id == name:
                found.append((value, None))
            elif isinstance(target, ast.Tuple | ast.List):
                for index, element in enumerate(target.elts):
                    if isinstance(element, ast.Name) and element.id == name:
                        found.append((value, index))
    return found


def scan_source(source: str, path: str) -> list[Violation]:
    """Every violation in the Python ``source`` of file ``path`` (repository-relative)."""
    tree = ast.parse(source)
    module = _Module(tree)
    violations: list[Violation] = []
    allowed = bool(ALLOWED_FILES.search(path))
    for node in ast.walk(tree):
        built = _builders(node)
        if built is None:
            continue
        text, holes = built
        if not looks_like_cypher(text):
            continue
        line = getattr(node, "lineno", 0)
        shown = ast.unparse(node)[:120]
        if not allowed:
            violations.append(Violation(path, line, "Cypher built outside the store", shown))
            continue
        scope = module.scope_of.get(id(node))
        for hole in holes:
            if not module.safe(hole, scope, {}):
                reason = f"interpolates {ast.unparse(hole)!r}, not quoted with _q or a constant"
                violations.append(Violation(path, line, reason, shown))
    return violations


def scan_tree(root: Path, parts: tuple[str, ...]) -> tuple[list[Violation], int, int]:
    """Scan every ``.py`` under ``root / part`` (a file or directory) for each of ``parts``.

    Returns (violations, files scanned, Cypher builders checked).
    """
    violations: list[Violation] = []
    files = builders = 0
    for part in parts:
        base = root / part
        paths = [base] if base.is_file() else sorted(base.rglob("*.py"))
        for path in paths:
            source = path.read_text(encoding="utf-8")
            relative = path.relative_to(root).as_posix()
            files += 1
            builders += sum(
                1
                for node in ast.walk(ast.parse(source))
                if (b := _builders(node)) is not None and looks_like_cypher(b[0])
            )
            violations += scan_source(source, relative)
    return violations, files, builders
