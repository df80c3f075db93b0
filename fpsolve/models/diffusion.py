"""Diffusion-tensor models D(x, y) and their divergence (∇·D)_i = Σ_j ∂_j D_ij.

numpy (and sympy for expressions) only.  Every model is ``strength × unit tensor``
so that the FE operator is affine in the strength, A(s) = A0 + s·A1 (for the SGD
model s = Δ_S): a sweep over the strength re-uses one assembly.

Array conventions as in :mod:`fpsolve.landscapes`: ``tensor(x, y)`` has shape
``(2, 2, *x.shape)``, ``divergence(x, y)`` has shape ``(2, *x.shape)``.
"""
from __future__ import annotations

import copy
from typing import Callable, Mapping, Sequence

import numpy as np

# sympy (through .expressions) is imported by the expression model only: a
# study or a solve with the built-in models does not pay for it at start-up
from .landscapes import Landscape, _xy
from .validity import ModelError

__all__ = ["DiffusionModel", "SGD", "Isotropic", "Constant", "Custom", "Expression",
           "sgd", "isotropic", "constant", "anisotropic", "custom", "expression",
           "sqrt_psd", "check_tensor", "NUMERICAL_DIVERGENCE_STEP"]

# Step of the 4th-order central difference used for a custom tensor without a
# given divergence: truncation ~ h⁴/30·|∂⁵D| ≈ 5e-13 and round-off ~ 1e-16·|D|/h.
NUMERICAL_DIVERGENCE_STEP = 2e-3


