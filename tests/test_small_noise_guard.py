"""The μ estimate is certified only against a previous level (fpsolve.fe.adapt._mu_confirmed)."""
import warnings

import pytest

import fpsolve as fp
from fpsolve.fe import adapt
from fpsolve.theory.exact import radial_ou_escape_rate

RADIAL = fp.landscapes.quadratic([[1.0, 0.0], [0.0, 1.0]])


def test_a_single_level_estimate_is_not_certified():
    """δ = 0.1 on disk_mesh(1.0, 0.3), P3 (370 dofs): μ is 7e-4 off with an estimate of 8e-5.
    Accepted on the first level it would be wrong by 7× tol; one more level makes it right."""
    # the plain discretisation's dual-weighted estimate (the guard serves every model
    # without a Gibbs weight; with it this problem converges on its own, test_gibbs.py)
    sol = fp.solve(RADIAL, fp.diffusion.isotropic(0.1), fp.disk_mesh(1.0, 0.3), order=3,
                   tol=1e-4, goals=["escape_rate"], weighting="none")
    exact = radial_ou_escape_rate(0.1)
    d = sol.diagnostics
    assert d["adapt_converged"] and not d["untrusted"] and len(d["adapt"]) >= 2
    assert abs(sol.escape_rate - exact) <= 1e-4 * exact
    first = d["adapt"][0]
    # the first level's estimate claims tol but the level is 7e-4 off (what the guard is for)
    assert first["estimate"]["escape_rate"] <= 1e-4
    assert abs(first["escape_rate"] - exact) > 5e-4 * exact


def test_an_unconfirmed_estimate_at_the_budget_is_flagged():
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sol = fp.solve(RADIAL, fp.diffusion.isotropic(0.1), fp.disk_mesh(1.0, 0.3), order=3,
                       tol=1e-4, goals=["escape_rate"], max_dofs=500, weighting="none")
    d = sol.diagnostics
    assert not d["adapt_converged"] and d["untrusted"]
    assert sol.error_estimate["escape_rate"] <= 1e-4       # the estimate alone would pass
    msgs = [str(w.message) for w in rec if issubclass(w.category, fp.FPSolveWarning)]
    assert any("escape_rate" in m and "not confirmed (no previous level)" in m for m in msgs)


class _Sol:
    def __init__(self, mu, est):
        self.escape_rate, self.error_estimate = mu, {"escape_rate": est}


@pytest.mark.parametrize("mu,est,prev,confirmed", [
    (3.45e-14, 0.26, 9.07e-12, False),      # Δ_S = 0.002, level 2: μ fell 260× under "0.26"
    (7.6274e-26, 3.5e-4, 7.624e-26, True),  # Δ_S = 0.004, the converged level
    (1e-20, 1e-4, -3e-10, False),           # from a negative μ in one step
    (1e-20, 1e-4, 1e-20 * (1 + 1e-3), True),  # the estimate is 1/10 of the change
])
def test_mu_estimate_must_account_for_the_last_change(mu, est, prev, confirmed):
    assert adapt._mu_confirmed(_Sol(mu, est), {"escape_rate": prev}) is confirmed
    assert adapt._mu_confirmed(_Sol(mu, est), None) is True
    assert adapt._mu_confirmed(_Sol(mu, est), None, first=False) is False
    open_ = adapt._open_goals(_Sol(mu, est), 1e-3, ["escape_rate"], {"escape_rate": prev})
    assert open_ == ([] if confirmed and est <= 1e-3 else ["escape_rate"])


def test_a_level_refined_a_priori_only_cannot_confirm_mu():
    """Review R4: an unchanged μ passes the change test trivially.  After a level whose
    marking did not use μ's indicators (nor had μ certified) μ is not confirmed, however
    well the change agrees; every level record of a μ goal says which it was."""
    sol = _Sol(7.6274e-26, 3.5e-4)
    assert adapt._mu_confirmed(sol, {"escape_rate": 7.6274e-26, "mu_checked": True})
    assert not adapt._mu_confirmed(sol, {"escape_rate": 7.6274e-26, "mu_checked": False})
    run = fp.solve(RADIAL, fp.diffusion.isotropic(0.1), fp.disk_mesh(1.0, 0.3), order=3,
                   tol=1e-4, goals=["escape_rate"]).diagnostics["adapt"]
    assert all("mu_checked" in lev for lev in run)
    assert run[-2]["mu_checked"]         # the converged level is confirmed after a μ-marked one


def test_unconfirmed_warning_names_the_previous_levels_computed_mu():
    """A previous level whose μ was ≤ 0 is recorded with escape_rate NaN: the warning's
    change is computed from its computed μ (escape_rate_flux), never printed as nan."""
    from types import SimpleNamespace

    sol = SimpleNamespace(escape_rate=2.0e-20, error_estimate={"escape_rate": 1e-5},
                          diagnostics={"negative_mass": 0.0, "warnings": [], "adapt": [
                              {"escape_rate": float("nan"), "escape_rate_flux": -2.0e-20},
                              {"escape_rate": 2.0e-20}]})
    adapt._flag_untrusted(sol, ["escape_rate"], 1e-4, "budget")
    (w,) = sol.diagnostics["warnings"]
    assert sol.diagnostics["untrusted"] and "μ changed by 2.0e+00 relative" in w


def test_hierarchical_estimate_is_certified_only_against_a_checked_level():
    """μ_{k+1} − μ_h on one mesh shares that mesh's h-deficits: like the dual-weighted
    estimate, a hierarchical one confirms μ only after a level that could move μ (review
    R2); a level with a finite hierarchical estimate counts as such for the next one."""
    from types import SimpleNamespace

    sol = SimpleNamespace(escape_rate=8.26e-53, error_estimate={"escape_rate": 5e-4},
                          diagnostics={"escape_rate_estimator": "hierarchical"})
    unchanged = {"escape_rate": 8.26e-53}
    assert not adapt._mu_confirmed(sol, {**unchanged, "mu_checked": False})
    assert adapt._mu_confirmed(sol, {**unchanged, "mu_checked": True})
    assert adapt._hierarchical_finite(sol) and not adapt._mu_weights_usable(sol, None)
    sol.error_estimate["escape_rate"] = float("inf")
    assert not adapt._hierarchical_finite(sol)


def test_change_is_measured_from_the_previous_levels_computed_mu():
    """A previous level with μ ≤ 0 has escape_rate NaN in its record: the change test uses
    its computed μ (escape_rate_flux), as before μ ≤ 0 was reported as NaN (with NaN the
    test failed always, and Δ_S = 0.004 took one more level, 182,995 dofs for 176,542)."""
    from types import SimpleNamespace

    sol = SimpleNamespace(escape_rate=4.43e-24, error_estimate={"escape_rate": 0.49})
    previous = {"escape_rate": float("nan"), "escape_rate_flux": -1.21e-23}
    assert adapt._mu_change_explained(sol, previous)
    sol.error_estimate["escape_rate"] = 0.01
    assert not adapt._mu_change_explained(sol, previous)
