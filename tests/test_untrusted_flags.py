"""Results that cannot be trusted are flagged (diagnostics["untrusted"] and a warning):
every observable's estimate is looked at, a fixed mesh whose outflow layer is not
resolved flags μ, and a stabilised solve says its estimates are the Galerkin ones
(redteam F11, F12, F13)."""
import warnings

import numpy as np
import pytest

import fpsolve as fp
from fpsolve.theory.exact import radial_ou_escape_rate

RADIAL = fp.landscapes.quadratic(np.eye(2))


def _solve(*args, **kw):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sol = fp.solve(*args, **kw)
    return sol, [str(w.message) for w in rec if issubclass(w.category, fp.FPSolveWarning)]


def test_reflecting_solve_with_a_large_moment_estimate_is_flagged():
    # δ = 0.005 on P1, h = 0.2: ⟨x²⟩ 13 % off, L1 29 %; the estimates say so, now the flag too
    sol, msgs = _solve(RADIAL, fp.diffusion.isotropic(0.005), fp.disk_mesh(1.0, 0.2),
                       order=1, boundary="reflecting")
    assert sol.error_estimate["L1"] > 0.1
    assert sol.diagnostics["untrusted"]
    assert any("above 10 % for" in m and "L1" in m for m in msgs)
    good, msgs = _solve(RADIAL, fp.diffusion.isotropic(0.05), fp.disk_mesh(1.0, 0.1),
                        order=3, boundary="reflecting")
    assert not good.diagnostics["untrusted"] and not msgs


def test_unresolved_outflow_layer_flags_a_fixed_mesh_escape_rate():
    # δ = 0.07, P2, h = 0.4: μ 3.9x the Kummer root with a DWR estimate of 5 %
    sol, msgs = _solve(RADIAL, fp.diffusion.isotropic(0.07), fp.disk_mesh(1.0, 0.4), order=2,
                       weighting="none")
    err = abs(sol.escape_rate / radial_ou_escape_rate(0.07) - 1)
    assert err > 1.0 and sol.error_estimate["escape_rate"] < 0.1   # the under-read
    assert sol.diagnostics["untrusted"] and sol.diagnostics["layer_peclet"] > 3
    assert any("boundary layer that carries the escape rate" in m for m in msgs)
    fine, msgs = _solve(RADIAL, fp.diffusion.isotropic(0.07), fp.disk_mesh(1.0, 0.05),
                        order=3, weighting="none")
    assert fine.diagnostics["layer_peclet"] <= 3 and not fine.diagnostics["untrusted"]
    assert abs(fine.escape_rate / radial_ou_escape_rate(0.07) - 1) < 1e-4


def test_stabilised_solve_says_its_estimates_do_not_apply():
    sol, msgs = _solve(RADIAL, fp.diffusion.isotropic(0.05), fp.disk_mesh(1.0, 0.1), order=2,
                       boundary="reflecting", stabilisation="supg")
    assert sol.diagnostics["untrusted"]
    assert any("stabilised (SUPG)" in m for m in msgs)


def test_an_intorder_too_low_for_the_order_is_refused():
    with pytest.raises(ValueError, match=r"intorder: expected an integer >= 2·order = 6"):
        fp.solve(RADIAL, fp.diffusion.isotropic(0.05), fp.disk_mesh(1.0, 0.3), order=3,
                 intorder=2)
    with pytest.raises(ValueError, match="intorder"):
        fp.Problem(RADIAL, fp.diffusion.isotropic(0.05), fp.disk_mesh(1.0, 0.3), order=1,
                   intorder=1.5)
    ok = fp.solve(RADIAL, fp.diffusion.isotropic(0.05), fp.disk_mesh(1.0, 0.3), order=2,
                  intorder=4, boundary="reflecting")
    assert ok.mass == pytest.approx(1.0)
