"""The Gibbs-weighted discretisation of detailed-balance problems (fpsolve.fe.gibbs)."""
import functools
import warnings

import numpy as np
import pytest

import fpsolve as fp
from fpsolve.fe.adapt import NEGATIVE_MASS
from fpsolve.theory.exact import radial_ou_escape_rate

RADIAL = fp.landscapes.quadratic([[1.0, 0.0], [0.0, 1.0]])


@functools.lru_cache(maxsize=None)
def _adapted_with_warnings(delta: float):
    """The radial OU problem adapted by the Gibbs loop (P3 from h = 0.2, tol 1e-4 on μ) and
    the FPSolveWarnings it gave; shared by the tests that use it (it is not modified)."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sol = fp.solve(RADIAL, fp.diffusion.isotropic(delta), fp.disk_mesh(1.0, 0.2),
                       order=3, tol=1e-4, goals=["escape_rate"])
    return sol, [str(w.message) for w in rec if issubclass(w.category, fp.FPSolveWarning)]


def _adapted(delta: float):
    return _adapted_with_warnings(delta)[0]


def test_reflecting_gibbs_density_is_exact():
    """Reflecting: u = const is the discrete solution, so P is the Gibbs density and ⟨x²⟩
    is exact up to quadrature (truncated Gaussian on the unit disk)."""
    delta = 0.02
    sol = fp.solve(RADIAL, fp.diffusion.isotropic(delta), fp.disk_mesh(1.0, 0.1), order=2,
                   boundary="reflecting", weighting="gibbs")
    u = sol.P / sol.weight(*sol.basis.doflocs)
    assert np.ptp(u) <= 1e-10 * np.abs(u).max()
    z = 1.0 / (2 * delta)
    r2 = 2 * delta - np.exp(-z) / (1 - np.exp(-z))          # ⟨r²⟩ of the truncated Gaussian
    assert sol.moments()["cov"][0, 0] == pytest.approx(r2 / 2, rel=1e-8)
    assert sol.mass == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("delta", [0.1, 0.05, 0.02, 0.01, 0.005])
def test_escape_rate_to_tol_from_a_coarse_mesh(delta):
    """Issue #17: radial OU escape rates with tol = 1e-4 match the Kummer roots to 1e-3 (down
    to μ = 7.4e-42 at δ = 0.005), with an honest estimate, from h = 0.2."""
    sol, warned = _adapted_with_warnings(delta)
    assert warned == []
    exact = radial_ou_escape_rate(delta)
    d, err = sol.diagnostics, abs(sol.escape_rate - exact) / exact
    assert d["weighting"] == "gibbs" and d["escape_rate_estimator"] == "gibbs"
    assert d["adapt_converged"] and not d["untrusted"]
    assert err <= 1e-3
    assert 0.5 * err <= sol.error_estimate["escape_rate"] <= 1e-4
    assert d["negative_mass"] <= NEGATIVE_MASS


@pytest.mark.parametrize("order, h", [(1, 0.3), (2, 0.3), (1, 0.4)])
def test_moment_estimate_is_honest(order, h):
    """⟨x²⟩ of the absorbing problem against a 4× finer P3 solve: the estimate (P_k against
    P_{k+1}, factor 2) lies within [0.5, 10] of the true error (measured 1.6-1.7)."""
    D = fp.diffusion.isotropic(0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)
        coarse = fp.solve(RADIAL, D, fp.disk_mesh(1.0, h), order=order, weighting="gibbs")
        fine = fp.solve(RADIAL, D, fp.disk_mesh(1.0, h / 4), order=3, weighting="gibbs")
    x2c, x2f = coarse.moments()["cov"][0, 0], fine.moments()["cov"][0, 0]
    err = abs(x2c - x2f) / x2f
    assert err > 1e-4                  # measurable: the test can fail
    assert 0.5 * err <= coarse.error_estimate["x2"] <= 10 * err


def test_weighting_errors():
    L = fp.landscapes.paper()
    with pytest.raises(ValueError, match="weighting='gibbs': the model is not in detailed"):
        fp.solve(L, fp.diffusion.sgd(L, 0.01), fp.disk_mesh(2.0, 0.3), weighting="gibbs")
    with pytest.raises(ValueError, match="weighting: expected one of"):
        fp.solve(RADIAL, fp.diffusion.isotropic(0.1), fp.disk_mesh(1.0, 0.3),
                 weighting="boltzmann")


def test_auto_and_none():
    """'auto' weights only adaptive solves of detailed-balance models; 'none' never."""
    D = fp.diffusion.isotropic(0.1)
    fixed = fp.solve(RADIAL, D, fp.disk_mesh(1.0, 0.3), order=2)
    assert "weighting" not in fixed.diagnostics and fixed.weight is None
    plain = fp.solve(RADIAL, D, fp.disk_mesh(1.0, 0.3), order=3, tol=1e-3,
                     goals=["escape_rate"], weighting="none")
    assert "weighting" not in plain.diagnostics
    assert plain.diagnostics["escape_rate_estimator"] != "gibbs"
    # the same μ both ways, within their tolerances
    auto = fp.solve(RADIAL, D, fp.disk_mesh(1.0, 0.3), order=3, tol=1e-3, goals=["escape_rate"])
    assert auto.diagnostics["weighting"] == "gibbs"
    assert auto.escape_rate == pytest.approx(plain.escape_rate, rel=2e-3)


def test_moments_to_tol_where_u_is_flat():
    """Where u is flat the quadrature of w is the moments' only error: the estimate must see
    it (review W3) and the loop refine it away.  δ = 0.005: ⟨x²⟩ = δ to ~e^(−90)."""
    delta = 0.005
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)   # μ is not a goal: flagged
        sol = fp.solve(RADIAL, fp.diffusion.isotropic(delta), fp.disk_mesh(1.0, 0.2), order=3,
                       tol=1e-6, goals=["x2", "y2"])
    assert sol.diagnostics["adapt_converged"] and sol.diagnostics["weighting"] == "gibbs"
    # the first level's estimate saw the quadrature error (2.1e-4 at the P3 rule on h = 0.2)
    assert sol.diagnostics["adapt"][0]["estimate"]["x2"] > 1e-4
    for g, f in (("x2", lambda x, y: x * x), ("y2", lambda x, y: y * y)):
        err = abs(sol.expectation(f) - delta) / delta
        assert err <= 1e-6
        assert sol.error_estimate[g] >= 0.5 * err


def test_l1_estimate_sees_the_normaliser():
    """The reported density is normalised at the solve's own quadrature of w; where w is
    not resolved that normaliser is off and so is P at every point (δ = 0.005 on P1,
    h = 0.2: 4 %).  The L1 estimate must see it (it read 1e-15: redteam F2) and the loop
    refine it away."""
    delta = 0.005
    Z = 2 * np.pi * delta * (1 - np.exp(-1 / (2 * delta)))
    D, origin = fp.diffusion.isotropic(delta), np.array([[0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)
        coarse = fp.solve(RADIAL, D, fp.disk_mesh(1.0, 0.2), order=1, boundary="reflecting",
                          weighting="gibbs")
        sol = fp.solve(RADIAL, D, fp.disk_mesh(1.0, 0.2), order=1, boundary="reflecting",
                       tol=1e-3, goals=["L1"])
    err = abs(coarse(origin)[0] * Z - 1)
    assert err > 1e-2                       # measurable: the test can fail
    assert 0.5 * err <= coarse.error_estimate["L1"] <= 10 * err
    assert sol.diagnostics["weighting"] == "gibbs" and sol.diagnostics["adapt_converged"]
    assert abs(sol(origin)[0] * Z - 1) <= 1e-3


def test_marginal_of_a_weighted_density_integrates_the_weight():
    """The marginal's line quadrature (order + 1 Gauss points per segment: exact for the
    FE function) is not exact for w·u: radial OU δ = 0.005, P2 adapted to L1 ≤ 1e-4 (4e-7
    off), the marginal at x = 0.05 was 1.3e-4 off; with Solution.line_points it is the
    solution's own accuracy."""
    delta = 0.005
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)
        sol = fp.solve(RADIAL, fp.diffusion.isotropic(delta), fp.disk_mesh(1.0, 0.3), order=2,
                       boundary="reflecting", tol=1e-4, goals=["L1"])
    assert sol.diagnostics["weighting"] == "gibbs" and sol.line_points(3) > 3
    xs = np.array([0.0, 0.05, 0.1, 0.2])
    exact = np.exp(-xs ** 2 / (2 * delta)) / np.sqrt(2 * np.pi * delta)
    np.testing.assert_allclose(sol.marginal("x", xs), exact, rtol=2e-6)


