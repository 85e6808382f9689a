"""Read an insightface SCRFD config file (mmdet/mmcv style) without mmcv and without exec.

The config files are plain assignments of literals, ``dict(...)`` calls, names bound
earlier and a little arithmetic (``step=[55*lr_mult, 68*lr_mult]``). We evaluate exactly
that subset from the AST; anything else is refused with its line number, so a config
file cannot run code. Nor can it spend the machine: the file's size, each value's size
(``9**9**9``, ``"x" * 10**9``, ``"%999999999d" % 1``, a list doubled in a loop of names) and the
nesting depth are bounded, each checked before the operation that would exceed it runs.
"""

from __future__ import annotations

import ast
import operator
from pathlib import Path
from typing import Any

from facebatch.core.errors import SpecError

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_CALLS = {"dict": dict, "list": list, "tuple": tuple}

# Bounds far above any real SCRFD config (the largest insightface ships is ~8 KB, its values are
# small ints, floats, short strings and dicts of a few dozen entries)
MAX_CONFIG_BYTES = 1_000_000
MAX_ITEMS = 100_000  # characters of a string, entries of a list, tuple or dict
MAX_INT_BITS = 4096  # an int beyond 2**4096 is no hyper-parameter
MAX_DEPTH = 100  # nested expressions (ast.parse itself recurses on deeper ones)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple, dict)) else 0


def _bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


class _Evaluator:
    def __init__(self, source_name: str) -> None:
        self.names: dict[str, Any] = {"True": True, "False": False, "None": None}
        self.source_name = source_name

    def refuse(self, node: ast.AST, what: str) -> SpecError:
        return SpecError(f"{self.source_name}:{getattr(node, 'lineno', '?')}: {what} is not supported in a config file")

    def value(self, node: ast.AST, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise self.refuse(node, f"an expression nested deeper than {MAX_DEPTH}")
        result = self._value(node, depth + 1)
        if _size(result) > MAX_ITEMS or _bits(result) > MAX_INT_BITS:
            raise self.refuse(node, f"a value larger than {MAX_ITEMS} items or {MAX_INT_BITS}-bit")
        return result

    def _operation(self, node: ast.BinOp, left: Any, right: Any) -> Any:
        """``left op right``, refused before it runs where its result would pass the bounds."""
        op = type(node.op)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
        if op is ast.Pow:
            if not numbers:
                raise self.refuse(node, "'**' of a non-number")
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
                if right * (_bits(left) - 1) > MAX_INT_BITS:  # log2 of the result, at least
                    raise self.refuse(node, f"a power above 2**{MAX_INT_BITS}")
        elif op is ast.Mult:
            counts = [v for v in (left, right) if isinstance(v, int)]
            sequences = [v for v in (left, right) if _size(v)]
            if sequences and counts and _size(sequences[0]) * max(counts[0], 0) > MAX_ITEMS:
                raise self.refuse(node, f"a repetition longer than {MAX_ITEMS} items")
            if _bits(left) + _bits(right) > MAX_INT_BITS:
                raise self.refuse(node, f"a product above 2**{MAX_INT_BITS}")
        elif op is ast.Mod and not numbers:
            raise self.refuse(node, "'%' formatting")
        elif op is ast.Add and _size(left) + _size(right) > MAX_ITEMS:
            raise self.refuse(node, f"a concatenation longer than {MAX_ITEMS} items")
        try:
            return _BINARY[op](left, right)
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise self.refuse(node, f"{type(exc).__name__} ({exc})") from None

    def _value(self, node: ast.AST, depth: int) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                raise self.refuse(node, f"undefined name {node.id!r}")
            return self.names[node.id]
        if isinstance(node, ast.List):
            return [self.value(e, depth) for e in node.elts]
        if isinstance(node, ast.Tuple):
            return tuple(self.value(e, depth) for e in node.elts)
        if isinstance(node, ast.Dict):
            return {
                self.value(k, depth): self.value(v, depth)
                for k, v in zip(node.keys, node.values, strict=False)
                if k is not None
            }
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return self._operation(node, self.value(node.left, depth), self.value(node.right, depth))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](self.value(node.operand, depth))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS:
            args = [self.value(a, depth) for a in node.args]
            kwargs = {k.arg: self.value(k.value, depth) for k in node.keywords if k.arg is not None}
            return _CALLS[node.func.id](*args, **kwargs)
        raise self.refuse(node, type(node).__name__)

    def run(self, tree: ast.Module) -> dict[str, Any]:
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
                value = self.value(stmt.value)
                for target in stmt.targets:
                    self.names[target.id] = value  # type: ignore[attr-defined]
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # a docstring
            elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                raise self.refuse(stmt, "import")
            else:
                raise self.refuse(stmt, type(stmt).__name__)
        return {k: v for k, v in self.names.items() if k not in ("True", "False", "None")}


def read_config_file(path: Path) -> dict[str, Any]:
    """All top-level assignments of a config file, evaluated safely."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"config {path} does not exist; pass an insightface SCRFD config file (.py)", field="config")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise SpecError(
            f"{path} is {path.stat().st_size} bytes; an SCRFD config is a few KB (at most {MAX_CONFIG_BYTES}): "
            "pass the config .py of the model"
        )
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, RecursionError, MemoryError) as exc:
        raise SpecError(f"{path} is not a readable Python config file: {type(exc).__name__}: {exc}") from None
    return _Evaluator(path.name).run(tree)


def read_scrfd_model_config(path: Path) -> dict[str, Any]:
    """The ``model`` dict of an SCRFD config file, checked to be an SCRFD detector."""
    values = read_config_file(path)
    if "_base_" in values and "model" not in values:
        raise SpecError(f"{path}: the model is defined in a _base_ file; pass a config that defines model=dict(...)")
    model = values.get("model")
    if not isinstance(model, dict):
        raise SpecError(f"{path} defines no model=dict(...); is it an SCRFD config?")
    if model.get("type") != "SCRFD":
        raise SpecError(f"{path}: model type is {model.get('type')!r}, expected 'SCRFD'")
    missing = [part for part in ("backbone", "neck", "bbox_head") if not isinstance(model.get(part), dict)]
    if missing:
        raise SpecError(f"{path}: model dict lacks {', '.join(missing)}")
    return model
