"""The shifted inverse iteration of the adaptive levels (fe/eigensolve.py ``shift``, fe/adapt.py
``_next_shift``): the same eigenpair and estimates as the unshifted solve, in fewer sweeps."""
import warnings

import numpy as np
import pytest

import fpsolve as fp
from fpsolve.fe import adapt, eigensolve


@pytest.fixture(scope="module")
def slow_gap():
    """Paper landscape at Δ_S = 0.03 (μ₂/μ₁ = 1.3), P3 on h = 0.16: 5164 dofs."""
    L = fp.landscapes.paper()
    prob = fp.Problem(L, fp.diffusion.sgd(L, 0.03, cross_diffusion=True),
                      fp.disk_mesh(2.0, 0.16), order=3)
    A = prob.operator.A(0.03)
    args = (A, prob.operator.M, prob.operator.M, prob.interior_dofs, prob.boundary_dofs)
    # shift=0.0: the plain unshifted iteration (a plain solve shifts by itself when slow)
    return prob, args, eigensolve._quasi_stationary(*args, shift=0.0)


def test_shift_gives_the_unshifted_eigenpair_in_few_sweeps(slow_gap):
    _, args, (P0, mu0, info0) = slow_gap
    assert info0["stop"]["sweeps"] >= adapt.SHIFT_SWEEPS and info0["stop"]["shift"] == 0.0
    sigma = (1 - adapt.SHIFT_OFFSET) * mu0
    P, mu, info = eigensolve._quasi_stationary(*args, shift=sigma)
    stop = info["stop"]
    assert stop["reason"] == "converged" and stop["shift"] == sigma
    assert stop["sweeps"] <= 10 < info0["stop"]["sweeps"]
    assert "shift_rejected" not in stop
    assert abs(mu / mu0 - 1) < 1e-10
    assert np.max(np.abs(P - P0)) <= 1e-10 * np.max(np.abs(P0))
    assert abs(info["mu_flux"] / info0["mu_flux"] - 1) < 1e-10
    # the LU handed to the estimate is of A − σM
    I = args[3]
    K = (args[0][I][:, I] - sigma * args[1][I][:, I]).tocsc()
    y = np.linspace(1.0, 2.0, I.size)
    assert np.max(np.abs(info["lu"].solve(K @ y) - y)) < 1e-6


@pytest.mark.parametrize("factor", [1.01, 1.2, 1.25])
def test_shift_beyond_the_principal_eigenvalue_is_rejected(slow_gap, factor):
    """σ above μ₁ (μ moved further than the previous level's estimate allowed): nearest σ
    is μ₁ from above (1.01) or μ₂ (1.2·μ₁, 1.25·μ₁; μ₂ = 1.3·μ₁, inside the window from
    1.25·μ₁ on, rejected because its density changes sign); no result is kept, the level
    is solved again without the shift: the unshifted pair, the rejection recorded."""
    _, args, (P0, mu0, info0) = slow_gap
    P, mu, info = eigensolve._quasi_stationary(*args, shift=factor * mu0)
    stop = info["stop"]
    assert stop["shift"] == 0.0 and stop["shift_rejected"]["shift"] == factor * mu0
    assert stop["reason"] == "converged"
    assert stop["sweeps"] > info0["stop"]["sweeps"]       # both iterations counted
    assert mu == mu0 and np.array_equal(P, P0)


def test_shifted_level_has_the_same_estimates(slow_gap):
    """A Problem solved with ``_shift`` (as the adaptive loop does): same P, μ and error
    estimates as without (the duals' iterations use the shifted LU, stopping at 1e-7)."""
    prob, _, (P0, mu0, _) = slow_gap
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)
        cold = prob.solve()
        prob._shift = (1 - adapt.SHIFT_OFFSET) * mu0
        try:
            warm = prob.solve()
        finally:
            prob._shift = None
    assert warm.diagnostics["solver"]["stop"]["shift"] == (1 - adapt.SHIFT_OFFSET) * mu0
    assert cold.diagnostics["solver"]["stop"]["shift"] > 0     # shifted itself when slow
    assert np.max(np.abs(warm.P - cold.P)) <= 1e-10 * np.max(np.abs(cold.P))
    assert abs(warm.escape_rate / cold.escape_rate - 1) < 1e-10
    for k, v in cold.error_estimate.items():
        assert warm.error_estimate[k] == pytest.approx(v, rel=1e-5), k


