"""Adiabatic (fast-variable elimination) theory of Yang–Tang–Tu, SM Sec. III B.

numpy/scipy and the model layer only — no finite-element code — so the theory
is an independent check of the FE solutions.  Equation numbers refer to the
paper (main text Eqs. 3–11, supplement Eqs. S1–S48); the derivation, and the
places where the paper's formulas are ambiguous or carry typos, are written up
in ``docs/transition.md``.

Two models:

* :func:`adiabatic` — the landscape-dependent theory for the paper family
  L = ½ελ0x² + ½λ(x)y² with SGD noise D = Δ_S H²: effective noise
  Δ(x) = Δ_Sλ(x)² (S27), anisotropy κ(x) (S28), the reduced 1-D Itô
  Fokker–Planck equation (S29)

      0 = d/dx [ −a(x) P + d/dx (D_x(x) P) ],
      a(x) = −(ελ0 x + ½Δ_S λλ'),   D_x(x) = ⟨D11⟩_y = Δ(x)/κ(x),

  its marginal (S30), L_SGD (Eq. 10, Eq. 11), x_ss (S42), Δ_S* (S35), the
  mean first-passage time τ_s (S44), the convergence conditions (S8, S9) and
  the divergence bound Δ_m (S39, S40).
* :func:`simple_model` — constant noise D = diag(Δ/κ, Δ) (Eqs. 4–7, S17–S24).

Both integrate on the interval [−R, R] (R = radius of the FE disk): the
marginal is normalised there and "∞" in S44 means R (reflecting ends).
"""
from __future__ import annotations

import numpy as np
from numpy.polynomial import Chebyshev
from scipy.optimize import brentq, minimize_scalar
from scipy.special import logsumexp

from ..models.diffusion import _positive
from ..models.landscapes import Landscape

__all__ = ["Adiabatic", "SimpleModel", "adiabatic", "simple_model", "critical_delta_s",
           "critical_exponents", "kappa_origin", "flattest_point", "delta_m",
           "convergence_multipliers", "FORMS"]

#: Reduced marginals: "paper" = S30 as printed, "fpe" = exact zero-flux solution of S29.
FORMS = ("paper", "fpe")

_GL_X, _GL_W = np.polynomial.legendre.leggauss(10)


# -- validation -------------------------------------------------------------------------

def _family(landscape) -> None:
    """The theory needs λ(x) and its derivatives and the confinement ε λ0."""
    need = ("lam", "dlam", "d2lam", "eps", "lam0")
    if not isinstance(landscape, Landscape) or not all(hasattr(landscape, a) for a in need):
        raise ValueError(f"landscape: expected the paper family (fpsolve.landscapes.paper(...)) "
                         f"with lam, dlam, d2lam, eps, lam0; got {landscape!r}")
    if float(np.min(landscape.lam(np.linspace(-4, 4, 801)))) <= 0:
        raise ValueError(f"landscape: λ(x) must be positive (λ0 > λ1²/(4λ2)); got {landscape!r}")


def _form(form: str) -> str:
    if form not in FORMS:
        raise ValueError(f"form: expected one of {FORMS}, got {form!r}")
    return form


# -- local quantities of the reduced model (module level: no grid needed) ----------------

def _conf(L) -> float:
    """Curvature ελ0 of the confining term ½ελ0x²."""
    return L.eps * L.lam0


def _h11sq(L, delta_s, x):
    """⟨D11⟩_y / Δ_S = ⟨H11² + H12²⟩ over the Gaussian y of variance Δ_Sλ (S26, S28)."""
    lam, dlam, d2lam = L.lam(x), L.dlam(x), L.d2lam(x)
    c = _conf(L)
    return (c * c + delta_s * (c * d2lam + dlam ** 2) * lam
            + 0.75 * (delta_s * d2lam * lam) ** 2)


def _numerator(L, delta_s, x):
    """−a(x) = ελ0 x + ½λ'⟨y²⟩_y = ελ0 x + ½Δ_S λλ' (S16 with ⟨y²⟩ = Δ(x)/λ(x))."""
    x = np.asarray(x, dtype=float)
    return _conf(L) * x + 0.5 * delta_s * L.lam(x) * L.dlam(x)


