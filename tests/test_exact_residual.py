"""Double-double residuals and iterative refinement (fpsolve.fe.exact_residual)."""
from fractions import Fraction

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from fpsolve.fe.exact_residual import dd_residual, dd_row_sums, refine


def _exact_residual(K, x, b):
    K = K.tocsr()
    out = []
    for r in range(K.shape[0]):
        s = Fraction(b[r])
        for k in range(K.indptr[r], K.indptr[r + 1]):
            s -= Fraction(K.data[k]) * Fraction(x[K.indices[k]])
        out.append(float(s))
    return np.array(out)


def test_residual_is_exact_to_double_double_precision():
    """Rows whose terms cancel to round-off of their size: double keeps no digit, the
    double-double residual is the exact rational residual to 2^-104 of the terms."""
    rng = np.random.default_rng(3)
    n = 40
    K = sp.random(n, n, density=0.3, random_state=rng, format="csr") + sp.eye(n)
    x = rng.standard_normal(n) * 10.0 ** rng.integers(-20, 3, n)
    b = K @ x           # cancels to round-off of the largest term in each row
    exact = _exact_residual(K, x, b)
    scale = abs(K) @ np.abs(x) + np.abs(b)
    assert np.max(np.abs((b - K @ x) - exact) / np.abs(exact)) > 0.1
    err = np.abs(dd_residual(K, x, b) - exact)
    assert np.all(err <= 4 * 2.0 ** -104 * scale + np.spacing(np.abs(exact)))
    hi, lo = dd_row_sums(sp.csr_matrix(np.array([[1.0, 1e16, -1e16, 1e-17]])))
    assert hi[0] == 1.0 and lo[0] == 1e-17


def _chain(n=80, c=30.0):
    """A 1-D drift-diffusion chain whose solution falls from 1 to ~c^-n (1e-100+)."""
    main = np.full(n, 1.0 + c)
    K = sp.diags([-np.ones(n - 1), main, -c * np.ones(n - 1)], [-1, 0, 1], format="csc")
    b = np.zeros(n)
    b[0] = 1.0
    # exact solution by rational Gaussian elimination (Thomas algorithm)
    cp, dp = [Fraction(0)] * n, [Fraction(0)] * n
    d = [Fraction(v) for v in main]
    cp[0], dp[0] = Fraction(-c) / d[0], Fraction(1) / d[0]
    for i in range(1, n):
        den = d[i] + cp[i - 1]
        cp[i] = Fraction(-c) / den if i < n - 1 else Fraction(0)
        dp[i] = (0 + dp[i - 1]) / den
    x = [Fraction(0)] * n
    x[-1] = dp[-1]
    for i in range(n - 2, -1, -1):
        x[i] = dp[i] - cp[i] * x[i + 1]
    return K, b, np.array([float(v) for v in x])


def test_refinement_converges_componentwise_down_to_1e_minus_100():
    """With an approximate inverse (the LU of a matrix perturbed by up to 1e-6 on its
    diagonal) every component of the chain's solution, from 3e-2 down to 1e-117, is
    refined to 1e-12 relative of the stored system's exact solution."""
    K, b, exact = _chain()
    assert exact[-1] < 1e-100 and exact[0] > 1e-2
    rng = np.random.default_rng(0)
    lu = spla.splu((K @ sp.diags(1 + 1e-6 * rng.random(K.shape[0]))).tocsc())
    x0 = lu.solve(b)
    assert np.max(np.abs(x0 / exact - 1)) > 1e-7
    x, info = refine(K, b, x0, lu.solve, rtol=1e-13, maxit=10)
    assert info["change"] <= 1e-13 and info["iterations"] < 10
    np.testing.assert_allclose(x, exact, rtol=1e-12, atol=0)


def test_refinement_keeps_fixed_values_and_reports_non_convergence():
    K, b, exact = _chain(20, 5.0)
    free = np.arange(1, 20)
    # x_0 fixed at its exact value; the remaining equations are rows 1.. of K
    rows = K.tocsr()[free]
    lu = spla.splu(K.tocsc()[free][:, free] * (1 + 1e-3))
    x0 = exact.copy()
    x0[free] = 0.0
    x, info = refine(rows, np.zeros(19), x0, lu.solve, cols=free, rtol=1e-14, maxit=2)
    assert x[0] == exact[0] and info["iterations"] == 2 and info["change"] > 1e-14
    x, info = refine(rows, np.zeros(19), x, lu.solve, cols=free, rtol=1e-14, maxit=60)
    np.testing.assert_allclose(x, exact, rtol=1e-12)