def test_adaptive_levels_are_shifted_with_the_same_result(monkeypatch):
    """Δ_S = 0.03, P3 from h = 0.16, tol = 1e-4 on ⟨x²⟩: the levels after the first are
    shifted (few sweeps each, recorded per level) and give the levels, ⟨x²⟩ and μ of the
    unshifted loop."""
    L = fp.landscapes.paper()
    D = fp.diffusion.sgd(L, 0.03, cross_diffusion=True)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fp.FPSolveWarning)
            return fp.solve(L, D, fp.disk_mesh(2.0, 0.16), order=3, tol=1e-4, goals=["x2"])

    sol = run()
    levels = sol.diagnostics["adapt"]
    assert len(levels) >= 3 and sol.diagnostics["adapt_converged"]
    # level 0 shifts itself after SLOW_SWEEPS sweeps; the next levels start shifted
    assert 0 < levels[0]["shift"] and levels[0]["sweeps"] > eigensolve.SLOW_SWEEPS
    assert all(0 < lv["shift"] < lv["escape_rate"] and lv["sweeps"] <= 10
               for lv in levels[1:])
    monkeypatch.setattr(adapt, "SHIFT_SWEEPS", 10 ** 6)        # no level shifted
    monkeypatch.setattr(eigensolve, "SLOW_SWEEPS", 10 ** 6)
    cold = run()
    assert [lv["dofs"] for lv in cold.diagnostics["adapt"]] == [lv["dofs"] for lv in levels]
    assert all(lv["shift"] == 0.0 for lv in cold.diagnostics["adapt"])
    x2 = [s.expectation(lambda x, y: x * x) for s in (sol, cold)]
    assert abs(x2[0] / x2[1] - 1) < 1e-10
    assert abs(sol.escape_rate / cold.escape_rate - 1) < 1e-10
    assert sol.error_estimate["x2"] == pytest.approx(cold.error_estimate["x2"], rel=1e-5)


def test_shift_at_an_eigenvalue_falls_back(slow_gap, monkeypatch):
    """A shifted factorisation that fails (σ exactly an eigenvalue: singular) leaves the
    level to the unshifted solve, with the rejection recorded."""
    _, args, (P0, mu0, _) = slow_gap
    real = eigensolve._interior_lu
    calls = []

    def singular_once(K, reuse, min_size):
        calls.append(K)
        if len(calls) == 1:
            raise eigensolve.SolverError("absorbing solve: interior operator is singular")
        return real(K, reuse, min_size)

    monkeypatch.setattr(eigensolve, "_interior_lu", singular_once)
    P, mu, info = eigensolve._quasi_stationary(*args, shift=0.99 * mu0)
    assert len(calls) == 2 and info["stop"]["shift"] == 0.0
    assert np.isnan(info["stop"]["shift_rejected"]["eigenvalue"])
    assert mu == mu0 and np.array_equal(P, P0)


