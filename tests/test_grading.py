"""A-priori grading (fpsolve.fe.grading): the local-equilibrium variation h|D⁻¹β| of log P."""
import numpy as np
import pytest

import fpsolve as fp
from fpsolve.fe import adapt, grading

# a constant anisotropic tensor, rotated by 30° (eigenvalues 1e-3 and 1e-1)
_C, _S = np.cos(np.pi / 6), np.sin(np.pi / 6)
_R = np.array([[_C, -_S], [_S, _C]])
D_ROT = _R @ np.diag([1e-3, 1e-1]) @ _R.T


def _mesh():
    m = fp.disk_mesh(1.0, 0.2)
    return m.p, m.t


def _grad_phi(x, y):
    """∇Φ of Φ = x²/2 + xy/4 + y⁴/4 (P = e^(−Φ) is the Gibbs density below)."""
    return np.stack([x + y / 4, x / 4 + y ** 3])


def test_equals_grad_log_p_of_a_gibbs_density_with_rotated_anisotropic_noise():
    """Drift b = −D∇Φ with constant D: J = 0 for P = e^(−Φ), so ∇log P = −∇Φ = −D⁻¹β
    exactly and the number is h times the mean |∇Φ| over centroid and corners."""
    p, t = _mesh()
    D = fp.diffusion.constant(D_ROT.tolist())

    def drift(x, y):
        g = _grad_phi(x, y)
        return -np.einsum("ij,j...->i...", D_ROT, g)

    v = grading.equilibrium_variation(p, t, None, drift, D)
    x, y = grading.element_points(p, t)
    exact = grading.element_sizes(p, t) * np.linalg.norm(_grad_phi(x, y), axis=0).mean(axis=0)
    np.testing.assert_allclose(v, exact, rtol=1e-12)


def test_rotated_anisotropic_ou_and_the_peclet_number_under_reads():
    """L = |x|²/2 with constant rotated D: J = 0 for P = e^(−xᵀD⁻¹x/2), ∇log P = −D⁻¹x.
    The cell Péclet number h|β|³/βᵀDβ sees only the diffusion along β and reads less
    wherever β is not an eigenvector of D (35× at 45° for this anisotropy of 100)."""
    L = fp.landscapes.expression("(x**2 + y**2)/2")
    D = fp.diffusion.constant(D_ROT.tolist())
    with pytest.warns(fp.FPSolveWarning):      # a coarse mesh: only its numbers matter here
        sol = fp.solve(L, D, fp.disk_mesh(1.0, 0.2), order=1)
    p, t = sol.mesh.p, sol.mesh.t
    v = grading.equilibrium_variation(p, t, L, None, D)
    x, y = grading.element_points(p, t)
    exact = grading.element_sizes(p, t) * np.linalg.norm(
        np.einsum("ij,j...->i...", np.linalg.inv(D_ROT), np.stack([x, y])), axis=0).mean(axis=0)
    np.testing.assert_allclose(v, exact, rtol=1e-10)
    ratio = v / adapt.element_peclet(sol)
    assert np.median(ratio) > 10 and ratio.min() > 0.9


def test_isotropic_noise_agrees_with_the_peclet_number():
    """D = δI: D⁻¹β = β/δ, so h|D⁻¹β| and h|β|³/βᵀDβ are the same number when |β| is
    constant over the element's points (and close otherwise): radial OU."""
    L = fp.landscapes.expression("(x**2 + y**2)/2")
    D = fp.diffusion.isotropic(0.05)
    with pytest.warns(fp.FPSolveWarning):      # a coarse mesh: only its numbers matter here
        sol = fp.solve(L, D, fp.disk_mesh(1.0, 0.2), order=1)
    v = grading.equilibrium_variation(sol.mesh.p, sol.mesh.t, L, None, D)
    pe = adapt.element_peclet(sol)
    assert np.median(np.abs(v / pe - 1)) < 0.05


def test_finite_where_sgd_noise_is_singular_at_a_point():
    """D = Δ_S H² is singular where det H = 0 (paper landscape, x = 0: y² = 0.08); an
    element with one such point still has a finite number (the sums over its points)."""
    L = fp.landscapes.paper()
    D = fp.diffusion.sgd(L, 0.01)
    y0 = np.sqrt(0.08)
    assert abs(np.linalg.det(np.asarray(L.hessian(np.array(0.0), np.array(y0))).reshape(2, 2))) < 1e-12
    p = np.array([[0.0, 0.05, -0.05], [y0, y0 + 0.05, y0 + 0.05]])
    t = np.array([[0], [1], [2]])
    v = grading.equilibrium_variation(p, t, L, None, D)
    assert np.all(np.isfinite(v)) and v[0] > 0


def test_singular_noise_everywhere_is_infinite_and_no_drift_is_zero():
    """D = diag(0, 1) with a drift across its null direction: no local equilibrium can
    balance it (inf, refine); zero drift: nothing varies (0)."""
    p, t = _mesh()
    D = fp.diffusion.constant([[0.0, 0.0], [0.0, 1.0]])
    v = grading.equilibrium_variation(p, t, None, lambda x, y: np.stack([np.ones_like(x), 0 * y]), D)
    assert np.all(np.isinf(v))
    v0 = grading.equilibrium_variation(p, t, None, lambda x, y: np.zeros((2, *x.shape)), D)
    assert np.all(v0 == 0)


def test_element_sizes_and_points():
    p = np.array([[0.0, 3.0, 0.0], [0.0, 0.0, 4.0]])
    t = np.array([[0], [1], [2]])
    assert grading.element_sizes(p, t)[0] == pytest.approx(5.0)
    x, y = grading.element_points(p, t)
    np.testing.assert_allclose(x[:, 0], [1.0, 0.0, 3.0, 0.0])
    np.testing.assert_allclose(y[:, 0], [4 / 3, 0.0, 0.0, 4.0])