def _integrand(L, delta_s, x):
    """d/dx of the S30 exponent: κελ0x/Δ + κλ'/(2λ) = −a(x)/D_x(x)."""
    return _numerator(L, delta_s, x) / (delta_s * _h11sq(L, delta_s, x))


def _second_derivative_at_0(func, a: float = 0.02, deg: int = 24) -> float:
    """f''(0) of a smooth function from its Chebyshev interpolant on [−a, a]."""
    return float(Chebyshev.interpolate(func, deg, domain=[-a, a]).deriv(2)(0.0))


def _curvature_at_origin(L, delta_s: float, form: str) -> float:
    """Φ''(0) of the reduced potential Φ = −ln P(x) (S34/S35 for ``form="paper"``)."""
    lam0, dlam0, d2lam0 = float(L.lam(0.0)), float(L.dlam(0.0)), float(L.d2lam(0.0))
    # d/dx(−a/D) at 0 with a(0) = 0: (ελ0 + ½Δ_S(λ'² + λλ''))/D_x(0)
    curv = ((_conf(L) + 0.5 * delta_s * (dlam0 ** 2 + lam0 * d2lam0))
            / (delta_s * float(_h11sq(L, delta_s, 0.0))))
    if form == "fpe":   # P = ψ/D_x: add (ln D_x)''(0)
        curv += _second_derivative_at_0(lambda x: np.log(_h11sq(L, delta_s, x)))
    return curv


def _mode(potential, grid, maximum_at_0: bool) -> float:
    """argmin of ``potential`` on ``grid`` (x ≥ 0, grid[0] = 0), refined by a bounded search."""
    k = int(np.argmin(potential(grid)))
    if k == 0 and maximum_at_0:
        return 0.0
    res = minimize_scalar(lambda s: float(potential(s)),
                          bounds=(grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]),
                          method="bounded", options={"xatol": 1e-12})
    return float(res.x)


def kappa_origin(L, delta_s: float) -> float:
    """κ(0) = 1/(ε² + 2εΔ_Sλ1 + 3Δ_S²λ1²) (main text, S20) for the paper family."""
    _family(L)
    ds = _positive("delta_s", delta_s)
    return 1.0 / (L.eps ** 2 + 2 * L.eps * ds * L.lam1 + 3 * ds ** 2 * L.lam1 ** 2)


def flattest_point(L) -> float:
    """x_F = √(−λ1/(2λ2)) > 0, the maximum of F(x) = λ(x)^(−1/2) (SM Sec. I B)."""
    _family(L)
    if not (L.lam1 < 0 < L.lam2):
        raise ValueError(f"landscape: x_F ≠ 0 needs λ1 < 0 < λ2, got λ1={L.lam1}, λ2={L.lam2}")
    return float(np.sqrt(-L.lam1 / (2 * L.lam2)))


# -- the landscape-dependent theory ------------------------------------------------------

