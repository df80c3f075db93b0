"""The hierarchical (P_{k+1}) escape-rate estimate (fpsolve.fe.hierarchical).

Where the dual-weighted μ estimate cannot be computed (its weight is not resolved in
double precision), μ is estimated by μ_{k+1} − μ_h: the same problem solved in P_{k+1}
on the same mesh.  Checked against exact escape rates (radial OU, Kummer roots) and the
paper landscape's uniform-P3 extrapolations (docs/adaptivity.md).
"""
import warnings

import numpy as np
import pytest

import fpsolve as fp
from fpsolve.fe import hierarchical
from fpsolve.fe.hierarchical import PECLET_MAX, enriched_escape_rate, hierarchical_estimate
from fpsolve.theory.exact import radial_ou_escape_rate

RADIAL = fp.landscapes.quadratic([[1.0, 0.0], [0.0, 1.0]])


def _solved(L, D, mesh, order=3):
    prob = fp.Problem(L, D, mesh, order=order)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prob, prob.solve()


@pytest.mark.parametrize("delta,h,order", [(0.02, 0.05, 3), (0.02, 0.05, 2), (0.05, 0.15, 3)])
def test_hierarchical_estimate_against_kummer_root(delta, h, order):
    """Resolved layer (boundary Péclet ≤ 3): μ_{k+1} − μ_h is the error (effectivity of
    |μ_{k+1} − μ_h|/μ_{k+1} 1.0; reported with the factor 2 of the DWR estimates)."""
    prob, sol = _solved(RADIAL, fp.diffusion.isotropic(delta), fp.disk_mesh(1.0, h), order)
    exact = radial_ou_escape_rate(delta)
    true = abs(sol.escape_rate - exact) / exact
    est, corr, record = hierarchical_estimate(prob, sol.diffusion, prob.basis,
                                              prob.mesh._cache, sol.escape_rate)
    assert record["dofs"] > prob.dofs and record["layer_peclet"] <= PECLET_MAX
    assert 0.5 <= est / true <= 10
    assert abs(sol.escape_rate + corr - exact) < 0.1 * abs(sol.escape_rate - exact)


def test_unresolved_layer_is_not_certified():
    """Radial OU δ = 0.02 on h = 0.1 (boundary Péclet 5): μ_h and μ_{k+1} are 26 % and 30 %
    off but only 3 % apart; the estimate must not certify that (inf, not 0.03)."""
    prob, sol = _solved(RADIAL, fp.diffusion.isotropic(0.02), fp.disk_mesh(1.0, 0.1))
    true = abs(sol.escape_rate / radial_ou_escape_rate(0.02) - 1)
    est, corr, record = hierarchical_estimate(prob, sol.diffusion, prob.basis,
                                              prob.mesh._cache, sol.escape_rate)
    assert true > 0.2
    assert abs(record["escape_rate"] / sol.escape_rate - 1) < 0.05      # the trap
    assert record["layer_peclet"] > PECLET_MAX and est == np.inf


def test_wrong_by_orders_is_large_either_way():
    """μ_h far above the truth (radial OU δ = 0.02, P2 on h = 0.06: 2.4× the exact μ): the
    estimate, relative to μ_{k+1}, is of the size of the true error, not capped at 1."""
    prob, sol = _solved(RADIAL, fp.diffusion.isotropic(0.02), fp.disk_mesh(1.0, 0.06), order=2)
    exact = radial_ou_escape_rate(0.02)
    true = abs(sol.escape_rate / exact - 1)
    est, _, _ = hierarchical_estimate(prob, sol.diffusion, prob.basis, prob.mesh._cache,
                                      sol.escape_rate)
    assert true > 1 and 0.5 <= est / true <= 10