def test_left_eigenvector_ratio_is_mu_over_lambda2_or_unknown_with_a_shifted_lu(slow_gap):
    """The weight's guard reads ``ratio`` as μ/λ₂ (estimate._weight_subdomain).  With the LU
    of A − σM the iteration contracts by (μ − σ)/(λ₂ − σ) in 2-3 steps, too few to measure
    it: the ratio is reported unknown (1), never the shifted contraction (review R2)."""
    from fpsolve.fe import estimate
    _, (A, Mstab, M, I, B), (P0, mu0, info0) = slow_gap
    infos = []
    for sigma in (0.0, (1 - adapt.SHIFT_OFFSET) * mu0):
        K = (A[I][:, I] - sigma * Mstab[I][:, I]).tocsc()
        dual = estimate.DualSolver(lu=eigensolve.spla.splu(K), idx=I, N=A.shape[0], A=A,
                                   Mop=Mstab, mu=mu0, shift=sigma)
        info = {}
        estimate._left_eigenvector(dual, tol=1e-10, maxit=200, info=info)
        infos.append(info)
    (plain, shifted) = infos
    assert abs(shifted["mu"] / mu0 - 1) < 1e-6 and abs(plain["mu"] / mu0 - 1) < 1e-6
    assert 0.7 < plain["ratio"] < 0.85          # μ₁/μ₂ = 1/1.3
    assert shifted["ratio"] == 1.0


def test_slow_plain_solve_goes_on_shifted(slow_gap):
    """A plain solve (no shift asked) whose iteration still moves after SLOW_SWEEPS sweeps
    continues with A − σM, σ just below its μ estimate: the unshifted eigenpair to 1e-10 in
    a fraction of the sweeps, and the LU handed to the estimate is of A − σM."""
    _, args, (P0, mu0, info0) = slow_gap
    P, mu, info = eigensolve._quasi_stationary(*args)
    stop = info["stop"]
    assert stop["reason"] == "converged" and 0 < stop["shift"] < mu
    assert "shift_rejected" not in stop
    assert eigensolve.SLOW_SWEEPS < stop["sweeps"] <= eigensolve.SLOW_SWEEPS + 5
    assert stop["sweeps"] * 3 < info0["stop"]["sweeps"]
    assert abs(mu / mu0 - 1) < 1e-10
    assert np.max(np.abs(P - P0)) <= 1e-10 * np.max(np.abs(P0))
    I = args[3]
    K = (args[0][I][:, I] - stop["shift"] * args[1][I][:, I]).tocsc()
    b = np.linspace(1.0, 2.0, I.size)       # σ is within 1e-6 of μ: check the backward error
    x = info["lu"].solve(b)
    assert np.max(np.abs(K @ x - b)) < 1e-12 * np.max(abs(K) @ np.abs(x))


def test_slow_shift_that_finds_another_pair_falls_back(slow_gap, monkeypatch):
    """A σ that lands nearer μ₂ (1.25·μ₁; μ₂ = 1.3·μ₁) finds a density that changes sign:
    rejected, recorded, and the unshifted iteration goes on from the slow iterate."""
    _, args, (P0, mu0, info0) = slow_gap
    monkeypatch.setattr(eigensolve, "_slow_shift", lambda mu, dmu: 1.25 * mu)
    P, mu, info = eigensolve._quasi_stationary(*args)
    stop = info["stop"]
    assert stop["shift"] == 0.0 and stop["shift_rejected"]["eigenvalue"] > 1.2 * mu0
    assert stop["reason"] == "converged"
    assert abs(mu / mu0 - 1) < 1e-10
    assert np.max(np.abs(P - P0)) <= 1e-10 * np.max(np.abs(P0))


def test_slow_shift_offset_bounds():
    """σ = μ(1 − 3|Δμ|/μ) within [1e-6, 1e-2] of μ; no shift for a μ that is not positive."""
    assert eigensolve._slow_shift(1.0, 1e-3) == pytest.approx(1.0 - 3e-3)
    assert eigensolve._slow_shift(2.0, 1e-12) == pytest.approx(2.0 * (1 - 1e-6))
    assert eigensolve._slow_shift(2.0, 0.5) == pytest.approx(2.0 * (1 - 1e-2))
    assert eigensolve._slow_shift(-1e-20, 1e-22) is None and eigensolve._slow_shift(np.nan, 0) is None