def test_spectrum_of_the_weighted_pencil():
    """The spectrum of a Gibbs-weighted problem is that of its (scaled) weighted pencil, with
    density modes P = w·u: on the mesh the loop adapted for u the radial OU rates 1, 1, 2
    (exact up to e^(−25) at δ = 0.02) come out ≤ 1e-4 off (measured 5e-6; at δ = 0.01
    1e-6 … 3e-5, where the plain pencil on its mesh is 2e-4 … 2e-2 off, review R5); the
    first rate is the outflow μ and the first mode the quasi-stationary density."""
    delta = 0.02
    D = fp.diffusion.isotropic(delta)
    sol = _adapted(delta)
    weighted = fp.Problem(RADIAL, D, sol.mesh, order=3, weighting="gibbs")
    sw = weighted.spectrum(k=4)
    assert np.abs(sw.rates[1:].real - [1.0, 1.0, 2.0]).max() <= 1e-4
    assert sw.rates[0].real == pytest.approx(radial_ou_escape_rate(delta), rel=1e-3)
    mode = sw.modes[0].real
    np.testing.assert_allclose(mode / mode.max(), sol.P / sol.P.max(), atol=1e-6)
    # MFPT and dynamics use the unweighted operator
    plain = fp.Problem(RADIAL, D, sol.mesh, order=3, weighting="none")
    assert weighted.plain_operator() is not weighted.operator
    assert plain.plain_operator() is plain.operator


