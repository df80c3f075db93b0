"""Safe parsing of user expression strings into sympy and vectorised numpy code.

User text is never handed to ``eval``: it is parsed by :mod:`ast` and every node is
checked against a whitelist (numbers, the coordinates ``x`` and ``y``, named
parameters, ``+ - * / **``, unary signs and a fixed set of elementary functions)
before a sympy expression is built from it.  Only sympy-generated code is compiled
(by :func:`sympy.lambdify`).

The work is bounded before sympy sees anything: the text length, the number of
syntax-tree nodes, the nesting depth, the size of every literal and of every
constant sub-expression, and every constant exponent (sympy evaluates integer powers
exactly, so ``x**9**9**9`` would otherwise build a number with 3.7e8 digits).  Long
sums and products are built in one sympy call each, not pairwise (which would be
quadratic in the number of terms and recursive in Python).
"""
from __future__ import annotations

import ast
import math
import operator
from typing import Callable, Mapping

import numpy as np
import sympy as sp

__all__ = ["ExpressionError", "parse", "vectorise", "denominators", "pole_bases", "COORDS", "LIMITS"]

X, Y = sp.symbols("x y", real=True)
COORDS = (X, Y)

#: Bounds on a user expression, checked on its syntax tree before sympy is called.
#: ``depth`` counts nesting of different operations (a long sum is depth 1);
#: ``exponent`` bounds the absolute value of every constant exponent and
#: ``magnitude`` that of every literal and every constant sub-expression.
LIMITS = {"length": 10_000, "nodes": 1_000, "depth": 40, "exponent": 1_000.0,
          "magnitude": 1e300}

_FUNCTIONS: dict[str, Callable] = {
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs,
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan,
    "asin": sp.asin, "acos": sp.acos, "atan": sp.atan,
    "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh,
}
_CONSTANTS = {"pi": sp.pi, "e": sp.E}
_FLOAT_CONSTANTS = {"pi": math.pi, "e": math.e}
_FLOAT_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.Div: operator.truediv, ast.Pow: operator.pow}
# operations whose chains (a + b - c, a * b / c) are flattened: they add no depth
_FAMILY = {ast.Add: "sum", ast.Sub: "sum", ast.Mult: "product", ast.Div: "product"}


class ExpressionError(ValueError):
    """A user expression could not be parsed or uses something not allowed."""


