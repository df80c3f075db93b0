"""Exact references: the radial Ornstein–Uhlenbeck exit problem (mpmath, any precision)
and the transients and spectrum of the planar Ornstein–Uhlenbeck process.

L = |x|²/2, D = δI in the disk r < R with an absorbing circle.  The backward operator
δΔu − x·∇u of radial functions becomes Kummer's equation in z = r²/(2δ), so

* the escape rate μ (principal eigenvalue of the quasi-stationary state) is the smallest
  root of M(−μ/2, 1, R²/(2δ)) = 0 (M = ₁F₁, Kummer's function);
* the mean exit time from radius r is T(r) = ∫_r^R (e^{s²/2δ} − 1)/s ds
  = ½[Ein(R²/2δ) − Ein(r²/2δ)], with Ein(z) = ∫₀^z (eᵗ − 1)/t dt = Ei(z) − γ − ln z.

For small δ both are exponentially extreme (μ ≈ 2/Ein(R²/2δ) ~ 1e-42 at δ = 0.005,
R = 1), which is why they test the solvers far outside double-precision comfort.
mpmath ships with sympy, so these references cost no extra dependency.

The planar OU process dθ = −Aθ dt + √(2D) dW (L = ½θᵀAθ, constant D) started from
N(m₀, Σ₀) stays Gaussian: mean e^{−At}m₀, covariance S + e^{−At}(Σ₀ − S)e^{−Aᵀt} with
AS + SAᵀ = 2D (:func:`ou_transient`); the decay rates of its Fokker–Planck operator are
n₁a₁ + n₂a₂ (n ≥ 0, a = eig A), whatever D (:func:`ou_spectrum`).
"""
from __future__ import annotations

import math

__all__ = ["ein", "radial_ou_escape_rate", "radial_ou_mfpt", "ou_transient", "ou_spectrum"]


def _mp(dps: int):
    import mpmath

    ctx = mpmath.mp.clone()
    ctx.dps = dps
    return ctx


def ein(z: float, dps: int = 50):
    """Ein(z) = ∫₀^z (eᵗ − 1)/t dt (an mpmath number at ``dps`` digits)."""
    mp = _mp(dps)
    z = mp.mpf(z)
    if z == 0:
        return mp.mpf(0)
    return mp.ei(z) - mp.euler - mp.log(z)


def radial_ou_escape_rate(delta: float, R: float = 1.0, dps: int = 50) -> float:
    """Smallest root μ of M(−μ/2, 1, R²/(2δ)) = 0: the exact escape rate.

    Parameters
    ----------
    delta : float
        Noise strength δ > 0 (D = δI).
    R : float
        Radius of the absorbing circle.
    dps : int
        Working precision in decimal digits.
    """
    if not (delta > 0 and R > 0):
        raise ValueError(f"delta and R must be positive, got delta={delta!r}, R={R!r}")
    mp = _mp(dps)
    z = mp.mpf(R) ** 2 / (2 * mp.mpf(delta))
    f = lambda mu: mp.hyp1f1(-mu / 2, 1, z)                           # noqa: E731
    # M(a, 1, z) = 1 + a·Ein(z) + O(a²): the small-μ root is near 2/Ein(z)
    mu0 = 2 / ein(z, dps)
    mu = mp.findroot(f, (mu0 * mp.mpf("0.5"), mu0 * mp.mpf("1.5")), solver="anderson")
    if not (mu > 0 and f(mu * mp.mpf("0.999")) * f(mu * mp.mpf("1.001")) < 0):
        raise ArithmeticError(f"radial_ou_escape_rate: no sign change at delta={delta}")
    return float(mu)


def radial_ou_mfpt(r, delta: float, R: float = 1.0, dps: int = 50):
    """Exact mean exit time T(r) = ½[Ein(R²/2δ) − Ein(r²/2δ)] (float or array of floats)."""
    import numpy as np

    if not (delta > 0 and R > 0):
        raise ValueError(f"delta and R must be positive, got delta={delta!r}, R={R!r}")
    rr = np.asarray(r, dtype=float)
    zR = ein(R * R / (2.0 * delta), dps)
    out = np.array([float((zR - ein(x * x / (2.0 * delta), dps)) / 2) for x in rr.ravel()])
    return out.reshape(rr.shape) if rr.ndim else float(out[0])


def _matrix(name, value):
    import numpy as np

    a = np.asarray(value, dtype=float)
    if a.shape != (2, 2) or not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: expected a finite 2x2 matrix, got {value!r}")
    return a


def ou_transient(A, D, mean0, cov0, t):
    """Exact mean and covariance at time ``t`` of dθ = −Aθ dt + √(2D) dW from N(mean0, cov0).

    Returns
    -------
    (ndarray (2,), ndarray (2, 2))
        e^{−At}m₀ and S + e^{−At}(Σ₀ − S)e^{−Aᵀt}, AS + SAᵀ = 2D.
    """
    import numpy as np
    import scipy.linalg as sl

    A, D, cov0 = _matrix("A", A), _matrix("D", D), _matrix("cov0", cov0)
    if not (np.isfinite(t) and t >= 0):
        raise ValueError(f"t: expected a finite time >= 0, got {t!r}")
    S = sl.solve_continuous_lyapunov(A, 2 * D)
    E = sl.expm(-A * float(t))
    return E @ np.asarray(mean0, dtype=float), S + E @ (cov0 - S) @ E.T


def ou_spectrum(A, k: int):
    """The ``k`` smallest decay rates n₁a₁ + n₂a₂ (n₁, n₂ ≥ 0) of the OU generator.

    ``a`` are the eigenvalues of A (real parts positive); complex for a non-normal drift
    with rotation.  Sorted by real part, then |imaginary part|.
    """
    import numpy as np

    a = np.linalg.eigvals(_matrix("A", A)).astype(complex)
    if not np.all(a.real > 0):
        raise ValueError(f"A: expected eigenvalues with positive real parts, got {a}")
    n = int(k) + 1
    vals = np.array([i * a[0] + j * a[1] for i in range(n) for j in range(n)])
    vals = vals[np.lexsort((np.abs(vals.imag), vals.real))][:k]
    return vals
