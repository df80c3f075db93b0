"""Safe parsing of user expression strings into sympy and vectorised numpy code.

User text is never handed to ``eval``: it is parsed by :mod:`ast` and every node is
checked against a whitelist (numbers, the coordinates ``x`` and ``y``, named
parameters, ``+ - * / **``, unary signs and a fixed set of elementary functions)
before a sympy expression is built from it.  Only sympy-generated code is compiled
(by :func:`sympy.lambdify`).
"""
from __future__ import annotations

import ast
from typing import Callable, Mapping

import numpy as np
import sympy as sp

__all__ = ["ExpressionError", "parse", "vectorise", "COORDS"]

X, Y = sp.symbols("x y", real=True)
COORDS = (X, Y)

_FUNCTIONS: dict[str, Callable] = {
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs,
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan,
    "asin": sp.asin, "acos": sp.acos, "atan": sp.atan,
    "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh,
}
_CONSTANTS = {"pi": sp.pi, "e": sp.E}
_BINOPS = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a ** b,
}


class ExpressionError(ValueError):
    """A user expression could not be parsed or uses something not allowed."""


def parse(text: str, params: Mapping[str, float] | None = None) -> sp.Expr:
    """Parse ``text`` into a sympy expression in ``x`` and ``y``.

    Parameters
    ----------
    text
        Expression such as ``"0.5*(x**2 + 3*y**2) + a*x*y"``.  ``^`` is accepted
        as a synonym of ``**``.
    params
        Values of named parameters used in the expression.

    Raises
    ------
    ExpressionError
        With a message that quotes the expression and names what is wrong.
    """
    params = dict(params or {})
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"expression {text!r}: expected a non-empty string")
    bad = set(params) & ({"x", "y"} | set(_FUNCTIONS) | set(_CONSTANTS))
    if bad:
        raise ExpressionError(f"expression {text!r}: parameter name(s) {sorted(bad)} "
                              "clash with coordinates, functions or constants")
    try:
        tree = ast.parse(text.replace("^", "**").strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"expression {text!r}: syntax error ({exc.msg})") from None

    def build(node):
        if isinstance(node, ast.Expression):
            return build(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return sp.Float(node.value) if isinstance(node.value, float) else sp.Integer(node.value)
        if isinstance(node, ast.Name):
            if node.id == "x":
                return X
            if node.id == "y":
                return Y
            if node.id in params:
                return sp.Float(float(params[node.id]))
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            raise ExpressionError(
                f"expression {text!r}: unknown name {node.id!r} (allowed: x, y, "
                f"parameters {sorted(params)}, constants pi, e)")
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](build(node.left), build(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = build(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
                name = getattr(node.func, "id", ast.unparse(node.func))
                raise ExpressionError(
                    f"expression {text!r}: function {name!r} is not allowed "
                    f"(allowed: {', '.join(sorted(_FUNCTIONS))})")
            if node.keywords or len(node.args) != 1:
                raise ExpressionError(
                    f"expression {text!r}: {node.func.id}() takes exactly one argument")
            return _FUNCTIONS[node.func.id](build(node.args[0]))
        raise ExpressionError(
            f"expression {text!r}: {ast.unparse(node)!r} is not allowed "
            "(use numbers, x, y, parameters, + - * / ** and elementary functions)")

    expr = build(tree)
    if not isinstance(expr, sp.Expr):
        raise ExpressionError(f"expression {text!r}: does not define a scalar expression")
    return expr


def vectorise(expr: sp.Expr) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Return ``f(x, y)`` evaluating ``expr`` elementwise, always with x's shape."""
    f = sp.lambdify(COORDS, expr, modules="numpy")

    def evaluate(x, y):
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        out = f(x, y)
        # constants (and expressions free of x or y) come back with the wrong shape
        return np.broadcast_to(np.asarray(out, dtype=float), np.broadcast(x, y).shape).copy()

    return evaluate
