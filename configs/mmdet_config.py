"""Read an insightface SCRFD config file (mmdet/mmcv style) without mmcv and without exec.

The config files are plain assignments of literals, ``dict(...)`` calls, names bound
earlier and a little arithmetic (``step=[55*lr_mult, 68*lr_mult]``). We evaluate exactly
that subset from the AST; anything else is refused with its line number, so a config
file cannot run code.
"""

from __future__ import annotations

import ast
import operator
from pathlib import Path
from typing import Any

from facebatch.errors import SpecError

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


class _Evaluator:
    def __init__(self, source_name: str) -> None:
        self.names: dict[str, Any] = {"True": True, "False": False, "None": None}
        self.source_name = source_name

    def refuse(self, node: ast.AST, what: str) -> SpecError:
        return SpecError(f"{self.source_name}:{getattr(node, 'lineno', '?')}: {what} is not supported in a config file")

    def value(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                raise self.refuse(node, f"undefined name {node.id!r}")
            return self.names[node.id]
        if isinstance(node, ast.List):
            return [self.value(e) for e in node.elts]
        if isinstance(node, ast.Tuple):
            return tuple(self.value(e) for e in node.elts)
        if isinstance(node, ast.Dict):
            return {self.value(k): self.value(v) for k, v in zip(node.keys, node.values, strict=False) if k is not None}
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](self.value(node.left), self.value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](self.value(node.operand))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS:
            args = [self.value(a) for a in node.args]
            kwargs = {k.arg: self.value(k.value) for k in node.keywords if k.arg is not None}
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
        raise SpecError(f"config file {path} does not exist; pass an insightface SCRFD config .py to --config")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path} is not a readable Python config file: {exc}") from exc
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
