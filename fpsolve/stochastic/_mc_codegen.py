"""Compiled walker kernels per model: generated numba source, cached in memory and on disk.

The kernel :data:`._mc_kernels.TEMPLATE` is completed with a model's prologue and step
(:class:`Compiled`).  Expression models are printed by sympy (``pycode`` with the math
module) from the parsed, whitelisted expression tree — the user's text never reaches the
generated code — after every floating-point number has been replaced by a named
coefficient read from the ``lp`` / ``bm`` arrays at run time.  The printed code is checked
again (only arithmetic, the coordinates, coefficients, temporaries and whitelisted math
functions) before it is written.

Cache: the module source is keyed by its SHA-256; it is written once (atomically) to
``$FPSOLVE_CACHE_DIR`` (default ``$XDG_CACHE_HOME/fpsolve`` or ``~/.cache/fpsolve``),
``mc-kernels/``, and numba caches the compiled machine code next to it.  Models that
differ only in their numbers share one source and one compilation.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
from sympy.printing.pycode import pycode

from . import _mc_kernels as _K

__all__ = ["Compiled", "CodegenError", "printed", "kernel", "module", "cache_dir"]

_MEMORY: dict = {}
_LOCK = threading.Lock()
_MATH = {"exp", "log", "sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
         "tanh", "copysign", "pi", "e", "inf", "nan", "fabs"}
_NODES = (ast.Module, ast.Assign, ast.Expr, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name,
          ast.Constant, ast.Attribute, ast.IfExp, ast.Compare, ast.BoolOp, ast.Load,
          ast.Store, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)


class CodegenError(ValueError):
    """A model cannot be printed as kernel code (the numpy path is used instead)."""


@dataclass
class Compiled:
    """A model the kernel runs: its prologue and step lines and coefficient arrays.

    ``lk`` / ``nk`` name the built-in models that ``_mc_numpy`` mirrors bit for bit
    (None for generated code, whose numpy fallback is the generic path).
    """

    prologue: tuple
    step: tuple
    lp: np.ndarray
    bm: np.ndarray
    what: str
    lk: int | None = None
    nk: int | None = None
    lanes: int | None = None        # walkers stepped in lockstep; None: lanes_for(step)
    _source: str | None = field(default=None, repr=False)

    @property
    def source(self) -> str:
        if self._source is None:
            lanes = self.lanes or lanes_for(self.step)
            self._source = _module_source(tuple(self.prologue), tuple(self.step), lanes)
        return self._source

    def kernel(self):
        """The compiled ``run_block`` (generated, cached and compiled on first use)."""
        return kernel(self.source)


def lanes_for(step) -> int:
    """Lanes of a step: 4 for short steps (their walker chains are latency-bound: paper
    9.96 ns per walker-step with 4 lanes, 11.4 with 1; expression noise 19.7 vs 37.2);
    2 for long generated ones, which are throughput-bound (8 Gaussians: 51.5 vs 54.5 ns)
    and whose compile time grows with the lanes (6.0 s with 4 lanes, 3.7 s with 2)."""
    return 4 if len(step) <= 24 else 2


@functools.lru_cache(maxsize=64)
def _module_source(prologue: tuple, step: tuple, lanes: int) -> str:
    """The kernel module text of a model (memoised: a run calls it once per task)."""
    pro = "\n".join("    " + ln for ln in prologue) or "    pass"
    return _K.TEMPLATE.format(prologue=pro, lanes=lanes, **_K.lane_code(step, lanes, renamed))


def cache_dir() -> str:
    """Directory of the generated kernel modules."""
    root = os.environ.get("FPSOLVE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "fpsolve")
    return os.path.join(root, "mc-kernels")


def kernel(source: str):
    """``run_block`` of a kernel module source (memory cache, then disk, then compile)."""
    return module(source).run_block


def module(source: str):
    """The imported kernel module of ``source`` (memory cache, then disk)."""
    mod = _MEMORY.get(source)        # str hashes are cached: cheap for a repeated source
    if mod is not None:
        return mod
    with _LOCK:
        if source not in _MEMORY:
            key = hashlib.sha256(source.encode()).hexdigest()[:24]
            _MEMORY[source] = _load(key, source)
    return _MEMORY[source]


def _load(key: str, source: str):
    d = cache_dir()
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"mc_{key}.py")
    if not os.path.exists(path):
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(source)
        os.replace(tmp, path)       # atomic: concurrent processes write the same bytes
    name = f"fpsolve_mc_kernel_{key}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def coefficients(exprs, prefix: str):
    """Replace every Float of ``exprs`` by a symbol ``prefix{i}``: (exprs, values, names)."""
    floats = []
    for e in exprs:
        for node in sp.preorder_traversal(e):
            if isinstance(node, sp.Float) and node not in floats:
                floats.append(node)
    names = [f"{prefix}{i}" for i in range(len(floats))]
    syms = {f: sp.Symbol(n, real=True) for f, n in zip(floats, names)}
    return [e.xreplace(syms) for e in exprs], [float(f) for f in floats], names


def printed(targets: dict, temp_prefix: str) -> list[str]:
    """Code lines assigning each ``name: sympy expression`` of ``targets`` (with CSE)."""
    names, exprs = list(targets), list(targets.values())
    reps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols(temp_prefix))
    lines = []
    try:
        for s, e in reps:
            lines.append(f"{s} = {pycode(e, fully_qualified_modules=True)}")
        for n, e in zip(names, reduced):
            lines.append(f"{n} = {pycode(e, fully_qualified_modules=True)}")
    except Exception as exc:      # sympy cannot print it (DiracDelta, ...)
        raise CodegenError(str(exc).splitlines()[0]) from None
    text = "\n".join(lines)
    if "not supported" in text.lower() or "#" in text:
        raise CodegenError("sympy could not print part of the model in Python")
    _check(text)
    return lines


def renamed(lines, suffix: str) -> list[str]:
    """Step ``lines`` with x, y, z1, z2 and every name they assign suffixed by ``suffix``.

    The rewritten expression trees are the parsed ones (``ast.unparse`` round-trips), so
    every lane evaluates the same floating-point operations in the same order."""
    tree = ast.parse("\n".join(lines))
    local = {"x", "y", "z1", "z2"} | {t.id for node in tree.body for t in node.targets}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in local:
            node.id += suffix
    return [ast.unparse(node) for node in tree.body]


def _check(text: str) -> None:
    """Only arithmetic on names, numbers and math.<whitelisted> in generated code."""
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, _NODES):
            raise CodegenError(f"generated code uses {type(node).__name__}")
        if isinstance(node, ast.Attribute) and not (
                isinstance(node.value, ast.Name) and node.value.id == "math"
                and node.attr in _MATH):
            raise CodegenError(f"generated code uses {ast.unparse(node)}")
        if isinstance(node, ast.Call) and not (
                isinstance(node.func, ast.Attribute) or (
                    isinstance(node.func, ast.Name) and node.func.id in ("abs", "max", "min"))):
            raise CodegenError(f"generated code calls {ast.unparse(node.func)}")
