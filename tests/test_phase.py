"""Monte Carlo phase diagram (fpsolve.phase): kernel vs numpy, reproducibility, phases I-III,
first passage, the finite-eta transition, the exponent fitter and argument checking."""
import math

import numpy as np
import pytest

pytest.importorskip("numba")

import fpsolve as fp
from fpsolve.stochastic import phase as ph

L2 = ph.fig2_landscape()
F0 = 8.0 ** -0.5


def numpy_sgd(L, eta, sigma, n_steps, rng, start=(1.5, 1.5)):
    """Reference: θ ← θ − η(∇L − Hμ), μ = √(2σ) z, with the landscape's own ∇L and H."""
    th = np.array(start, dtype=float)
    out = [th.copy()]
    for _ in range(n_steps):
        g = L.gradient(th[0], th[1])
        H = L.hessian(th[0], th[1])
        if sigma > 0:
            z = np.array([rng.standard_normal(), rng.standard_normal()])
            th = th - eta * (g - H @ (math.sqrt(2 * sigma) * z))
        else:
            th = th - eta * g
        out.append(th.copy())
    return np.array(out)


# ----------------------------------------------------------------- the SGD update
def test_kernel_matches_numpy_reference_step_by_step():
    tr = ph.trajectories([0.0, 0.2], eta=0.01, n_steps=300, record_every=1, seed=7)
    root = np.random.SeedSequence(7)
    for j, s in enumerate((0.0, 0.2)):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
            root.entropy, spawn_key=(j,))))
        ref = numpy_sgd(L2, 0.01, s, 300, rng)
        np.testing.assert_allclose(tr.x[j, 0], ref[:, 0], rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(tr.y[j, 0], ref[:, 1], rtol=1e-11, atol=1e-13)
    assert tr.t[-1] == 300 and not tr.diverged.any()


def test_trajectories_fig2a_ordering():
    # Fig. 2a/c: GD and σ = 0.02 (Δ_S < Δ_S*) head to x* = 0, σ = 0.2 stays near x_F
    tr = ph.trajectories(eta=0.01, n_steps=100_000, record_every=100, seed=0)
    x_end = np.abs(tr.x[:, 0, -1])
    assert x_end[0] < 0.01 and x_end[1] < 0.05
    assert 0.6 < x_end[2] < 1.0


# -------------------------------------------------------------- reproducibility
def grid_small(**kw):
    args = dict(T=40.0, n_walkers=40, block_size=16, keep_walkers=True, keep_hits=True)
    args.update(kw)
    return ph.run_grid([0.0, 0.02, 0.5], [0.02, 0.05], **args)


def assert_same(a, b):
    for name in ("x_ss", "F_ss", "tau_s", "tau_tols", "V_x", "V_y", "diverged", "x_drift",
                 "lam_mean", "walker_xbar", "walker_ts"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
    for i in range(a.eta.size):
        for j in range(a.sigma.size):
            ha, hb = a.hits[i][j], b.hits[i][j]
            assert (ha is None and hb is None) or np.array_equal(ha, hb)


def test_same_seed_same_bits_for_any_thread_count():
    one = grid_small(seed=3, workers=1)
    two = grid_small(seed=3, workers=2, progress=True)     # the bar must not change results
    three = grid_small(seed=3, workers=3)
    assert_same(one, two)
    assert_same(one, three)
    other = grid_small(seed=4, workers=2)
    assert not np.array_equal(one.walker_xbar[:, 1:], other.walker_xbar[:, 1:])


def test_seed_sequence_and_save_load_roundtrip(tmp_path):
    a = grid_small(seed=np.random.SeedSequence(11), workers=2)
    a.save(tmp_path / "g.npz")
    b = ph.PhaseGrid.load(tmp_path / "g.npz")
    for name in ("x_ss", "tau_s", "tau_tols", "V_x", "diverged", "walker_ts", "n_steps"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
    assert b.settings == a.settings and b.tol == 0.05 and b.hits is None
    assert np.array_equal(a.phase(), b.phase())
    a.save(tmp_path / "h.npz", include_hits=True)
    c = ph.PhaseGrid.load(tmp_path / "h.npz")
    assert_same(a, c)


# ------------------------------------------------------------------ the phases
def test_large_eta_diverges_phase_three():
    # η λ0 = 2.4 > 2 (and η λ > 2 everywhere, min λ = 7): y grows geometrically
    g = ph.run_grid([0.0, 0.01], [0.3], T=30.0, n_walkers=16)
    assert np.all(g.diverged == 1.0)
    assert np.all(g.phase() == 3)
    assert np.all(np.isnan(g.x_ss)) and np.all(np.isnan(g.tau_s))


def test_trajectory_marks_divergence_and_blanks_the_rest():
    tr = ph.trajectories([0.0], eta=0.3, n_steps=1000, record_every=1)
    assert tr.diverged[0, 0]
    last = np.flatnonzero(np.isfinite(tr.x[0, 0]))[-1]
    assert last < 1000 and np.all(np.isnan(tr.x[0, 0, last + 1:]))
    assert math.hypot(tr.x[0, 0, last], tr.y[0, 0, last]) <= 1e3


def test_gradient_descent_converges_to_the_global_minimum():
    g = ph.run_grid([0.0], [0.05], T=2500.0, n_walkers=4, tol=0.05)
    assert g.phase()[0, 0] == 1 and g.diverged[0, 0] == 0
    assert g.x_ss[0, 0] < 1e-3 and abs(g.F_ss[0, 0] - F0) < 1e-7
    assert g.V_y[0, 0] < 1e-20 and g.V_x[0, 0] < 1e-6
    # τ_s: the first step with |x| ≤ x_ss + tol of plain GD, found by a numpy loop
    th = np.array([1.5, 1.5])
    for t in range(1, 200_000):
        th = th - 0.05 * L2.gradient(th[0], th[1])
        if abs(th[0]) <= 0.05:
            break
    assert g.tau_s[0, 0] == pytest.approx(0.05 * t, abs=0.05 * 1)
    assert g.censored[0, 0] == 0


def test_deep_phase_two_finds_the_flattest_solution():
    g = ph.run_grid([0.1], [0.04], T=300.0, n_walkers=64)
    assert g.phase()[0, 0] == 2
    assert abs(g.x_ss[0, 0] - 1.0) < 0.1
    assert g.F_ss[0, 0] > F0 + 0.02
    # V_y ≈ Δ_S λ(x_F)/(1 − ηλ/2): the discrete-time stationary variance of y
    assert g.V_y[0, 0] == pytest.approx(0.004 * 7 / (1 - 0.04 * 7 / 2), rel=0.1)


def test_transition_sits_at_the_finite_eta_sigma_star():
    # η = 0.04: continuous theory σ* = 0.0125, finite-η correction 0.0105 (the paper's)
    assert ph.critical_sigma(0.04) == pytest.approx(0.0105, rel=1e-12)
    assert ph.critical_sigma(0.04, discrete=False) == pytest.approx(0.0125, rel=1e-12)
    g = ph.run_grid([0.0090, 0.0120], [0.04], T=20000.0, n_walkers=32)
    assert g.x_ss[0, 0] < 0.01          # below σ*: back at x* = 0
    assert g.x_ss[0, 1] > 0.25          # below the continuous σ* but above 0.0105
    assert list(g.phase()[0]) == [1, 2]


def test_x_ss_matches_adiabatic_theory_with_finite_eta_noise():
    eta, sigma = 0.04, 0.0138
    g = ph.run_grid([sigma], [eta], T=3000.0, n_walkers=64)
    th = fp.theory.adiabatic(L2, eta * sigma / (1 - eta * 8 / 2))
    assert abs(g.x_ss[0, 0] - th.x_ss) < 0.03
    assert abs(g.x_drift[0, 0]) < 0.01


def test_divergence_sigma_uses_the_paper_bound():
    s = ph.divergence_sigma([0.04, 0.3])
    assert s[0] == pytest.approx(fp.theory.delta_m(L2, 0.04) / 0.04)
    assert np.isnan(s[1])           # η λ(x_F) = 2.1 ≥ 2: no solution of S39
    assert ph.divergence_sigma(0.04, approx="S40") == pytest.approx(
        fp.theory.delta_m(L2, 0.04, approx="S40") / 0.04)


# -------------------------------------------------------------- first passage
def test_first_passage_ladder_lookup():
    hit = np.array([[9, 5, 2, 0], [-1, 7, 3, 0]], dtype=np.int32)
    t = ph.first_passage_steps(hit, 0.1, 0.1)
    assert list(t) == [5.0, 7.0]
    t = ph.first_passage_steps(hit, 0.1, np.array([0.0, 0.04]))
    assert t[0] == 9.0 and np.isinf(t[1])
    assert list(ph.first_passage_steps(hit, 0.1, 5.0)) == [0.0, 0.0]


def test_tolerances_order_the_search_times():
    g = ph.run_grid([0.0, 0.005, 0.02], [0.04], T=2000.0, n_walkers=16, tols=(0.01, 0.1))
    assert g.tols == (0.01, 0.05, 0.1)
    assert np.all(np.diff(g.tau_tols[:, 0, :], axis=0) <= 0)      # looser → sooner
    assert np.array_equal(g.tau_s, g.tau_tols[1])
    one = ph.run_grid([0.005], [0.04], T=200.0, n_walkers=4, tols=0.1)
    assert one.tols == (0.05, 0.1)


# --------------------------------------------------------------- exponent fitter
def planted(alpha, beta1, beta2, sstar, n_walkers, rng, eta=0.04):
    """Synthetic per-walker data with F(x_ss) − F(0) = A r^α, τ_s = B r^(−β)."""
    from scipy.optimize import brentq
    r = np.geomspace(0.03, 0.8, 9)
    sig = np.concatenate([sstar * (1 - r[::-1]), sstar * (1 + r)])
    xbar, ts = [], []
    for s in sig:
        rr = abs(s - sstar) / sstar
        if s > sstar:
            gain = 0.02 * rr ** alpha
            x = brentq(lambda v: float(L2.flatness(v)) - F0 - gain, 1e-9, 1.0)
            tau = 200.0 * rr ** -beta2
        else:
            x = 0.0
            tau = 300.0 * rr ** -beta1
        # walkers: |x̄| spread by 2 % around x (sign random), t_s exponential about τ/η
        xbar.append(rng.choice([-1, 1], n_walkers) * x * (1 + 0.02 * rng.standard_normal(n_walkers)))
        ts.append(rng.exponential(tau / eta, n_walkers))
    return sig, xbar, ts


def test_fitter_recovers_planted_exponents():
    rng = np.random.default_rng(123)
    truth = dict(alpha=0.85, beta1=0.56, beta2=0.48)
    sig, xbar, ts = planted(truth["alpha"], truth["beta1"], truth["beta2"], 0.0105, 400, rng)
    f = ph.fit_exponents(sig, xbar, ts=ts, eta=0.04, sigma_star=0.0105, n_boot=400, seed=1,
                         window_alpha=(0.02, 1), window_below=(0.02, 1),
                         window_above=(0.02, 1))
    for k, v in truth.items():
        lo, hi = f.ci[k]
        assert lo < v < hi, (k, v, f.ci[k])
        assert hi - lo < 0.15
        assert getattr(f, k) == pytest.approx(v, abs=0.06)
    assert f.data["alpha"].sum() == 9 and f.data["beta1"].sum() == 9


def test_fitter_with_free_sigma_star_and_a_wrong_model_is_detected():
    rng = np.random.default_rng(5)
    sig, xbar, ts = planted(1.0, 0.5, 0.5, 0.0105, 400, rng)
    f = ph.fit_exponents(sig, xbar, ts=ts, eta=0.04, sigma_star="fit", n_boot=200, seed=2,
                         window_alpha=(0.02, 1))
    lo, hi = f.ci["sigma_star"]
    assert lo < 0.0105 < hi and hi - lo < 0.001
    assert f.ci["alpha"][0] < 1.0 < f.ci["alpha"][1]
    # a deliberately wrong σ* biases α and its interval excludes the truth
    g = ph.fit_exponents(sig, xbar, ts=ts, eta=0.04, sigma_star=0.0100, n_boot=200, seed=2,
                         window_alpha=(0.02, 1))
    assert not (g.ci["alpha"][0] < 1.0 < g.ci["alpha"][1])


def test_exponents_from_a_grid_use_the_ladders():
    g = ph.run_grid([0.006, 0.008, 0.009, 0.0095, 0.0115, 0.012, 0.013, 0.015], [0.04],
                    T=3000.0, n_walkers=16, keep_walkers=True, keep_hits=True)
    f = ph.exponents(g, sigma_star=0.0105, n_boot=50, window_below=(0.05, 0.6),
                     window_above=(0.05, 1.0), window_alpha=(0.05, 1.0))
    assert np.allclose(f.data["tau_s"], g.tau_s[0])
    assert 0.3 < f.beta1 < 1.2 and 0.3 < f.beta2 < 1.5 and 0.4 < f.alpha < 1.2
    g.hits = None          # falls back to the stored per-walker t_s: same point estimates
    f2 = ph.exponents(g, sigma_star=0.0105, n_boot=10)
    assert np.allclose(f2.data["tau_s"], g.tau_s[0])


# ------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize("kw, match", [
    (dict(sigma=[-0.1]), "sigma must be finite and non-negative"),
    (dict(sigma=[]), "sigma must be a non-empty"),
    (dict(eta=[0.0]), "eta must be finite and positive"),
    (dict(eta=[np.nan]), "eta must be finite and positive"),
    (dict(T=0), "T must be a positive"),
    (dict(T=1e12), "at most"),
    (dict(T=0.01), "averaging window"),
    (dict(n_walkers=1), "n_walkers must be an integer >= 2"),
    (dict(n_walkers=3.5), "n_walkers must be an integer"),
    (dict(avg_fraction=1.0), "avg_fraction must be in"),
    (dict(tol=-0.1), "tol must be a non-negative"),
    (dict(level_step=0), "level_step must be a positive"),
    (dict(blowup=1.0), "blowup must be larger than"),
    (dict(start=(1.0, np.inf)), "start must be a finite point"),
    (dict(start=(1.0,)), "start must be a finite point"),
    (dict(div_threshold=1.0), "div_threshold must be in"),
    (dict(workers=0), "workers must be a positive integer"),
    (dict(seed=-1), "seed must be a non-negative integer"),
    (dict(seed="x"), "seed must be"),
    (dict(landscape=fp.landscapes.quadratic([[1, 0], [0, 2]])), "landscape must be"),
])
def test_run_grid_rejects_bad_arguments(kw, match):
    args = dict(sigma=[0.1], eta=[0.01], T=10.0, n_walkers=4)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        ph.run_grid(args.pop("sigma"), args.pop("eta"), **args)


def test_other_functions_reject_bad_arguments():
    with pytest.raises(ValueError, match="record_every"):
        ph.trajectories(n_steps=105, record_every=10)
    with pytest.raises(ValueError, match="eta must be"):
        ph.trajectories(eta=-1)
    with pytest.raises(ValueError, match="eta must be positive"):
        ph.critical_sigma(0.0)
    with pytest.raises(ValueError, match="approx"):
        ph.divergence_sigma(0.04, approx="S41")
    rng = np.random.default_rng(0)
    sig, xbar, ts = planted(1.0, 0.5, 0.5, 0.0105, 20, rng)
    base = dict(ts=ts, eta=0.04, sigma_star=0.0105, n_boot=2)
    with pytest.raises(ValueError, match="sigma_star must be a positive number or 'fit'"):
        ph.fit_exponents(sig, xbar, **{**base, "sigma_star": "auto"})
    with pytest.raises(ValueError, match="sigma_star must be a positive"):
        ph.fit_exponents(sig, xbar, **{**base, "sigma_star": -1.0})
    with pytest.raises(ValueError, match="window_below must be"):
        ph.fit_exponents(sig, xbar, **base, window_below=(0.5, 0.1))
    with pytest.raises(ValueError, match="xbar must be a sequence of"):
        ph.fit_exponents(sig, xbar[:-1], **base)
    with pytest.raises(ValueError, match="level_step and tol are required"):
        ph.fit_exponents(sig, xbar, eta=0.04, sigma_star=0.0105,
                         hits=[np.zeros((20, 5), np.int32)] * len(sig))
    with pytest.raises(ValueError, match=r"\(ts\) or ladders"):
        ph.fit_exponents(sig, xbar, eta=0.04, sigma_star=0.0105)
    ts_inf = [np.where(np.arange(t.size) == 0, np.inf, t) for t in ts]
    with pytest.raises(ValueError, match="need n_steps"):
        ph.fit_exponents(sig, xbar, **{**base, "ts": ts_inf})
    g = ph.run_grid([0.01, 0.02], [0.04, 0.05], T=20.0, n_walkers=4)
    with pytest.raises(ValueError, match="per-walker data"):
        ph.exponents(g, eta=0.04, sigma_star=0.0105)
    with pytest.raises(ValueError, match="eta must be given"):
        ph.exponents(g, sigma_star=0.0105)