def _quote(text: str) -> str:
    """The expression as quoted in messages (long ones abbreviated)."""
    if len(text) <= 100:
        return repr(text)
    return f"{text[:60]!r}... ({len(text)} characters)"


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
        With a message that quotes the expression and names what is wrong, also
        when the expression exceeds one of the :data:`LIMITS` (checked on the
        syntax tree, before any symbolic work).
    """
    params = dict(params or {})
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"expression {text!r}: expected a non-empty string")
    quoted = _quote(text)
    bad = set(params) & ({"x", "y"} | set(_FUNCTIONS) | set(_CONSTANTS))
    if bad:
        raise ExpressionError(f"expression {quoted}: parameter name(s) {sorted(bad)} "
                              "clash with coordinates, functions or constants")
    if len(text) > LIMITS["length"]:
        raise ExpressionError(f"expression {quoted}: longer than {LIMITS['length']} "
                              "characters")
    try:
        tree = ast.parse(text.replace("^", "**").strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"expression {quoted}: syntax error ({exc.msg[:80]})") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError(f"expression {quoted}: too deeply nested to parse") from None
    _check_size(tree.body, quoted)
    expr, _ = _Builder(quoted, params).build(tree.body)
    if not isinstance(expr, sp.Expr):
        raise ExpressionError(f"expression {quoted}: does not define a scalar expression")
    return expr


def _check_size(root: ast.AST, quoted: str) -> None:
    """Bound the node count and the nesting depth (iteratively: no recursion)."""
    count, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > LIMITS["nodes"]:
            raise ExpressionError(f"expression {quoted}: more than {LIMITS['nodes']} "
                                  "terms, operations and names")
        if depth > LIMITS["depth"]:
            raise ExpressionError(f"expression {quoted}: nested more than "
                                  f"{LIMITS['depth']} levels deep")
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.expr):
                continue
            # the left operand of a chain a + b - c ... is flattened when built
            same = (child is getattr(node, "left", None) and isinstance(child, ast.BinOp)
                    and _FAMILY.get(type(child.op), 0) == _FAMILY.get(type(node.op), 1))
            stack.append((child, depth if same else depth + 1))


class _Builder:
    """Build sympy from a checked tree; track the float value of constant parts.

    ``build`` returns ``(sympy expression, float value or None)``; the value is None
    where the part depends on x or y (or has no real value), and is used to bound
    exponents and constants *before* sympy evaluates them exactly.
    """

    def __init__(self, quoted: str, params: Mapping[str, float]):
        self.quoted = quoted
        self.params = {k: float(v) for k, v in params.items()}

    def fail(self, message: str):
        raise ExpressionError(f"expression {self.quoted}: {message}")

    def constant(self, value, what: str):
        """Check a constant value: finite and within LIMITS["magnitude"]."""
        if value is None or isinstance(value, complex):
            return None
        if not math.isfinite(value) or abs(value) > LIMITS["magnitude"]:
            self.fail(f"{what} exceeds {LIMITS['magnitude']:g} in magnitude")
        return float(value)

    def fold(self, op, a, b, what):
        if a is None or b is None:
            return None
        try:
            return self.constant(_FLOAT_OPS[op](a, b), what)
        except ZeroDivisionError:
            self.fail(f"division by zero in {what}")
        except OverflowError:
            self.fail(f"{what} exceeds {LIMITS['magnitude']:g} in magnitude")

    def build(self, node):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            try:
                v = self.constant(float(node.value), f"the number {ast.unparse(node)[:30]}")
            except OverflowError:
                self.fail(f"the number {ast.unparse(node)[:30]}... exceeds "
                          f"{LIMITS['magnitude']:g} in magnitude")
            return (sp.Float(node.value) if isinstance(node.value, float)
                    else sp.Integer(node.value)), v
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.BinOp) and type(node.op) in _FAMILY:
            return self.chain(node)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            return self.power(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            e, v = self.build(node.operand)
            if isinstance(node.op, ast.USub):
                return -e, (None if v is None else -v)
            return e, v
        if isinstance(node, ast.Call):
            return self.call(node)
        self.fail(f"{ast.unparse(node)[:60]!r} is not allowed "
                  "(use numbers, x, y, parameters, + - * / ** and elementary functions)")

    def name(self, name: str):
        if name == "x":
            return X, None
        if name == "y":
            return Y, None
        if name in self.params:
            v = self.constant(self.params[name], f"parameter {name!r}")
            return sp.Float(self.params[name]), v
        if name in _CONSTANTS:
            return _CONSTANTS[name], _FLOAT_CONSTANTS[name]
        self.fail(f"unknown name {name!r} (allowed: x, y, parameters "
                  f"{sorted(self.params)}, constants pi, e)")

    def chain(self, node):
        """a ± b ± c ... or a */ b */ c ...: one sympy Add or Mul, built iteratively."""
        family = _FAMILY[type(node.op)]
        ops, rights = [], []
        while isinstance(node, ast.BinOp) and _FAMILY.get(type(node.op)) == family:
            ops.append(type(node.op))
            rights.append(node.right)
            node = node.left
        expr, value = self.build(node)
        parts = [expr]
        for op, right in zip(reversed(ops), reversed(rights)):
            e, v = self.build(right)
            value = self.fold(op, value, v, "a constant " + family)
            if op is ast.Sub:
                e = -e
            elif op is ast.Div:
                if v == 0.0:
                    self.fail("division by zero")
                e = 1 / e
            parts.append(e)
        return (sp.Add(*parts) if family == "sum" else sp.Mul(*parts)), value

    def power(self, node):
        base, vb = self.build(node.left)
        expo, ve = self.build(node.right)
        if ve is not None and abs(ve) > LIMITS["exponent"]:
            self.fail(f"the exponent {ve:.6g} exceeds {LIMITS['exponent']:g} in magnitude")
        value = self.fold(ast.Pow, vb, ve, "a constant power")
        return base ** expo, value

    def call(self, node):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            name = getattr(node.func, "id", ast.unparse(node.func)[:60])
            self.fail(f"function {name!r} is not allowed "
                      f"(allowed: {', '.join(sorted(_FUNCTIONS))})")
        if node.keywords or len(node.args) != 1:
            self.fail(f"{node.func.id}() takes exactly one argument")
        e, v = self.build(node.args[0])
        if v is not None:
            try:
                v = self.constant(_MATH[node.func.id](v), f"{node.func.id}() of a constant")
            except OverflowError:
                self.fail(f"{node.func.id}() of a constant exceeds "
                          f"{LIMITS['magnitude']:g} in magnitude")
            except (ValueError, ZeroDivisionError):     # outside the real domain
                v = None
        return _FUNCTIONS[node.func.id](e), v


_MATH = {"exp": math.exp, "log": math.log, "sqrt": math.sqrt, "abs": abs,
         "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin,
         "acos": math.acos, "atan": math.atan, "sinh": math.sinh, "cosh": math.cosh,
         "tanh": math.tanh}


def _dirac_delta(x, *order):
    # derivatives of abs() and sign() contain DiracDelta: zero except on a null set,
    # which quadrature never sees (like the kink of the fdn tensor)
    return np.zeros_like(np.asarray(x, dtype=float))


_POINTWISE = {"DiracDelta": _dirac_delta}


def vectorise(expr: sp.Expr) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Return ``f(x, y)`` evaluating ``expr`` elementwise, always with x's shape."""
    f = sp.lambdify(COORDS, expr, modules=[_POINTWISE, "numpy"])

    def evaluate(x, y):
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        out = f(x, y)
        # constants (and expressions free of x or y) come back with the wrong shape
        return np.broadcast_to(np.asarray(out, dtype=float), np.broadcast(x, y).shape).copy()

    return evaluate


