"""Models that are not finite on the mesh are refused with the model and a point named."""
import warnings

import numpy as np
import pytest

import fpsolve as fp
from fpsolve.models.validity import ModelError, check_finite, check_landscape


@pytest.fixture(scope="module")
def disk():
    return fp.disk_mesh(1.0, 0.2)


def test_log_landscape_is_refused_not_solved(disk):
    # log(x) has a finite gradient 1/x at every quadrature point; it used to give mu = -3.8
    L = fp.landscapes.expression("log(x)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no RuntimeWarning leaks out either
        with pytest.raises(ModelError, match=r"landscape .*'log\(x\)'.*L is not finite at "
                                             r"\(x, y\) = \(-"):
            fp.solve(L, fp.diffusion.isotropic(0.1), disk)
    with pytest.raises(ValueError):            # ModelError is a ValueError
        fp.Problem(L, fp.diffusion.sgd(L, 0.01), disk, order=1)


def test_non_finite_drift_and_diffusion_name_the_model(disk):
    L = fp.landscapes.quadratic(np.eye(2))
    with pytest.raises(ModelError, match=r"drift bad_drift\(x, y\): b is not finite"):
        def bad_drift(x, y):
            return np.stack([np.sqrt(x), -y])
        fp.solve(None, fp.diffusion.isotropic(0.1), disk, drift=bad_drift)
    D = fp.diffusion.expression("0.1", "0.1*log(1 + x)")
    with pytest.raises(ModelError, match=r"diffusion Expression\(.*log\(1 \+ x\).*D is not "
                                         "positive semi-definite at"):
        fp.solve(L, D, disk)
    D = fp.diffusion.expression("0.1 + sqrt(x)", "0.1")
    with pytest.raises(ModelError, match="D is not finite at"):
        fp.solve(L, D, disk)


def test_finite_models_still_solve_silently(disk):
    L = fp.landscapes.paper()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        sol = fp.solve(L, fp.diffusion.sgd(L, 0.05), fp.disk_mesh(2.0, 0.25), order=2)
    assert sol.escape_rate > 0


def test_check_finite_reports_the_first_bad_point():
    x = np.array([[0.0, 1.0], [2.0, 3.0]])
    y = -x
    v = np.stack([x, np.where(x >= 2, np.inf, x)])
    with pytest.raises(ModelError, match=r"M: g is not finite at \(x, y\) = \(2, -2\) "
                                         r"\(g = \[2.0, inf\]\)"):
        check_finite(v, x, y, "M", "g")
    check_finite(v[0], x, y, "M", "g")
    L = fp.landscapes.expression("sqrt(1 - x)")
    check_landscape(L, [0.0, 0.5], [0.0, 0.0], with_gradient=False)
    with pytest.raises(ModelError, match="∇L is not finite at"):
        check_landscape(L, [0.0, 1.0], [0.0, 0.0])


def test_derivatives_of_abs_evaluate_pointwise(disk):
    # sympy differentiates sign(x) into DiracDelta(x); zero away from x = 0
    L = fp.landscapes.expression("abs(x)*y**2 + x**2")
    dH = L.hessian_gradient(np.array([0.3, -0.2]), np.array([0.1, 0.4]))
    np.testing.assert_allclose(dH[0, 0, 0], [0.0, 0.0])     # d/dx of 2 + 2y²·δ(x)
    np.testing.assert_allclose(dH[0, 0, 1], [0.0, 0.0])     # d/dx of 2y·sign(x)
    np.testing.assert_allclose(dH[0, 1, 1], [2.0, -2.0])    # d/dx of 2|x|
    np.testing.assert_allclose(dH[1, 0, 1], [2.0, -2.0])
    sol = fp.solve(L, fp.diffusion.sgd(L, 0.02), disk, order=1)
    assert np.isfinite(sol.escape_rate)


@pytest.mark.parametrize("text, where", [
    ("1/x", r"\(x, y\) = \(-?[0-9.e-]+, "),                  # between the sample points
    ("0.5*(x**2 + y**2) + 0.01/(x - 0.3)**2", r"\(x, y\) = \(0.3, "),
    ("tan(2*x)", r"\(x, y\) = \(-?0.785398, "),              # cos(2x) = 0 at x = ±π/4
    ("1/((x - 0.1)**2 + (y - 0.2)**2)", r"\(x, y\) = \(0.1, 0.2\)"),   # no sign change
])
def test_poles_between_the_points_are_found(disk, text, where):
    # a finite check at the quadrature points misses these; 1/x used to give mu = 7.77
    L = fp.landscapes.expression(text)
    with pytest.raises(ModelError, match=r"L is unbounded near " + where
                       + r".*denominator .* vanishes inside the domain"):
        fp.solve(L, fp.diffusion.isotropic(0.1), disk)


def test_bounded_quotients_and_poles_outside_are_accepted(disk):
    # x/r has a vanishing denominator but a bounded value; 1/(x - 5) has its pole outside
    for text in ("x*y/sqrt(x**2 + y**2 + 1e-30)", "0.5*(x**2 + y**2) + 1/(x - 5)",
                 "0.5*x**2 + 0.5*y**2 + 0.1*sqrt(x**2 + y**2)", "tan(0.5*x) + y**2"):
        L = fp.landscapes.expression(text)
        assert np.isfinite(fp.solve(L, fp.diffusion.isotropic(0.2), disk, order=1).escape_rate)


def test_sgd_noise_of_a_cone_is_unbounded(disk):
    # L = r has a bounded gradient (isotropic noise is fine) but H ~ 1/r: D = Δ_S H² is not
    L = fp.landscapes.expression("0.5*(x**2 + y**2) + 0.1*sqrt((x - 0.1)**2 + y**2)")
    with pytest.raises(ModelError, match=r"diffusion SGD.*D is unbounded near \(x, y\) = "
                                         r"\(0.1, [-0-9.e]+\)"):
        fp.solve(L, fp.diffusion.sgd(L, 0.01), disk)
    D = fp.diffusion.expression("0.1 + 0.01/(y + 0.5)**2", "0.1")
    with pytest.raises(ModelError, match=r"diffusion Expression.*D is unbounded near "
                                         r"\(x, y\) = \([-0-9.e]+, -0.5\)"):
        fp.solve(fp.landscapes.quadratic(np.eye(2)), D, disk)
