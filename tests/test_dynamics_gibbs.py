"""Transients of Gibbs-weighted problems (fpsolve.fe.gibbs_dynamics): u = P/w evolved on the
weighted pencil, on the mesh the Gibbs loop adapts for u, against exact radial OU answers."""
import warnings

import numpy as np
import pytest

import fpsolve as fp
from fpsolve.fe.dynamics import evolve_problem
from fpsolve.theory.exact import radial_ou_escape_rate

RADIAL = fp.landscapes.quadratic(np.eye(2))
DELTA = 0.02
D = fp.diffusion.isotropic(DELTA)


@pytest.fixture(scope="module")
def adapted():
    """The radial OU mesh the Gibbs loop adapts for u (P3 from h = 0.2, tol 1e-4 on μ): fine
    in the boundary layer, coarse where P is exponentially small."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)
        sol = fp.solve(RADIAL, D, fp.disk_mesh(1.0, 0.2), order=3, tol=1e-4,
                       goals=["escape_rate"])
    assert sol.diagnostics["weighting"] == "gibbs"
    return sol.mesh


def _problems(mesh, boundary):
    return tuple(fp.Problem(RADIAL, D, mesh, boundary=boundary, order=3, weighting=w)
                 for w in ("gibbs", "none"))


def _l1(a, b) -> float:
    """∫|P_a − P_b| dA with each density as its own integrals see it (w exact if weighted)."""
    _, _, Pa, dx = a._quadrature()
    return float(np.sum(np.abs(Pa - b._quadrature()[2]) * dx))


def test_reflecting_transient_relaxes_to_the_weighted_density(adapted):
    """Reflecting, from N(0, 2δI): the weighted transient conserves mass and ends on the
    weighted stationary density (measured L1 1e-10); the plain semi-discretisation on the
    same mesh ends 3.5e-4 away from it (its own, worse, stationary state)."""
    weighted, plain = _problems(adapted, "reflecting")
    st = weighted.solve()
    p0 = fp.gaussian([0, 0], 2 * DELTA * np.eye(2))
    ev = evolve_problem(weighted, p0, [0.0, 1.0, 20.0], tol=1e-6)
    evp = evolve_problem(plain, p0, [0.0, 1.0, 20.0], tol=1e-6)
    assert ev.stats["weighting"] == "gibbs" and "weighting" not in evp.stats
    assert ev.stats["initial_L1_error"] < 1e-3 and not ev.diagnostics["untrusted"]
    assert np.abs(ev.mass - 1).max() <= 1e-12
    last = ev[-1]
    assert last.weight is not None and last.diagnostics["weighting"] == "gibbs"
    assert _l1(last, st) <= 1e-8
    assert _l1(evp[-1], st) >= 1e-4
    # integrals and point values use w exactly, as the stationary Solution's
    assert last.moments()["cov"] == pytest.approx(st.moments()["cov"], rel=1e-8, abs=1e-14)
    pts = np.array([[0.0, 0.0], [0.3, 0.1], [0.0, 0.7]])
    np.testing.assert_allclose(last(pts), st(pts), rtol=1e-7)
    np.testing.assert_allclose(ev.P[-1], ev.u[-1] * st.weight(*st.basis.doflocs), rtol=1e-15)


def test_absorbing_mass_decays_at_the_escape_rate(adapted):
    """Absorbing, from N(0, 2δI): S(t) decays at the exact μ = 6.65e-10 (Kummer root) and
    P(t)/S(t) ends on the weighted quasi-stationary density; the plain operator on the same
    mesh decays 1.6 % too slowly and ends 3.5e-4 (L1) away."""
    weighted, plain = _problems(adapted, "absorbing")
    qsd = weighted.solve()
    mu = radial_ou_escape_rate(DELTA)
    times = [0.0, 10.0, 20.0]
    ev = evolve_problem(weighted, fp.gaussian([0, 0], 2 * DELTA * np.eye(2)), times, tol=1e-6)
    decay = -np.log(ev.mass[2] / ev.mass[1]) / (times[2] - times[1])
    assert decay == pytest.approx(mu, rel=1e-3)
    assert ev.escape_rate[-1] == pytest.approx(mu, rel=1e-3)
    assert _l1(ev[-1], qsd) <= 1e-8
    evp = evolve_problem(plain, fp.gaussian([0, 0], 2 * DELTA * np.eye(2)), times, tol=1e-6)
    assert abs(evp.escape_rate[-1] / mu - 1) > 1e-2
    assert _l1(evp[-1], qsd) >= 1e-4
    # from the quasi-stationary Solution itself (its u, no projection): pure exponential
    ev = evolve_problem(weighted, qsd, times, tol=1e-6)
    assert ev.stats["initial_L1_error"] == 0.0 and not ev.diagnostics["escape_rate_untrusted"]
    np.testing.assert_allclose(1 - ev.mass, 1 - np.exp(-qsd.escape_rate * np.array(times)),
                               rtol=1e-5, atol=1e-14)
    np.testing.assert_allclose(ev.escape_rate, qsd.escape_rate, rtol=1e-6)


def test_ou_relaxation_of_x2_to_the_steppers_accuracy():
    """⟨x²⟩(t) = δ + (⟨x²⟩₀ − δ)e^(−2t) (isotropic OU, far from the boundary) from N(0, δ/2·I)
    on a mesh that resolves it: within a few tol (measured 4e-6 at tol 1e-6, 1.9e-7 at
    1e-8, as the plain operator: the stepper's global error ∝ tol^(2/3))."""
    mesh = fp.disk_mesh(1.0, 0.1)
    weighted, plain = _problems(mesh, "reflecting")
    v0, times = DELTA / 2, [0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0]
    exact = DELTA + (v0 - DELTA) * np.exp(-2 * np.array(times))
    errs = {}
    for name, prob in (("gibbs", weighted), ("none", plain)):
        for tol in (1e-6, 1e-8):
            ev = evolve_problem(prob, fp.gaussian([0, 0], v0 * np.eye(2)), times, tol=tol)
            x2 = np.array([s.moments()["cov"][0, 0] for s in ev])
            errs[name, tol] = np.abs(x2 / exact - 1).max()
    assert errs["gibbs", 1e-6] <= 10 * 1e-6
    assert errs["gibbs", 1e-8] <= errs["gibbs", 1e-6] / 10
    assert errs["gibbs", 1e-8] == pytest.approx(errs["none", 1e-8], rel=0.2)


def test_initial_density_the_mesh_cannot_represent(adapted):
    """p0/w varying faster than the adapted mesh resolves is flagged (relative L1 error of
    w·u₀ > 1e-3) or refused (> 0.1), never evolved silently."""
    weighted, _ = _problems(adapted, "reflecting")
    with pytest.warns(fp.FPSolveWarning, match="initial density represented"):
        ev = evolve_problem(weighted, fp.gaussian([0.7, 0.0], 1e-3 * np.eye(2)), [0.0, 0.1])
    assert 1e-3 < ev.stats["initial_L1_error"] <= 0.1
    assert ev.diagnostics["untrusted"] and ev[1].diagnostics["untrusted"]
    with pytest.raises(ValueError, match="p0: the Gibbs-weighted discretisation cannot"):
        evolve_problem(weighted, fp.gaussian([0.9, 0.0], 1e-4 * np.eye(2)), [0.0, 0.1])


def test_outflow_rate_that_is_not_positive_is_nan_and_warned():
    """δ = 0.01 (μ = 1.9e-20) from N(0, δ/2·I): the projected u₀ near the absorbing circle
    (where P₀ ~ e^(−100)) gives a negative outflow (−4e-31): reported as NaN with a warning
    and the raw value, the density itself not flagged."""
    delta = 0.01
    Dd = fp.diffusion.isotropic(delta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)
        mesh = fp.solve(RADIAL, Dd, fp.disk_mesh(1.0, 0.2), order=3, tol=1e-4,
                        goals=["escape_rate"]).mesh
    prob = fp.Problem(RADIAL, Dd, mesh, order=3, weighting="gibbs")
    with pytest.warns(fp.FPSolveWarning, match="outflow rate of the transient not positive"):
        ev = evolve_problem(prob, fp.gaussian([0, 0], delta / 2 * np.eye(2)), [0.0])
    assert np.isnan(ev.escape_rate[0]) and ev.diagnostics["escape_rate_flux"][0.0] < 0
    assert not ev.diagnostics["untrusted"] and np.isnan(ev[0].escape_rate)
    assert ev.diagnostics["escape_rate_untrusted"] and ev[0].diagnostics["escape_rate_untrusted"]
    assert ev.summary()["warnings"] == ev.diagnostics["warnings"]


def test_outflow_rates_flagged_where_the_barrier_is_high():
    """δ = 0.005 (100 nats): the transient's outflow rates from a projected p0 are marked
    untrusted before any step (measured 28·μ at t = 20 on the Gibbs-adapted mesh); the
    density is not flagged."""
    prob = fp.Problem(RADIAL, fp.diffusion.isotropic(0.005), fp.disk_mesh(1.0, 0.25), order=2,
                      weighting="gibbs")
    with pytest.warns(fp.FPSolveWarning) as rec:       # (here t = 0's rate is negative too)
        ev = evolve_problem(prob, fp.gaussian([0, 0], 0.005 * np.eye(2)), [0.0])
    assert any("100 nats" in str(w.message) and "escape rates are untrusted" in str(w.message)
               for w in rec)
    assert ev.diagnostics["escape_rate_untrusted"] and not ev.diagnostics["untrusted"]
    assert ev.summary()["escape_rate_untrusted"]


GIBBS_TIME_STUDY = """
[landscape]
kind = "quadratic"
A = [[1.0, 0.0], [0.0, 1.0]]
[noise]
kind = "isotropic"
delta = 0.02
[mesh]
radius = 1.0
h = 0.2
[solver]
order = 3
boundary = "absorbing"
tol = 1e-4
goals = ["escape_rate"]
[output]
figures = false
panel = false
flux = false
vtk = false
[time]
t_end = 20.0
n_out = 3
tol = 1e-6
initial_mean = [0.0, 0.0]
initial_cov = [[0.04, 0.0], [0.0, 0.04]]
spectrum = 3
"""


def test_study_time_section_of_a_gibbs_case_is_weighted(tmp_path):
    """[time] of an adapted Gibbs case runs on the weighted pencil of the adapted mesh: the
    transient ends on the case's density (L1 ≤ 1e-8) with the exact escape rate, and the
    spectrum is the weighted pencil's (review R23: μ, then the OU rates 1, 1)."""
    from fpsolve.study import load_study, run_study

    path = tmp_path / "gibbs_time.toml"
    path.write_text(GIBBS_TIME_STUDY)
    res = run_study(load_study(str(path)), str(tmp_path / "out"))
    case = res.summary["cases"][0]
    assert case["diagnostics"]["weighting"] == "gibbs"
    tr = case["time"]
    assert tr["weighting"] == "gibbs" and tr["initial_L1_error"] < 1e-3
    assert tr["dofs"] == case["dofs"]
    assert tr["distance_to_stationary"][0] > 0.1 and tr["distance_to_stationary"][-1] <= 1e-8
    assert tr["escape_rate"][-1] == pytest.approx(radial_ou_escape_rate(DELTA), rel=1e-3)
    assert tr["untrusted"] is False and tr["escape_rate_untrusted"] is False
    assert tr["warnings"] == []
    rates = case["spectrum"]["rates_real"]
    assert rates[0] == pytest.approx(radial_ou_escape_rate(DELTA), rel=1e-3)
    np.testing.assert_allclose(rates[1:], [1.0, 1.0], atol=1e-4)