def _positive(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a positive number, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: expected a positive number, got {value!r}")
    return v


class DiffusionModel:
    """D(x, y) = strength × unit(x, y).

    Subclasses implement ``unit_tensor`` and ``unit_divergence``.  ``strength``
    is Δ_S for the SGD model, Δ for the isotropic one and 1 otherwise.
    """

    kind = "diffusion"
    strength: float = 1.0

    @property
    def params(self) -> dict:
        return {}

    def unit_tensor(self, x, y):
        raise NotImplementedError

    def unit_divergence(self, x, y):
        raise NotImplementedError

    def unit_coefficients(self, x, y):
        """(unit tensor, unit divergence) at the points; models override it to share work."""
        return self.unit_tensor(x, y), self.unit_divergence(x, y)

    def tensor(self, x, y):
        """D at the points, shape (2, 2, *x.shape)."""
        return self.strength * self.unit_tensor(x, y)

    def divergence(self, x, y):
        """(∇·D)_i = Σ_j ∂_j D_ij at the points, shape (2, *x.shape)."""
        return self.strength * self.unit_divergence(x, y)

    __call__ = tensor

    def pole_bases(self, quantity: str) -> list:
        """``(text, f)`` pairs whose zeros may make ``quantity`` ("D" or "∇·D") unbounded.

        None for closed-form models; see :meth:`Landscape.pole_bases`.
        """
        return []

    def noise_factor(self, x, y):
        """B with B Bᵀ = D (symmetric square root), shape (2, 2, *x.shape)."""
        return sqrt_psd(self.tensor(x, y))

    def with_strength(self, strength: float) -> "DiffusionModel":
        """A copy with another overall strength (Δ_S for the SGD model)."""
        new = copy.copy(self)
        new.strength = _positive(f"{self.kind} diffusion strength", strength)
        return new

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


class SGD(DiffusionModel):
    """Random-shift minibatch SGD noise, D = Δ_S H² (Yang–Tang–Tu Eq. S13).

    ``cross_diffusion=False`` drops D12 = D21 (and their derivatives in ∇·D),
    which is what the paper's MATLAB solve did.
    """

    kind = "sgd"

    def __init__(self, landscape: Landscape, delta_s: float, cross_diffusion: bool = True):
        if not isinstance(landscape, Landscape):
            raise TypeError(f"sgd diffusion: landscape must be a fpsolve Landscape, "
                            f"got {type(landscape).__name__}")
        self.landscape = landscape
        self.strength = _positive("sgd diffusion: delta_s", delta_s)
        if not isinstance(cross_diffusion, (bool, np.bool_)):
            raise TypeError(f"sgd diffusion: cross_diffusion must be True or False, "
                            f"got {cross_diffusion!r}")
        self.cross_diffusion = bool(cross_diffusion)

    @property
    def delta_s(self) -> float:
        return self.strength

    @property
    def params(self):
        return {"delta_s": self.strength, "cross_diffusion": self.cross_diffusion}

    # H is symmetric 2×2: explicit products are ~5× faster than einsum over "..."
    def unit_tensor(self, x, y, H=None):
        (a, b), (_, c) = self.landscape.hessian(x, y) if H is None else H
        off = b * (a + c) if self.cross_diffusion else np.zeros_like(b)
        return np.stack([np.stack([a * a + b * b, off]), np.stack([off, b * b + c * c])])

    def unit_coefficients(self, x, y):
        H = self.landscape.hessian(x, y)
        return self.unit_tensor(x, y, H), self.unit_divergence(x, y, H)

    def unit_divergence(self, x, y, H=None):
        H = self.landscape.hessian(x, y) if H is None else H
        dH = self.landscape.hessian_gradient(x, y)               # [k, i, j]

        def dH2(k, i, j):      # ∂_k (H²)_ij = (∂_k H H + H ∂_k H)_ij
            return (dH[k, i, 0] * H[0, j] + dH[k, i, 1] * H[1, j]
                    + H[i, 0] * dH[k, 0, j] + H[i, 1] * dH[k, 1, j])

        if not self.cross_diffusion:
            return np.stack([dH2(0, 0, 0), dH2(1, 1, 1)])
        return np.stack([dH2(0, 0, 0) + dH2(1, 0, 1), dH2(0, 1, 0) + dH2(1, 1, 1)])

    def pole_bases(self, quantity: str) -> list:
        bases = self.landscape.pole_bases("H")          # D = Δ_S H²
        return bases if quantity == "D" else bases + self.landscape.pole_bases("∂H")

    def noise_factor(self, x, y):
        if self.cross_diffusion:      # H is symmetric: (√Δ_S H)(√Δ_S H)ᵀ = Δ_S H²
            return np.sqrt(self.strength) * self.landscape.hessian(x, y)
        return super().noise_factor(x, y)


class Isotropic(DiffusionModel):
    """D = Δ I: equilibrium control (detailed balance, J ≡ 0 for gradient drift)."""

    kind = "isotropic"

    def __init__(self, delta: float):
        self.strength = _positive("isotropic diffusion: delta", delta)

    @property
    def params(self):
        return {"delta": self.strength}

    def unit_tensor(self, x, y):
        x, _ = _xy(x, y)
        out = np.zeros((2, 2, *x.shape))
        out[0, 0] = out[1, 1] = 1.0
        return out

    def unit_divergence(self, x, y):
        x, _ = _xy(x, y)
        return np.zeros((2, *x.shape))


class Constant(DiffusionModel):
    """A constant symmetric positive semi-definite tensor."""

    kind = "constant"

    def __init__(self, matrix):
        D = np.asarray(matrix, dtype=float)
        if D.shape != (2, 2) or not np.all(np.isfinite(D)):
            raise ValueError(f"constant diffusion: expected a finite 2x2 matrix, got {matrix!r}")
        check_tensor(D.reshape(2, 2, 1), np.zeros((2, 1)), "constant diffusion")
        self.matrix = 0.5 * (D + D.T)

    @property
    def params(self):
        return {"matrix": self.matrix.tolist()}

    def unit_tensor(self, x, y):
        x, _ = _xy(x, y)
        return np.broadcast_to(self.matrix.reshape(2, 2, *([1] * x.ndim)), (2, 2, *x.shape)).copy()

    def unit_divergence(self, x, y):
        x, _ = _xy(x, y)
        return np.zeros((2, *x.shape))


class Custom(DiffusionModel):
    """A user callable ``func(x, y) -> (2, 2, *x.shape)``, divergence optional.

    Without ``divergence`` the divergence is computed by 4th-order central
    differences with step :data:`NUMERICAL_DIVERGENCE_STEP` (error ≈ 1e-12 for
    smooth tensors of order one).  The tensor is validated once, at
    construction, on ``sample_points`` (shape, finite, symmetric, positive
    semi-definite); the solver checks again at its quadrature points.
    """

    kind = "custom"

    def __init__(self, func: Callable, divergence: Callable | None = None,
                 sample_points=None, name: str | None = None):
        if not callable(func):
            raise TypeError(f"custom diffusion: func must be callable, got {type(func).__name__}")
        if divergence is not None and not callable(divergence):
            raise TypeError("custom diffusion: divergence must be callable or None")
        self.func, self._divergence = func, divergence
        self.name = name or getattr(func, "__name__", "custom")
        if sample_points is None:
            g = np.linspace(-1.5, 1.5, 7)
            sample_points = np.array(np.meshgrid(g, g)).reshape(2, -1)
        pts = np.asarray(sample_points, dtype=float)
        if pts.ndim != 2 or pts.shape[0] != 2:
            raise ValueError(f"custom diffusion: sample_points must have shape (2, n), got {pts.shape}")
        self._validate(pts[0], pts[1])

    @property
    def params(self):
        return {"func": self.name, "divergence": "given" if self._divergence else "numerical"}

    def _call(self, x, y):
        x, y = _xy(x, y)
        try:
            D = np.asarray(self.func(x, y), dtype=float)
        except Exception as exc:
            raise ValueError(f"custom diffusion {self.name!r}: calling func(x, y) with arrays "
                             f"of shape {x.shape} failed: {exc}") from exc
        if D.shape != (2, 2, *x.shape):
            raise ValueError(f"custom diffusion {self.name!r}: func(x, y) must return shape "
                             f"(2, 2, *x.shape) = {(2, 2, *x.shape)}, got {D.shape}")
        return D

    def _validate(self, x, y):
        check_tensor(self._call(x, y), np.stack([x, y]), f"custom diffusion {self.name!r}")
        if self._divergence is not None:
            d = np.asarray(self._divergence(x, y), dtype=float)
            if d.shape != (2, *np.shape(x)):
                raise ValueError(f"custom diffusion {self.name!r}: divergence(x, y) must return "
                                 f"shape (2, *x.shape) = {(2, *np.shape(x))}, got {d.shape}")

    def unit_tensor(self, x, y):
        return self._call(x, y)

    def unit_divergence(self, x, y):
        x, y = _xy(x, y)
        if self._divergence is not None:
            return np.asarray(self._divergence(x, y), dtype=float)
        h = NUMERICAL_DIVERGENCE_STEP

        def d(col, shift):   # 4th-order central difference of column D[:, col]
            ex, ey = shift
            f = lambda s: self._call(x + s * ex, y + s * ey)[:, col]
            return (8 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12 * h)

        return d(0, (1.0, 0.0)) + d(1, (0.0, 1.0))


class Expression(DiffusionModel):
    """D given by expression strings for D11, D12 (= D21) and D22; ∇·D symbolic."""

    kind = "expression"

    def __init__(self, D11: str, D22: str, D12: str = "0",
                 params: Mapping[str, float] | None = None):
        import sympy as sp

        from . import expressions

        self._params = {k: float(v) for k, v in (params or {}).items()}
        self.texts = {"D11": D11, "D12": D12, "D22": D22}
        e = {k: expressions.parse(v, self._params) for k, v in self.texts.items()}
        X, Y = expressions.COORDS
        rows = [[e["D11"], e["D12"]], [e["D12"], e["D22"]]]
        div = [sp.diff(rows[i][0], X) + sp.diff(rows[i][1], Y) for i in range(2)]
        self._D = [[expressions.vectorise(c) for c in row] for row in rows]
        self._div = [expressions.vectorise(d) for d in div]
        self._derived = {"D": [e["D11"], e["D12"], e["D22"]], "∇·D": div}
        self._poles: dict = {}

    def pole_bases(self, quantity: str) -> list:
        from . import expressions
        return expressions.pole_bases(self._derived, self._poles, quantity)

    @property
    def params(self):
        return {**self.texts, **self._params}

    def unit_tensor(self, x, y):
        return np.stack([np.stack([f(x, y) for f in row]) for row in self._D])

    def unit_divergence(self, x, y):
        return np.stack([f(x, y) for f in self._div])


def sqrt_psd(D):
    """Symmetric square root of 2×2 PSD tensors (closed form), shape (2, 2, ...).

    √M = (M + s I)/t with s = √det M and t = √(tr M + 2s).
    """
    D = np.asarray(D, dtype=float)
    a, b, c = D[0, 0], 0.5 * (D[0, 1] + D[1, 0]), D[1, 1]
    s = np.sqrt(np.maximum(a * c - b * b, 0.0))
    t = np.sqrt(np.maximum(a + c + 2 * s, 0.0))
    inv = np.divide(1.0, t, out=np.zeros_like(t), where=t > 0)
    return np.stack([np.stack([(a + s) * inv, b * inv]), np.stack([b * inv, (c + s) * inv])])


def check_tensor(D, points, what: str, rtol: float = 1e-10) -> None:
    """Raise :class:`~fpsolve.models.validity.ModelError` (a ValueError) naming the
    first point where D is not finite, symmetric or PSD.

    ``D`` has shape (2, 2, n) and ``points`` shape (2, n) (flattened by the caller).
    """
    D = np.asarray(D, dtype=float).reshape(2, 2, -1)
    pts = np.asarray(points, dtype=float).reshape(2, -1)
    scale = max(float(np.max(np.abs(D))) if D.size and np.all(np.isfinite(D)) else 1.0, 1e-300)

    def fail(mask, why):
        k = int(np.flatnonzero(mask)[0])
        raise ModelError(f"{what}: D is {why} at (x, y) = ({pts[0, k]:.6g}, {pts[1, k]:.6g}): "
                         f"D = {np.round(D[:, :, k], 12).tolist()}")

    bad = ~np.all(np.isfinite(D), axis=(0, 1))
    if bad.any():
        fail(bad, "not finite")
    bad = np.abs(D[0, 1] - D[1, 0]) > rtol * scale
    if bad.any():
        fail(bad, "not symmetric")
    a, b, c = D[0, 0], D[0, 1], D[1, 1]
    # smallest eigenvalue of [[a, b], [b, c]]
    lmin = 0.5 * (a + c) - np.sqrt(0.25 * (a - c) ** 2 + b * b)
    bad = lmin < -1e-9 * scale
    if bad.any():
        fail(bad, "not positive semi-definite")


def sgd(landscape: Landscape, delta_s: float, cross_diffusion: bool = True) -> SGD:
    """SGD noise D = Δ_S H² of ``landscape`` (Δ_S = η σ)."""
    return SGD(landscape, delta_s, cross_diffusion)


def isotropic(delta: float) -> Isotropic:
    """Isotropic noise D = Δ I."""
    return Isotropic(delta)


def constant(matrix: Sequence[Sequence[float]]) -> Constant:
    """Constant anisotropic noise, e.g. ``constant([[0.05, 0.01], [0.01, 0.03]])``."""
    return Constant(matrix)


def anisotropic(delta: float, kappa: float) -> Constant:
    """The paper's simple model D = diag(Δ/κ, Δ) (Eqs. 4–7)."""
    delta = _positive("anisotropic diffusion: delta", delta)
    kappa = _positive("anisotropic diffusion: kappa", kappa)
    return Constant([[delta / kappa, 0.0], [0.0, delta]])


def custom(func: Callable, divergence: Callable | None = None, sample_points=None,
           name: str | None = None) -> Custom:
    """A user tensor ``func(x, y) -> (2, 2, *x.shape)``; see :class:`Custom`."""
    return Custom(func, divergence, sample_points, name)


def expression(D11: str, D22: str, D12: str = "0",
               params: Mapping[str, float] | None = None, **kwargs: float) -> Expression:
    """Tensor from expression strings (whitelisted); divergence derived symbolically."""
    return Expression(D11, D22, D12, {**(params or {}), **kwargs})


class LandscapePSD(DiffusionModel):
    """Flatness-detecting noise (Feng–Tu SI S10): D = Δ·H⁺, H⁺ the PSD part of H.

    H⁺ = Σ_a max(λ_a, 0) u_a u_aᵀ over the eigenpairs (λ_a, u_a) of the Hessian.  It is
    the Fisher-like covariance of the SI's "flatness-detecting" noise: strong along
    sharp directions, weak along flat ones, and never negative (H itself is indefinite
    away from a minimum, e.g. on the paper landscape for y² ≳ 0.08 near x = 0).

    The divergence is analytic (Daleckii–Krein): with f(λ) = max(λ, 0) and
    f¹(λ_a, λ_b) the divided difference (f'(λ_a) on the diagonal and for equal
    eigenvalues), ∂_k H⁺ = U (f¹ ∘ (Uᵀ ∂_k H U)) Uᵀ.  H⁺ has a kink where an eigenvalue
    crosses zero; there the one-sided value f'(0) = 1/2 is used (a set of measure zero,
    harmless for quadrature).
    """

    kind = "fdn"

    def __init__(self, landscape: Landscape, delta: float):
        if not isinstance(landscape, Landscape):
            raise TypeError(f"fdn diffusion: landscape must be a fpsolve Landscape, "
                            f"got {type(landscape).__name__}")
        self.landscape = landscape
        self.strength = _positive("fdn diffusion: delta", delta)

    @property
    def delta(self) -> float:
        return self.strength

    @property
    def params(self):
        return {"delta": self.strength}

    def _eig(self, x, y):
        """Eigenvalues (..., 2) and eigenvectors (..., 2, 2) of H, points first."""
        H = self.landscape.hessian(x, y)
        Hm = np.moveaxis(H, (0, 1), (-2, -1))
        Hm = 0.5 * (Hm + np.swapaxes(Hm, -1, -2))
        lam, U = np.linalg.eigh(Hm)
        return lam, U

    def unit_tensor(self, x, y):
        lam, U = self._eig(x, y)
        Hp = np.einsum("...ia,...a,...ja->...ij", U, np.maximum(lam, 0.0), U)
        return np.moveaxis(Hp, (-2, -1), (0, 1))

    def unit_divergence(self, x, y):
        lam, U = self._eig(x, y)
        dH = np.moveaxis(self.landscape.hessian_gradient(x, y), (0, 1, 2), (-3, -2, -1))
        la, lb = lam[..., :, None], lam[..., None, :]
        fa, fb = np.maximum(la, 0.0), np.maximum(lb, 0.0)
        fprime = np.where(la > 0, 1.0, np.where(la < 0, 0.0, 0.5))
        diff = la - lb
        close = np.abs(diff) <= 1e-12 * np.maximum(np.abs(la) + np.abs(lb), 1e-300)
        # divided difference; for (nearly) equal eigenvalues its limit f'(λ_a)
        f1 = np.where(close, np.broadcast_to(fprime, diff.shape),
                      (fa - fb) / np.where(close, 1.0, diff))
        Ue = U[..., None, :, :]                                     # broadcast over k
        M = np.einsum("...ia,...kij,...jb->...kab", U, dH, U)       # Uᵀ ∂_k H U
        dHp = np.einsum("...kia,...kab,...kjb->...kij", Ue, f1[..., None, :, :] * M, Ue)
        div = np.einsum("...jij->...i", dHp)                        # Σ_j ∂_j H⁺_ij
        return np.moveaxis(div, -1, 0)


def fdn(landscape: Landscape, delta: float) -> LandscapePSD:
    """Flatness-detecting noise D = Δ·H⁺ (PSD part of the Hessian); see :class:`LandscapePSD`."""
    return LandscapePSD(landscape, delta)


__all__ += ["LandscapePSD", "fdn"]