def denominators(exprs) -> list[sp.Expr]:
    """Sub-expressions whose zeros can make ``exprs`` unbounded.

    The bases of negative powers (``1/x``, ``(x**2 + y**2)**-0.5``), the arguments of
    ``log`` and the cosines under ``tan``: a finite check at sample points misses a
    pole that falls between them (``1/x`` is finite at every point of a polar grid),
    but the sign change or the zero of such a base on the domain shows it
    (:func:`fpsolve.models.validity.check_poles`).

    Parameters
    ----------
    exprs
        sympy expressions (or anything :func:`sympy.sympify` accepts).

    Returns
    -------
    list of sympy.Expr
        The distinct non-constant bases, in a deterministic order.
    """
    out = set()
    for e in exprs:
        e = sp.sympify(e)
        for p in e.atoms(sp.Pow):
            if p.exp.is_negative and p.base.free_symbols:
                out.add(p.base)
        out.update(f.args[0] for f in e.atoms(sp.log) if f.args[0].free_symbols)
        out.update(sp.cos(f.args[0]) for f in e.atoms(sp.tan) if f.args[0].free_symbols)
    return sorted(out, key=sp.default_sort_key)


def pole_bases(derived: Mapping[str, list], cache: dict, quantity: str) -> list:
    """``(text, f)`` for the :func:`denominators` of ``derived[quantity]``, vectorised once.

    Parameters
    ----------
    derived
        The model's expressions per quantity name (``"L"``, ``"∇L"``, ``"D"``, ...).
    cache
        The model's dict of already vectorised bases, filled here.
    quantity
        Which quantity.

    Returns
    -------
    list of (str, callable)
        The denominator's text and ``f(x, y)``.
    """
    if quantity not in cache:             # lambdified on first use only
        cache[quantity] = [(str(b), vectorise(b)) for b in denominators(derived[quantity])]
    return cache[quantity]