def test_no_estimate_where_it_cannot_be_trusted(monkeypatch):
    """μ_h ≤ 0, a V_{k+1} solve beyond the memory, or μ_{k+1} ≤ 0: inf (never certified)."""
    prob, sol = _solved(RADIAL, fp.diffusion.isotropic(0.02), fp.disk_mesh(1.0, 0.05))
    args = (prob, sol.diffusion, prob.basis, prob.mesh._cache)
    assert hierarchical_estimate(*args, -abs(sol.escape_rate))[0] == np.inf
    monkeypatch.setattr(hierarchical._budget, "available_memory", lambda: 1 << 20)
    est, _, record = hierarchical_estimate(*args, sol.escape_rate)
    assert est == np.inf and record["skipped"] == "memory budget"
    monkeypatch.undo()
    real = enriched_escape_rate
    assert np.isfinite(hierarchical_estimate(*args, sol.escape_rate)[0])
    for bad in ({"escape_rate": -1e-30}, {"trusted": False}):     # μ_{k+1} ≤ 0, flagged
        monkeypatch.setattr(hierarchical, "enriched_escape_rate",
                            lambda *a, bad=bad, **k: {**real(*a, **k), **bad})
        assert hierarchical_estimate(*args, sol.escape_rate)[0] == np.inf


def test_a_failing_enriched_solve_gives_no_estimate_not_an_error(monkeypatch):
    """The P_{k+1} solve is part of the estimate: if its linear algebra fails (singular,
    no convergence), the solve still returns, its μ estimate inf and the reason recorded."""
    from fpsolve.fe.solver import SolverError

    prob, sol = _solved(RADIAL, fp.diffusion.isotropic(0.02), fp.disk_mesh(1.0, 0.05))

    def fail(*a, **k):
        raise SolverError("absorbing solve: interior operator is singular")

    monkeypatch.setattr(hierarchical, "enriched_escape_rate", fail)
    est, _, record = hierarchical_estimate(prob, sol.diffusion, prob.basis, prob.mesh._cache,
                                           sol.escape_rate)
    assert est == np.inf and "singular" in record["skipped"]


def test_paper_small_noise_falls_back_and_stays_uncertified_on_a_coarse_mesh():
    """Δ_S = 0.002 on uniform h = 0.04 (μ_h = 2.3e-34, 2.8e18 × the truth 8.26e-53): the
    DWR weight is not resolved, the fallback runs, μ_{k+1} = −5.4e-38 ≤ 0: inf, flagged."""
    L = fp.landscapes.paper()
    _, sol = _solved(L, fp.diffusion.sgd(L, 0.002, cross_diffusion=True),
                     fp.disk_mesh(2.0, 0.04))
    d = sol.diagnostics
    rec = d["escape_rate_hierarchical"]
    assert sol.escape_rate > 1e-40 and rec["escape_rate"] < 1e-40
    assert sol.error_estimate["escape_rate"] == np.inf and d["untrusted"]
    assert d["escape_rate_estimator"] == "dwr"


def test_a_finite_dual_weighted_estimate_is_kept():
    """Where the DWR estimate is finite nothing changes: no P_{k+1} solve, estimator dwr."""
    _, sol = _solved(RADIAL, fp.diffusion.isotropic(0.05), fp.disk_mesh(1.0, 0.15))
    d = sol.diagnostics
    assert d["escape_rate_estimator"] == "dwr" and "escape_rate_hierarchical" not in d
    assert np.isfinite(sol.error_estimate["escape_rate"])


@pytest.mark.slow
def test_paper_smallest_noise_is_certified_by_the_hierarchical_estimate():
    """Δ_S = 0.002 on uniform h = 0.02 (327k P3 dofs): μ_h = 7.968e-53 is 3.5e-2 below the
    reference 8.260e-53 (± 3e-4); the DWR weight cannot be resolved, μ_{k+1} = 8.267e-53
    (580k P4 dofs) gives |μ_{k+1} − μ_h|/μ_{k+1} = 3.6e-2, reported as 7.2e-2 (factor 2)."""
    from fpsolve.fe import budget

    need = budget.peak_memory(326_587, 3) + 2.5 * 2**30
    if not budget.fits(need):
        pytest.skip(f"needs {budget.format_bytes(need)}")
    L = fp.landscapes.paper()
    _, sol = _solved(L, fp.diffusion.sgd(L, 0.002, cross_diffusion=True),
                     fp.disk_mesh(2.0, 0.02))
    d = sol.diagnostics
    true = abs(sol.escape_rate / 8.260e-53 - 1)
    assert 3e-2 < true < 4e-2
    assert d["escape_rate_estimator"] == "hierarchical"
    assert 0.5 <= sol.error_estimate["escape_rate"] / true <= 10
    assert not d["untrusted"]