def test_point_values_and_marginals_use_the_weight():
    """sol(points), marginal() and mode() of a weighted solution evaluate w·u with w exact:
    the reflecting Gibbs density at δ = 0.01 on a mesh (h = 0.2) far coarser than its
    width 0.1, where the nodal interpolant is off by tens of percent."""
    delta = 0.01
    sol = fp.solve(RADIAL, fp.diffusion.isotropic(delta), fp.disk_mesh(1.0, 0.2), order=2,
                   boundary="reflecting", weighting="gibbs")
    z = 1.0 / (2 * delta)
    Z = 2 * np.pi * delta * (1 - np.exp(-z))             # ∫ e^(−r²/2δ) over the unit disk
    pts = np.array([[0.0, 0.0], [0.05, 0.02], [-0.11, 0.07]])
    exact = np.exp(-(pts ** 2).sum(1) / (2 * delta)) / Z
    # 1e-3: the normalisation ∫w·u carries the P2 rule's quadrature error on h = 0.2 (8e-5)
    np.testing.assert_allclose(sol(pts), exact, rtol=1e-3)
    from fpsolve.fe.assembly import evaluate
    assert abs(evaluate(sol.basis, sol.P, pts[1:2])[0] / exact[1] - 1) > 1e-2  # interpolant
    xs = np.array([0.0, 0.1])
    # ∫ P(x, y) dy over the chord: Gaussian in y, truncated far beyond its width
    marg = np.exp(-xs ** 2 / (2 * delta)) * np.sqrt(2 * np.pi * delta) / Z
    np.testing.assert_allclose(sol.marginal("x", xs), marg, rtol=1e-3)
    np.testing.assert_allclose(sol.mode(), [0.0, 0.0], atol=1e-6)


