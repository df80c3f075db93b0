"""Loss landscapes L(x, y) with gradient, Hessian and Hessian derivatives.

numpy (and sympy for user expressions) only: no finite-element imports, so the
Monte Carlo and theory modules can use these models independently.

Array conventions, for coordinate arrays ``x``, ``y`` of any (common) shape ``s``:

* ``value(x, y)``            -> ``s``
* ``gradient(x, y)``         -> ``(2, *s)``         ``[i] = dL/dθ_i``
* ``hessian(x, y)``          -> ``(2, 2, *s)``      ``[i, j] = d²L/dθ_i dθ_j``
* ``hessian_gradient(x, y)`` -> ``(2, 2, 2, *s)``   ``[k, i, j] = d H_ij / dθ_k``
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

# sympy (through .expressions) is imported by ExpressionLandscape only: a study or a
# solve with the built-in landscapes does not pay for it at start-up

__all__ = ["Landscape", "PaperLandscape", "QuadraticLandscape", "ExpressionLandscape",
           "paper", "quadratic", "expression"]


def _xy(x, y):
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    return np.broadcast_arrays(x, y)


class Landscape:
    """Base class: a twice-differentiable loss on the plane.

    Subclasses implement :meth:`value`, :meth:`gradient`, :meth:`hessian` and
    :meth:`hessian_gradient`; ``kind`` and ``params`` describe the model for
    provenance (summaries, VTK metadata).
    """

    kind = "landscape"

    @property
    def params(self) -> dict:
        return {}

    def value(self, x, y):
        raise NotImplementedError

    def gradient(self, x, y):
        raise NotImplementedError

    def hessian(self, x, y):
        raise NotImplementedError

    def hessian_gradient(self, x, y):
        raise NotImplementedError

    def __call__(self, x, y):
        return self.value(x, y)

    def pole_bases(self, quantity: str) -> list:
        """``(text, f)`` pairs whose zeros may make ``quantity`` unbounded.

        ``quantity`` is one of ``"L"``, ``"∇L"``, ``"H"``, ``"∂H"``.  Closed-form models
        have none; expression landscapes derive them symbolically
        (:func:`fpsolve.models.expressions.denominators`).
        """
        return []

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


class PaperLandscape(Landscape):
    """Yang–Tang–Tu Eq. 9: L = ½ ε λ0 x² + ½ λ(x) y², λ(x) = λ0 + λ1 x² + λ2 x⁴."""

    kind = "paper"

    def __init__(self, eps: float = 0.02, lam0: float = 8.0, lam1: float = -2.0,
                 lam2: float = 1.0):
        for name, v in (("eps", eps), ("lam0", lam0), ("lam1", lam1), ("lam2", lam2)):
            if not np.isfinite(float(v)):
                raise ValueError(f"paper landscape: {name} must be a finite number, got {v!r}")
        self.eps, self.lam0, self.lam1, self.lam2 = map(float, (eps, lam0, lam1, lam2))

    @property
    def params(self):
        return {"eps": self.eps, "lam0": self.lam0, "lam1": self.lam1, "lam2": self.lam2}

    # λ(x) and its derivatives: the whole model is built from these.
    def lam(self, x):
        x2 = np.asarray(x, dtype=float) ** 2
        return self.lam0 + self.lam1 * x2 + self.lam2 * x2 ** 2

    def dlam(self, x):
        x = np.asarray(x, dtype=float)
        return x * (2 * self.lam1 + 4 * self.lam2 * (x * x))   # x**3 is a slow pow()

    def d2lam(self, x):
        x = np.asarray(x, dtype=float)
        return 2 * self.lam1 + 12 * self.lam2 * x ** 2

    def d3lam(self, x):
        return 24 * self.lam2 * np.asarray(x, dtype=float)

    def flatness(self, x):
        """F(x) = 1/sqrt(λ(x)) along the valley y = 0 (paper's flatness)."""
        return 1.0 / np.sqrt(self.lam(x))

    def value(self, x, y):
        x, y = _xy(x, y)
        return 0.5 * self.eps * self.lam0 * x ** 2 + 0.5 * self.lam(x) * y ** 2

    def gradient(self, x, y):
        x, y = _xy(x, y)
        return np.stack([self.eps * self.lam0 * x + 0.5 * self.dlam(x) * y ** 2,
                         self.lam(x) * y])

    def hessian(self, x, y):
        x, y = _xy(x, y)
        hxx = self.eps * self.lam0 + 0.5 * self.d2lam(x) * y ** 2   # Eq. S6
        hxy = self.dlam(x) * y
        return np.stack([np.stack([hxx, hxy]), np.stack([hxy, self.lam(x)])])

    def hessian_gradient(self, x, y):
        x, y = _xy(x, y)
        zero = np.zeros_like(x)
        dx = np.stack([np.stack([0.5 * self.d3lam(x) * y ** 2, self.d2lam(x) * y]),
                       np.stack([self.d2lam(x) * y, self.dlam(x)])])
        dy = np.stack([np.stack([self.d2lam(x) * y, self.dlam(x)]),
                       np.stack([self.dlam(x), zero])])
        return np.stack([dx, dy])


class QuadraticLandscape(Landscape):
    """L = ½ (θ − c)ᵀ A (θ − c) with a constant symmetric 2×2 matrix A."""

    kind = "quadratic"

    def __init__(self, A, center=(0.0, 0.0)):
        A = np.asarray(A, dtype=float)
        if A.shape != (2, 2) or not np.all(np.isfinite(A)):
            raise ValueError(f"quadratic landscape: A must be a finite 2x2 matrix, got {A.tolist()!r}")
        if not np.allclose(A, A.T, rtol=1e-12, atol=1e-14):
            raise ValueError(f"quadratic landscape: A must be symmetric, got {A.tolist()!r}")
        c = np.asarray(center, dtype=float)
        if c.shape != (2,) or not np.all(np.isfinite(c)):
            raise ValueError(f"quadratic landscape: center must be 2 finite numbers, got {center!r}")
        self.A, self.center = 0.5 * (A + A.T), c

    @property
    def params(self):
        return {"A": self.A.tolist(), "center": self.center.tolist()}

    def value(self, x, y):
        x, y = _xy(x, y)
        u, v = x - self.center[0], y - self.center[1]
        A = self.A
        return 0.5 * (A[0, 0] * u * u + 2 * A[0, 1] * u * v + A[1, 1] * v * v)

    def gradient(self, x, y):
        x, y = _xy(x, y)
        u, v = x - self.center[0], y - self.center[1]
        A = self.A
        return np.stack([A[0, 0] * u + A[0, 1] * v, A[1, 0] * u + A[1, 1] * v])

    def hessian(self, x, y):
        x, _ = _xy(x, y)
        return np.broadcast_to(self.A.reshape(2, 2, *([1] * x.ndim)), (2, 2, *x.shape)).copy()

    def hessian_gradient(self, x, y):
        x, _ = _xy(x, y)
        return np.zeros((2, 2, 2, *x.shape))


class ExpressionLandscape(Landscape):
    """L given as an expression string; derivatives are derived symbolically."""

    kind = "expression"

    def __init__(self, text: str, params: Mapping[str, float] | None = None):
        import sympy as sp

        from . import expressions

        self.text = text
        self._params = {k: float(v) for k, v in (params or {}).items()}
        self.expr = expressions.parse(text, self._params)
        X, Y = expressions.COORDS
        # only the distinct partial derivatives (3 second, 4 third): symbolic
        # differentiation dominates the set-up, and mixed partials commute
        grad = [sp.diff(self.expr, s) for s in (X, Y)]
        second = [sp.diff(grad[0], X), sp.diff(grad[0], Y), sp.diff(grad[1], Y)]
        third = [sp.diff(second[0], X), sp.diff(second[0], Y), sp.diff(second[1], Y),
                 sp.diff(second[2], Y)]                       # xxx, xxy, xyy, yyy
        self._derived = {"L": [self.expr], "∇L": grad, "H": second, "∂H": third}
        self._poles: dict = {}
        self._f = expressions.vectorise(self.expr)
        self._g = [expressions.vectorise(e) for e in grad]
        h = [expressions.vectorise(e) for e in second]
        d = [expressions.vectorise(e) for e in third]
        self._h = [[h[i + j] for j in range(2)] for i in range(2)]
        # ∂_k H_ij is the third derivative with k + i + j derivatives in y
        self._dh = [[[d[k + i + j] for j in range(2)] for i in range(2)] for k in range(2)]

    @property
    def params(self):
        return {"expression": self.text, **self._params}

    def pole_bases(self, quantity: str) -> list:
        from . import expressions
        return expressions.pole_bases(self._derived, self._poles, quantity)

    def value(self, x, y):
        return self._f(x, y)

    def gradient(self, x, y):
        return np.stack([g(x, y) for g in self._g])

    def hessian(self, x, y):
        return np.stack([np.stack([h(x, y) for h in row]) for row in self._h])

    def hessian_gradient(self, x, y):
        return np.stack([np.stack([np.stack([h(x, y) for h in row]) for row in dk])
                         for dk in self._dh])


def paper(eps: float = 0.02, lam0: float = 8.0, lam1: float = -2.0,
          lam2: float = 1.0) -> PaperLandscape:
    """The paper's landscape family (Yang–Tang–Tu Eq. 9); defaults are Fig. 3's."""
    return PaperLandscape(eps, lam0, lam1, lam2)


def quadratic(A, center=(0.0, 0.0)) -> QuadraticLandscape:
    """Quadratic bowl ½ (θ − c)ᵀ A (θ − c) (Ornstein–Uhlenbeck drift)."""
    return QuadraticLandscape(A, center)


def expression(text: str, params: Mapping[str, float] | None = None,
               **kwargs: float) -> ExpressionLandscape:
    """Landscape from a whitelisted expression in x, y and named parameters.

    >>> L = expression("0.5*(x**2 + 3*y**2) + a*x*y", a=0.2)
    >>> float(L.value(1.0, 0.0))
    0.5
    """
    return ExpressionLandscape(text, {**(params or {}), **kwargs})