class Adiabatic:
    """Reduced 1-D theory for the paper family at one noise level Δ_S (SM Sec. III B 2).

    Parameters
    ----------
    landscape : PaperLandscape
        From :func:`fpsolve.landscapes.paper`.
    delta_s : float
        Effective SGD noise level Δ_S = ησ (> 0).
    form : {"paper", "fpe"}
        Marginal used for P(x), x_ss, L_SGD and moments.  ``"paper"`` is S30 as
        printed, P ∝ ψ(x) = exp(−∫_0^x (−a/D_x)); ``"fpe"`` is the exact
        zero-flux solution ψ(x)/D_x(x) of the reduced equation S29 (S30 drops
        the 1/D_x factor; see docs/transition.md).  τ_s (S44) uses ψ in both.
    R : float
        Half-width of the interval [−R, R] used for normalisation and as "∞"
        in S44 (the FE disk radius).
    n : int
        Number of (equal) sub-intervals of [−R, R], each integrated with
        10-point Gauss–Legendre; the default resolves widths down to ~1e-2.

    Attributes
    ----------
    x_ss : float
        Location x ≥ 0 of the maximum of the marginal (0 in phase I).
    delta_star : float
        Δ_S* of the same form (:func:`critical_delta_s`).
    """

    def __init__(self, landscape, delta_s: float, form: str = "paper", R: float = 2.0,
                 n: int = 2048):
        _family(landscape)
        self.landscape = landscape
        self.delta_s = _positive("delta_s", delta_s)
        self.form = _form(form)
        self.R = _positive("R", R)
        if int(n) != n or n < 16:
            raise ValueError(f"n: expected an integer >= 16, got {n!r}")
        n = int(n) + int(n) % 2                     # even, so x = 0 is a grid node
        self._grid = np.linspace(-self.R, self.R, n + 1)
        self._h = 2 * self.R / n
        self._mid = n // 2
        # S30 exponent at the grid nodes, integrated outward from x = 0
        a, b = self._grid[:-1], self._grid[1:]
        xq, wq = self._nodes(a, b)
        piece = np.sum(wq * _integrand(landscape, self.delta_s, xq), axis=-1)
        I = np.zeros(n + 1)
        I[self._mid + 1:] = np.cumsum(piece[self._mid:])
        I[:self._mid] = -np.cumsum(piece[:self._mid][::-1])[::-1]
        self._I_grid = I
        # marginal quadrature (nodes, weights, −Φ − ln Z) for moments and normalisation
        self._xq, self._wq = xq.ravel(), wq.ravel()
        phi = self.potential(self._xq)
        self._logZ = float(logsumexp(-phi, b=self._wq))
        self._logp_q = -phi - self._logZ
        self.x_ss = _mode(self.potential, self._grid[self._mid:], self.curvature() >= 0)

    # -- quadrature helpers -----------------------------------------------------------
    @staticmethod
    def _nodes(a, b):
        """Gauss–Legendre nodes/weights on [a, b] (arrays broadcast), shape (..., 10)."""
        a, b = np.asarray(a, dtype=float)[..., None], np.asarray(b, dtype=float)[..., None]
        half = 0.5 * (b - a)
        return 0.5 * (a + b) + half * _GL_X, half * _GL_W

    def _check_x(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if np.any(np.abs(x) > self.R * (1 + 1e-12)) or not np.all(np.isfinite(x)):
            raise ValueError(f"x: values must lie in [-R, R] = [{-self.R:g}, {self.R:g}]")
        return x

    # -- local quantities ---------------------------------------------------------------
    def Delta(self, x):
        """Effective noise strength Δ(x) = D22 ≈ Δ_S λ(x)² (S27)."""
        return self.delta_s * self.landscape.lam(x) ** 2

    def kappa(self, x):
        """Effective anisotropy κ(x) = Δ(x)/⟨D11⟩_y (S28)."""
        return self.landscape.lam(x) ** 2 / _h11sq(self.landscape, self.delta_s, x)

    def diffusion_x(self, x):
        """Diffusion coefficient of the reduced equation, D_x = ⟨D11⟩_y = Δ/κ (S29)."""
        return self.delta_s * _h11sq(self.landscape, self.delta_s, x)

    def drift_x(self, x):
        """Drift of the reduced equation, a(x) = −(ελ0x + ½λ'(x)Δ(x)/λ(x)) (S16, S29)."""
        return -_numerator(self.landscape, self.delta_s, x)

    def variance_y(self, x):
        """Conditional variance ⟨y²⟩_y = Δ(x)/λ(x) = Δ_S λ(x) (S26)."""
        return self.delta_s * self.landscape.lam(x)

    def adiabatic_ratio(self, x):
        """τ_y/τ_x = |ελ0 + ½Δ_S λ''λ|/λ (S14 with y² → ⟨y²⟩_y; S47 asks ≪ 1)."""
        L = self.landscape
        return np.abs(_conf(L) + 0.5 * self.delta_s * L.d2lam(x) * L.lam(x)) / L.lam(x)

    # -- the reduced density ----------------------------------------------------------
    def exponent(self, x):
        """−ln ψ(x) = ∫_0^x [κελ0s/Δ + κλ'/(2λ)] ds, the S30 exponent (exact quadrature)."""
        x = self._check_x(x)
        k = np.clip(np.floor((x + self.R) / self._h).astype(int), 0, len(self._grid) - 2)
        g = self._grid[k]
        xq, wq = self._nodes(g, x)
        return self._I_grid[k] + np.sum(wq * _integrand(self.landscape, self.delta_s, xq),
                                        axis=-1)

    def potential(self, x):
        """Reduced effective potential Φ(x) = −ln[P(x)/P(0)] of the chosen ``form``."""
        phi = self.exponent(x)
        if self.form == "fpe":
            phi = phi + np.log(_h11sq(self.landscape, self.delta_s, x)
                               / _h11sq(self.landscape, self.delta_s, 0.0))
        return phi

    def marginal(self, x):
        """Stationary marginal P(x) = ∫P dy, normalised to 1 on [−R, R] (S30 or S29)."""
        return np.exp(-self.potential(x) - self._logZ)

    def density(self, x, y):
        """P(x, y) = P(x) P(y|x), P(y|x) Gaussian of variance Δ_Sλ(x) (S26, S31)."""
        x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        v = self.variance_y(x)
        return self.marginal(x) * np.exp(-0.5 * y * y / v) / np.sqrt(2 * np.pi * v)

    # -- effective losses --------------------------------------------------------------
    def L_sgd(self, x):
        """L_SGD(x) of Eq. 10 / S33, with the indefinite integral taken from 0.

        L_SGD = −Δ(x) ln[P(x)/P(0)] − (Δ(x)/2) ln(λ/Δ) − ½ελ0x²; with
        ``form="paper"`` this is Eq. 10 literally.  Eq. 10 is only defined up
        to c·Δ(x) (the integration constant and Z_ss multiply Δ(x)); the
        lower limit 0 and dropping Z_ss fix c.
        """
        x = self._check_x(x)
        L = self.landscape
        D = self.Delta(x)
        return D * self.potential(x) - 0.5 * D * np.log(L.lam(x) / D) - 0.5 * _conf(L) * x * x

    def L_sgd_approx(self, x):
        """Eq. 11 (S24): Δ(1 − κ) ln F(x) + (κ − 1) L(x, 0), with Δ = Δ(0), κ = κ(0)."""
        x = np.asarray(x, dtype=float)
        L = self.landscape
        D0, k0 = float(self.Delta(0.0)), float(self.kappa(0.0))
        return D0 * (1 - k0) * np.log(L.flatness(x)) + (k0 - 1) * 0.5 * _conf(L) * x * x

    def L_eff(self, x, y):
        """L_eff(x, y) = L(x, y) + L_SGD(x) (Eq. 7, S32; same constant convention)."""
        return self.landscape.value(x, y) + self.L_sgd(x)

    # -- observables --------------------------------------------------------------------
    def curvature(self) -> float:
        """Φ''(0): positive in phase I (maximum of P at 0), negative in phase II."""
        return _curvature_at_origin(self.landscape, self.delta_s, self.form)

    @property
    def delta_star(self) -> float:
        return critical_delta_s(self.landscape, form=self.form)

    def taylor(self) -> tuple[float, float]:
        """(c2, c4) of Φ(x) ≈ c2 x² + c4 x⁴ at the origin (the Landau expansion S41)."""
        cheb = Chebyshev.interpolate(lambda s: self.potential(s), 24, domain=[-0.05, 0.05])
        return float(cheb.deriv(2)(0.0)) / 2, float(cheb.deriv(4)(0.0)) / 24

    def x_ss_s42(self) -> float:
        """S42 as printed: x_ss = [A(Δ_S − Δ_S*)/B]^½, A = −κ(0)λ0λ1, B = κ(0)Δ_S(λ1² + 2λ0λ2).

        Uses Δ_S* = −ε/λ1 (S35); 0 below it.
        """
        L = self.landscape
        dstar = -L.eps / L.lam1
        if self.delta_s <= dstar:
            return 0.0
        k0 = kappa_origin(L, self.delta_s)
        A = -k0 * L.lam0 * L.lam1
        B = k0 * self.delta_s * (L.lam1 ** 2 + 2 * L.lam0 * L.lam2)
        return float(np.sqrt(A * (self.delta_s - dstar) / B))

    def expectation(self, f) -> float:
        """⟨f(x)⟩_ss over the marginal, f a vectorised callable."""
        return float(np.sum(self._wq * np.exp(self._logp_q) * f(self._xq)))

    def moments(self) -> dict:
        """⟨x²⟩, ⟨λ⟩, ⟨λ²⟩, ⟨λ'²⟩ over the marginal (inputs of S8, S9)."""
        L = self.landscape
        return {"x2": self.expectation(lambda x: x * x),
                "lam": self.expectation(L.lam),
                "lam2": self.expectation(lambda x: L.lam(x) ** 2),
                "dlam2": self.expectation(lambda x: L.dlam(x) ** 2)}

    def convergence(self, eta: float) -> dict:
        """S8/S9 multipliers for learning rate η (σ = Δ_S/η) with the theory's moments."""
        eta = _positive("eta", eta)
        mo = self.moments()
        out = convergence_multipliers(eta, self.delta_s / eta, mo["lam"], mo["lam2"],
                                      mo["dlam2"])
        return {**mo, **out}

    def search_time(self, x0: float, target: float | None = None) -> float:
        """Mean first-passage time τ_s(x0 → target) of the reduced process (S44).

        τ = ∫_target^{x0} dx/ψ(x) ∫_x^R ψ(x')/D_x(x') dx' for x0 > target
        (mirror image for x0 < target), ψ = S30's P_ss, D_x = Δ/κ.  This is
        Gardiner's exact formula for the 1-D Itô SDE dx = a dt + √(2D_x) dW
        with absorption at ``target`` and reflection at ±R.  ``target``
        defaults to x_ss on the side of x0.  Evaluated in log space.
        """
        x0 = float(self._check_x(x0))
        if target is None:
            target = np.copysign(self.x_ss, x0) if x0 != 0 else 0.0
        target = float(self._check_x(target))
        if x0 == target:
            return 0.0
        if x0 < target:        # mirror: x → −x turns "from below" into "from above"
            return self._tau_from_above(-x0, -target, sign=-1.0)
        return self._tau_from_above(x0, target, sign=1.0)

    def _tau_from_above(self, x0: float, t: float, sign: float) -> float:
        L, ds = self.landscape, self.delta_s

        def log_w(s):            # ln[ψ(s)/D_x(s)] in mirrored coordinates
            xs = sign * s
            return -self.exponent(xs) - np.log(ds * _h11sq(L, ds, xs))

        # tail integral ln ∫_{g}^{R} ψ/D on the grid nodes g ≥ t (cumulative from R)
        m = max(int(np.ceil((self.R - t) / self._h)), 1)
        g = np.linspace(t, self.R, m + 1)
        xq, wq = self._nodes(g[:-1], g[1:])
        piece = logsumexp(log_w(xq), b=wq, axis=-1)
        tail = np.append(np.logaddexp.accumulate(piece[::-1])[::-1], -np.inf)
        # outer integral over [t, x0] on the same nodes (x0 may fall inside an interval)
        k0 = int(np.searchsorted(g, x0, side="right")) - 1
        ends = np.append(g[:k0 + 1], x0)
        ends = ends[np.append(np.diff(ends) > 0, True)]
        ox, ow = self._nodes(ends[:-1], ends[1:])
        kk = np.minimum(np.searchsorted(g, ox, side="right") - 1, m - 1)
        ix, iw = self._nodes(ox, g[kk + 1])           # from each outer node to its interval end
        log_tail = np.logaddexp(logsumexp(log_w(ix), b=iw, axis=-1), tail[kk + 1])
        return float(np.sum(ow * np.exp(self.exponent(sign * ox) + log_tail)))

    def __repr__(self):
        return (f"Adiabatic({self.landscape!r}, delta_s={self.delta_s:g}, form={self.form!r}, "
                f"x_ss={self.x_ss:.6g})")


def adiabatic(landscape, delta_s: float, form: str = "paper", R: float = 2.0,
              n: int = 2048) -> Adiabatic:
    """Adiabatic theory of the paper family at noise level Δ_S; see :class:`Adiabatic`.

    >>> import fpsolve as fp
    >>> th = fp.theory.adiabatic(fp.landscapes.paper(), delta_s=0.012)
    >>> round(th.x_ss, 3) > 0
    True
    """
    return Adiabatic(landscape, delta_s, form, R, n)


def critical_delta_s(landscape, form: str = "paper", bracket: tuple | None = None) -> float:
    """Δ_S* where the reduced potential's curvature Φ''(0) changes sign (S35).

    For ``form="paper"`` Φ''(0) = [ελ0 + ½Δ_S(λ'(0)² + λ(0)λ''(0))]/D_x(0),
    whose root is Δ_S* = −ε/λ1 for the paper family; ``form="fpe"`` adds
    (ln D_x)''(0).  Found by a sign scan over ``bracket`` (default
    (10⁻³, 10²) × ε/|λ1|) and Brent's method.

    Returns
    -------
    float
        The critical noise level.

    Raises
    ------
    ValueError
        If the curvature does not change sign in ``bracket`` (no transition).
    """
    _family(landscape)
    form = _form(form)
    if bracket is None:
        scale = landscape.eps / abs(landscape.lam1) if landscape.lam1 != 0 else landscape.eps
        bracket = (1e-3 * scale, 1e2 * scale)
    lo, hi = (float(b) for b in bracket)
    if not (0 < lo < hi):
        raise ValueError(f"bracket: expected 0 < lo < hi, got {bracket!r}")
    f = lambda ds: _curvature_at_origin(landscape, ds, form)
    grid = np.geomspace(lo, hi, 61)
    vals = np.array([f(ds) for ds in grid])
    change = np.flatnonzero(np.sign(vals[:-1]) != np.sign(vals[1:]))
    if change.size == 0:
        raise ValueError(f"bracket: the curvature of the reduced potential does not change "
                         f"sign for Δ_S in {bracket!r} (no phase I → II transition)")
    i = int(change[0])
    return float(brentq(f, grid[i], grid[i + 1], xtol=1e-15, rtol=1e-13))


def critical_exponents(landscape, form: str = "paper", window=None, npts: int = 7,
                       x0: float | None = None, R: float = 2.0) -> dict:
    """Fit the theory's own critical exponents α, β1, β2 (S43, S45, S46).

    For δ = |Δ_S − Δ_S*| geometrically spaced in ``window``:

    * α  : slope of ln[F(x_ss) − F(0)] against ln δ above Δ_S*;
    * β1 : −slope of ln τ_s(x0 → 0) below Δ_S*;
    * β2 : −slope of ln τ_s(x_ss + x0 → x_ss) above Δ_S*.

    The power laws of S45 hold only between three scales.  With
    Φ ≈ c2(Δ_S) x² + c4 x⁴ at the origin, the quadratic well width
    w = |c2|^(−½) must exceed the start distance x0 (else τ_s is the
    deterministic relaxation time ∝ ln(x0/w)/δ, β → 1) and stay below the
    quartic width w4 = c4^(−¼) (else τ_s saturates, β → 0).  Hence the
    defaults: ``x0 = 0.05 w4`` and ``window = (4, 40) δ_c`` with δ_c the δ at
    which w = w4, capped at 0.5 Δ_S*.  A clean window needs a large κ(0),
    i.e. a small ε (see docs/transition.md).

    Returns
    -------
    dict
        ``alpha``, ``beta1``, ``beta2``, ``delta_star``, ``delta_c``, ``x0``
        and the data (``delta``, ``F_gain``, ``tau_below``, ``tau_above``).
    """
    _family(landscape)
    dstar = critical_delta_s(landscape, form=form)
    c4 = Adiabatic(landscape, dstar, form, R).taylor()[1]
    h = 1e-6 * dstar
    dc2 = 0.5 * (_curvature_at_origin(landscape, dstar + h, form)
                 - _curvature_at_origin(landscape, dstar - h, form)) / (2 * h)
    delta_c = float(np.sqrt(c4) / abs(dc2))
    if x0 is None:
        x0 = 0.05 * c4 ** -0.25
    x0 = _positive("x0", x0)
    if window is None:
        window = (4 * delta_c, min(40 * delta_c, 0.5 * dstar))
    lo, hi = (float(w) for w in window)
    if not (0 < lo < hi < dstar):
        raise ValueError(f"window: expected 0 < lo < hi < Δ_S* = {dstar:g}, got {window!r}")
    d = np.geomspace(lo, hi, npts)
    gain, tau_b, tau_a = [], [], []
    F0 = float(landscape.flatness(0.0))
    for dd in d:
        up = Adiabatic(landscape, dstar + dd, form, R)
        gain.append(float(landscape.flatness(up.x_ss)) - F0)
        tau_a.append(up.search_time(up.x_ss + x0, up.x_ss))
        tau_b.append(Adiabatic(landscape, dstar - dd, form, R).search_time(x0, 0.0))
    slope = lambda y: float(np.polyfit(np.log(d), np.log(y), 1)[0])
    return {"alpha": slope(gain), "beta1": -slope(tau_b), "beta2": -slope(tau_a),
            "delta_star": dstar, "delta_c": delta_c, "x0": x0, "delta": d,
            "F_gain": np.array(gain), "tau_below": np.array(tau_b),
            "tau_above": np.array(tau_a)}


# -- convergence and divergence (SM Sec. II B, III B 3) ----------------------------------

def convergence_multipliers(eta: float, sigma: float, mean_lam, mean_lam2, mean_dlam2) -> dict:
    """Per-step growth factors of ⟨y⟩ (S8) and ⟨y²⟩ (S9) from steady-state moments.

    m1 = 1 − η⟨λ⟩ (first-order condition |m1| < 1, i.e. η⟨λ⟩ < 2) and
    m2 = 1 + η²⟨λ²⟩ − 2η⟨λ⟩ + 2η²σ⟨λ'²⟩ (second-order condition m2 < 1).

    Returns
    -------
    dict
        ``m1``, ``m2``, ``first_order`` and ``second_order`` (bools: converges).
    """
    eta = _positive("eta", eta)
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma: expected a non-negative number, got {sigma!r}")
    m1 = 1.0 - eta * mean_lam
    m2 = 1.0 + eta ** 2 * mean_lam2 - 2 * eta * mean_lam + 2 * eta ** 2 * sigma * mean_dlam2
    return {"m1": m1, "m2": m2, "first_order": bool(abs(m1) < 1), "second_order": bool(m2 < 1)}


def delta_m(landscape, eta_min: float, approx: str = "S39") -> float:
    """Divergence bound Δ_m of the paper family (S39; ``approx="S40"`` for η_min ≪ 1).

    S39: Δ_m = √[(2/(η_min λ(x_F)) − 1)/(3λ1²)];  S40 (= main text):
    Δ_m ≈ √(2/(3η_min λ1²)) F(x_F).  Both use κ ≈ 1/(3Δ_S²λ1²), the anisotropy
    at x = 0, for a density centred at x_F (see docs/transition.md).
    """
    _family(landscape)
    eta = _positive("eta_min", eta_min)
    lam_f = float(landscape.lam(flattest_point(landscape)))
    if approx == "S39":
        arg = (2.0 / (eta * lam_f) - 1.0) / (3 * landscape.lam1 ** 2)
        if arg <= 0:
            raise ValueError(f"eta_min: η_min λ(x_F) = {eta * lam_f:g} ≥ 2 diverges at any Δ_S")
        return float(np.sqrt(arg))
    if approx == "S40":
        return float(np.sqrt(2.0 / (3 * eta * landscape.lam1 ** 2)) / np.sqrt(lam_f))
    raise ValueError(f"approx: expected 'S39' or 'S40', got {approx!r}")


# -- the simple model (constant Δ, κ) -----------------------------------------------------

class SimpleModel:
    """Constant anisotropic noise D = diag(Δ/κ, Δ) on L = ½ελ0x² + ½λ(x)y² (Eqs. 4–7).

    The adiabatic stationary density is S22 (Eq. 6 when ε = 0)

        P(x, y) ∝ exp[−(κελ0x² + λ(x)y²)/(2Δ)] λ(x)^(−(κ−1)/2),

    normalised on the strip |x| ≤ R, y ∈ ℝ.  It is exact for κ = 1 (Boltzmann)
    and otherwise carries an error of the order of the time-scale ratio
    τ_y/τ_x (docs/transition.md).
    """

    def __init__(self, delta: float, kappa: float, landscape, R: float = 2.0,
                 n: int = 2048):
        _family(landscape)
        self.delta = _positive("delta", delta)
        self.kappa = _positive("kappa", kappa)
        self.landscape = landscape
        self.R = _positive("R", R)
        if int(n) != n or n < 16:
            raise ValueError(f"n: expected an integer >= 16, got {n!r}")
        g = np.linspace(-self.R, self.R, int(n) + 1)
        xq, wq = Adiabatic._nodes(g[:-1], g[1:])
        self._logZ = float(logsumexp(-self.potential(xq.ravel()), b=wq.ravel()))
        L = landscape
        curv0 = (self.kappa * _conf(L) / self.delta
                 + 0.5 * self.kappa * float(L.d2lam(0.0)) / float(L.lam(0.0)))
        self.x_ss = _mode(self.potential, np.linspace(0.0, self.R, 4001), curv0 >= 0)

    def potential(self, x):
        """−ln of the unnormalised marginal: κελ0x²/(2Δ) + (κ/2) ln λ(x) (S21)."""
        x = np.asarray(x, dtype=float)
        L = self.landscape
        return (self.kappa * _conf(L) * x * x / (2 * self.delta)
                + 0.5 * self.kappa * np.log(L.lam(x)))

    def marginal(self, x):
        """P(x) = ∫P dy (S21), normalised on [−R, R]."""
        return np.exp(-self.potential(x) - self._logZ)

    def density(self, x, y):
        """P(x, y) of S22 (Eq. 6 for ε = 0)."""
        x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        lam = self.landscape.lam(x)
        return (self.marginal(x) * np.sqrt(lam / (2 * np.pi * self.delta))
                * np.exp(-0.5 * lam * y * y / self.delta))

    def L_eff(self, x, y):
        """L_eff = ½[κελ0x² + λy²] + Δ(1 − κ) ln F(x) (Eq. 7, S23; constants dropped)."""
        L = self.landscape
        x = np.asarray(x, dtype=float)
        return (0.5 * (self.kappa * _conf(L) * x * x + L.lam(x) * np.asarray(y) ** 2)
                + self.delta * (1 - self.kappa) * np.log(L.flatness(x)))

    def L_sgd(self, x):
        """L_SGD = Δ(1 − κ) ln F(x) + (κ − 1) L(x, 0) (Eq. 11, S24)."""
        L = self.landscape
        x = np.asarray(x, dtype=float)
        return (self.delta * (1 - self.kappa) * np.log(L.flatness(x))
                + (self.kappa - 1) * 0.5 * _conf(L) * x * x)

    def __repr__(self):
        return (f"SimpleModel(delta={self.delta:g}, kappa={self.kappa:g}, {self.landscape!r}, "
                f"x_ss={self.x_ss:.6g})")


def simple_model(delta: float, kappa: float, landscape, R: float = 2.0) -> SimpleModel:
    """The simple model with constant Δ and κ (Eqs. 4–7); see :class:`SimpleModel`."""
    return SimpleModel(delta, kappa, landscape, R)