def test_pointwise_current_of_a_weighted_solution():
    """Detailed balance: J = 0 up to μ's scale.  The pointwise J of fp.flux(sol) uses w
    exactly (review R1: the interpolant's J was 1e-3 in the bulk for J_L2 = 3e-10)."""
    sol = _adapted(0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)
        fl = fp.flux(sol)
    pts = np.array([[0.1, 0.0], [0.2, 0.05], [0.3, 0.0]])
    assert np.abs(fl(pts)).max() <= 1e-8
    assert fl.diagnostics["outflow_residual"] == pytest.approx(sol.escape_rate, rel=1e-10)
    # outside the mesh P is 0 (also where the weight has no value: here it has one)
    assert sol(np.array([[3.0, 0.0]]))[0] == 0.0


def test_mfpt_of_a_weighted_problem():
    """The MFPT of a Gibbs-weighted problem uses its weighted pencil (T in the plain space,
    A_IIᵀ t = M_IIᵀ 1 with trial functions w·φ_j): on the mesh the loop adapted for u,
    T(0) = ½ Ein(1/2δ) at δ = 0.01 to 2e-5, where the plain operator is wrong by orders."""
    from fpsolve.fe.mfpt import mfpt_problem
    from fpsolve.theory.exact import radial_ou_mfpt

    delta = 0.01
    D = fp.diffusion.isotropic(delta)
    sol = _adapted(delta)
    exact = radial_ou_mfpt(0.0, delta)
    m = mfpt_problem(fp.Problem(RADIAL, D, sol.mesh, order=3, weighting="gibbs"))
    assert m(np.array([[0.0, 0.0]]))[0] == pytest.approx(exact, rel=1e-3)
    assert m.escape_rate * m.mean_qsd == pytest.approx(1.0, rel=1e-10)
    assert set(m.diagnostics["stop"]) <= {"converged", "stalled"}   # no ARPACK fallback
    assert m.escape_rate == pytest.approx(sol.escape_rate, rel=1e-10)
    assert fp.mfpt(RADIAL, D, sol.mesh, order=3, weighting="gibbs").T == pytest.approx(m.T)
    plain = mfpt_problem(fp.Problem(RADIAL, D, sol.mesh, order=3, weighting="none"))
    assert not plain(np.array([[0.0, 0.0]]))[0] == pytest.approx(exact, rel=0.5)


def test_reflecting_weighted_solve_is_scaled():
    """Reflecting, δ = 0.005: the exact discrete u is constant; unscaled, the pinned LU gave
    u/u(0) up to 1e25 in the tails, unflagged (review R8); scaled: 4e-5 at r ≈ 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)
        for kw in ({"tol": 1e-6}, {"weighting": "gibbs"}):
            sol = fp.solve(RADIAL, fp.diffusion.isotropic(0.005), fp.disk_mesh(1.0, 0.2),
                           order=3, boundary="reflecting", **kw)
            u = sol.P / sol.weight(*sol.basis.doflocs)
            r = np.hypot(*sol.basis.doflocs)
            dev = np.abs(u / u[np.argmin(r)] - 1)
            # the LU's normwise error grows towards the tails, where w ~ e^(−100): 4e-5
            assert dev.max() <= 1e-3 and dev[r < 0.5].max() <= 1e-10, kw


STUDY = """
[landscape]
kind = "quadratic"
A = [[1.0, 0.0], [0.0, 1.0]]
[noise]
kind = "isotropic"
delta = 0.01
[mesh]
radius = 1.0
h = 0.2
[solver]
order = 3
tol = 1e-4
goals = ["x2", "escape_rate"]
[output]
vtk = false
figures = false
panel = false
flux = false
[[case]]
name = "ou"
"""


def test_study_case_rebuilt_as_a_weighted_solution(tmp_path):
    """A study of a detailed-balance model takes the Gibbs path; a finished case rebuilt
    from its coefficients (panels of reused cases) is a weighted solution again, with the
    moments summary.json reports (review R10)."""
    import json

    from fpsolve.study import load_study, run_study
    from fpsolve.study.runner import _rebuild_solution

    path = tmp_path / "ou.toml"
    path.write_text(STUDY)
    out = tmp_path / "out"
    res = run_study(load_study(str(path)), str(out))
    c = res.summary["cases"][0]
    assert c["diagnostics"]["weighting"] == "gibbs"
    assert c["escape_rate"] == pytest.approx(radial_ou_escape_rate(0.01), rel=1e-3)
    case = load_study(str(path)).cases[0]
    rec = json.loads((out / "cases" / "ou.json").read_text())
    sol = _rebuild_solution(str(out), case, rec, {})
    assert sol.weight is not None
    assert sol.expectation(lambda x, y: x * x) == pytest.approx(0.01, rel=1e-4)


def test_auto_needs_rare_escape():
    """'auto' takes the Gibbs weight for an absorbing problem only where the boundary is ≥ 10
    nats above the minimum: with the minimum of L on the circle the density is far from
    Gibbs (u = P/w spans 1e11) and its estimate under-read 100× (review R11).  'gibbs' is
    refused there."""
    D = fp.diffusion.isotropic(0.01)
    edge = fp.landscapes.quadratic([[1.0, 0.0], [0.0, 1.0]], center=(1.0, 0.0))
    sol = fp.solve(edge, D, fp.disk_mesh(1.0, 0.2), order=3, tol=1e-4, goals=["escape_rate"])
    assert "weighting" not in sol.diagnostics and sol.weight is None
    assert sol.diagnostics["adapt_converged"]
    # the plain loop at tol 1e-10 (295k dofs): 1.0440567080 (review)
    assert sol.escape_rate == pytest.approx(1.0440567080, rel=1e-4)
    with pytest.raises(ValueError, match="weighting='gibbs': the absorbing boundary is only"):
        fp.Problem(edge, D, fp.disk_mesh(1.0, 0.2), order=3, weighting="gibbs")
    # reflecting: u is constant whatever the barrier, so the weight applies
    refl = fp.solve(edge, D, fp.disk_mesh(1.0, 0.2), order=3, boundary="reflecting",
                    weighting="gibbs")
    assert refl.diagnostics["weighting"] == "gibbs"


def test_the_weighting_is_decided_per_strength():
    """A Problem built at δ = 0.01 ('auto': Gibbs, 50 nats) solved at δ = 0.2 and 0.3 (2.5 and
    1.7 nats) takes the plain loop there, as a Problem built at those δ would (review R16:
    the weight was kept, effectivity 0.15, and 0.3 raised)."""
    mesh = fp.disk_mesh(1.0, 0.2)
    prob = fp.Problem(RADIAL, fp.diffusion.isotropic(0.01), mesh, order=3, tol=1e-4,
                      goals=["escape_rate"])
    assert prob.gibbs
    for delta in (0.2, 0.3):
        sol = prob.solve(delta)
        assert "weighting" not in sol.diagnostics and sol.diagnostics["adapt_converged"]
        assert sol.escape_rate == pytest.approx(radial_ou_escape_rate(delta), rel=1e-3)


def test_forced_weight_at_a_low_barrier_is_flagged():
    """'gibbs' forced where the boundary is 2.5 nats above the minimum: computed, but flagged
    untrusted with a warning (its estimate read 0.15 of the error, review R17)."""
    with pytest.warns(fp.FPSolveWarning, match="only 2.500 nats"):
        sol = fp.solve(RADIAL, fp.diffusion.isotropic(0.2), fp.disk_mesh(1.0, 0.2), order=3,
                       weighting="gibbs")
    assert sol.diagnostics["untrusted"] and sol.diagnostics["weighting"] == "gibbs"


def test_a_model_not_finite_is_named_with_the_weight_too():
    """'gibbs' with log(x) on a disk around 0: the model error names the model and a point,
    not the barrier (review R18)."""
    from fpsolve.models.validity import ModelError

    L = fp.landscapes.expression("log(x) + x**2/2 + y**2/2")
    with pytest.raises(ModelError, match=r"landscape.*\(x, y\) = "):
        fp.solve(L, fp.diffusion.isotropic(0.1), fp.disk_mesh(1.0, 0.3), weighting="gibbs",
                 tol=1e-3)
