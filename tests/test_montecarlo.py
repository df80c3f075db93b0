"""Monte Carlo module: exact solutions, Itô convention, reproducibility, backends, errors."""
import json
import math
import warnings

import numpy as np
import pytest
import scipy.linalg as sla

import fpsolve as fp
from fpsolve.stochastic import montecarlo as mcm

PAPER = dict(eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)
# OU model: D does not commute with A, so the stationary current rotates
A_OU = np.array([[1.0, 0.3], [0.3, 0.5]])
D_OU = np.array([[0.05, -0.02], [-0.02, 0.02]])


def ou_exact():
    return sla.solve_continuous_lyapunov(A_OU, 2 * D_OU)


def em_exact(dt, A=A_OU, Q=None):
    """Stationary covariance of θ ← (I − dt A) θ + noise of covariance Q (default 2 dt D)."""
    Q = 2 * dt * D_OU if Q is None else Q
    return sla.solve_discrete_lyapunov(np.eye(2) - dt * A, Q)


def bin_average(f, xe, ye, sub=6):
    """Average of f(x, y) over each histogram bin (sub × sub midpoint rule)."""
    off = (np.arange(sub) + 0.5) / sub
    xs = (xe[:-1, None] + np.diff(xe)[:, None] * off).ravel()
    ys = (ye[:-1, None] + np.diff(ye)[:, None] * off).ravel()
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    v = np.asarray(f(X, Y))
    return v.reshape(*v.shape[:-2], len(xe) - 1, sub, len(ye) - 1, sub).mean(axis=(-3, -1))


def chi2(est, exact, se, mask):
    return float(np.mean(((est - exact)[..., mask] / se[..., mask]) ** 2))


# ------------------------------------------------------------ Ornstein–Uhlenbeck
def test_ou_covariance_matches_lyapunov_solution():
    S = ou_exact()
    assert not np.allclose(A_OU @ D_OU, D_OU @ A_OU)
    dt = 0.0025
    mc = mcm.langevin(fp.landscapes.quadratic(A_OU), D_OU, dt=dt, n_walkers=8192,
                      n_steps=10000, n_burn=2000, radius=None, seed=5)
    m = mc.moments()
    # EM bias at this dt is well below the error bar
    assert np.all(np.abs(em_exact(dt) - S) < 0.5 * m["cov_se"])
    assert np.all(np.abs(m["cov"] - S) < 4 * m["cov_se"]), (m["cov"], S, m["cov_se"])
    assert np.all(np.abs(m["mean"]) < 4 * m["mean_se"])
    assert m["n_groups"] == 32 and m["n_samples"] == 8192 * 800


def test_em_bias_is_the_discrete_lyapunov_solution_and_first_order():
    S = ou_exact()
    dt = 0.2
    mc = mcm.langevin(fp.landscapes.quadratic(A_OU), D_OU, dt=dt, n_walkers=8192,
                      n_steps=300, n_burn=100, radius=None, seed=6)
    m = mc.moments()
    Sdt = em_exact(dt)
    # the simulation reproduces the exact EM covariance, and the bias is resolved
    assert np.all(np.abs(m["cov"] - Sdt) < 4 * m["cov_se"])
    assert np.max(np.abs(m["cov"] - S) / m["cov_se"]) > 8
    # ... which shrinks linearly with dt (weak order 1)
    errs = [np.abs(em_exact(h) - S).max() for h in (0.04, 0.02, 0.01, 0.005)]
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all(np.abs(ratios - 2) < 0.1), ratios


def gaussian(C):
    Ci = np.linalg.inv(C)
    norm = 1 / (2 * np.pi * np.sqrt(np.linalg.det(C)))
    return lambda x, y: norm * np.exp(-0.5 * (Ci[0, 0] * x * x + 2 * Ci[0, 1] * x * y
                                              + Ci[1, 1] * y * y))


def linear_flux(M, density):
    return lambda x, y: np.einsum("ij,j...->i...", M, np.stack([x, y])) * density(x, y)


def test_ou_current_is_the_exact_rotating_flux():
    """Midpoint binning recovers J = (−Aθ + D S⁻¹θ) P, the diffusive part included.

    For EM the estimator's expectation is exact: (θ_t, θ_t+1) are jointly Gaussian, so
    with m the midpoint and Δ the step, E[Δ 1(m ∈ bin)] = ∫_bin N(m; C_mm) C_Δm C_mm⁻¹ m.
    """
    dt = 0.02
    S = ou_exact()
    Sdt = em_exact(dt)
    M, Q = np.eye(2) - dt * A_OU, 2 * dt * D_OU
    Cmm = ((np.eye(2) + M) @ Sdt @ (np.eye(2) + M).T + Q) / 4
    Cdm = ((M - np.eye(2)) @ Sdt @ (np.eye(2) + M).T + Q) / 2
    mc = mcm.langevin(fp.landscapes.quadratic(A_OU), D_OU, dt=dt, n_walkers=8192,
                      n_steps=1500, n_burn=300, sample_every=1, radius=None, seed=7,
                      extent=(-0.6, 0.6, -0.6, 0.6), bins=12)
    P_mc, xe, ye = mc.density
    J_em = bin_average(linear_flux(Cdm @ np.linalg.inv(Cmm) / dt, gaussian(Cmm)), xe, ye)
    J = bin_average(linear_flux(-A_OU + D_OU @ np.linalg.inv(S), gaussian(S)), xe, ye)
    # what binning at the start point θ_t would give: the drift part only
    J_start = bin_average(linear_flux(-A_OU, gaussian(Sdt)), xe, ye)
    use = P_mc > 0.2 * P_mc.max()
    assert use.sum() > 30
    assert chi2(mc.current, J_em, mc.current_se, use) < 2.0
    assert chi2(mc.current, J_start, mc.current_se, use) > 100
    assert np.abs(J_em - J).max() < 0.03 * np.abs(J).max()     # EM's O(dt) bias is small
    # bins are correlated through the slow modes: chi²/bin scatters around 1 widely
    assert chi2(P_mc, bin_average(gaussian(Sdt), xe, ye), mc.density_se, use) < 3.0


# ------------------------------------------------------------------ Itô convention
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_position_dependent_diffusion_has_no_spurious_divergence_drift(backend):
    """L = |θ|²/2, D11 = (1 + x²)/4: P(x) ∝ (1 + x²)^-3, so <x²> = 1/3 exactly.

    With a spurious −∇·D drift <x²> would be 1/5, with +∇·D it would be 1.  The
    expression tensor runs compiled (numba) and in the generic numpy path.
    """
    L = fp.landscapes.quadratic(np.eye(2))
    D = fp.diffusion.expression("0.25*(1 + x**2)", "0.1")
    mc = mcm.langevin(L, D, dt=0.01, n_walkers=2048, n_steps=2000, n_burn=400,
                      radius=None, seed=7, backend=backend)
    assert mc.backend == backend
    m = mc.moments()
    x2, se = m["cov"][0, 0] + m["mean"][0] ** 2, m["cov_se"][0, 0]
    assert abs(x2 - 1 / 3) < 4 * se + 0.01            # 0.01: O(dt) EM bias allowance
    assert abs(x2 - 1 / 5) > 10 * se
    assert abs(m["cov"][1, 1] - 0.1) < 4 * m["cov_se"][1, 1] + 0.002


# --------------------------------------------------------------------- Boltzmann
def test_isotropic_noise_gives_boltzmann_density_and_no_current():
    L = fp.landscapes.paper(**PAPER)
    delta = 0.05
    xs = np.linspace(-6, 6, 24001)

    def boltzmann(d):
        Z = np.trapezoid(np.exp(-L.eps * L.lam0 * xs ** 2 / (2 * d))
                         * np.sqrt(2 * np.pi * d / L.lam(xs)), xs)
        return lambda x, y: np.exp(-L.value(x, y) / d) / Z

    n = 8192
    rng = np.random.default_rng(0)     # start near equilibrium to keep burn-in short
    x0 = np.stack([rng.normal(0, math.sqrt(delta / 0.16), n),
                   rng.normal(0, math.sqrt(delta / 8), n)], axis=1)
    mc = mcm.langevin(L, delta, dt=0.002, n_walkers=n, n_steps=10000, n_burn=2000,
                      radius=None, x0=x0, seed=11, extent=(-2, 2, -0.6, 0.6), bins=(40, 24))
    P, xe, ye = mc.density
    area = np.diff(xe)[0] * np.diff(ye)[0]
    P_exact = bin_average(boltzmann(delta), xe, ye)
    use = P_exact > 0.05 * P_exact.max()
    assert np.abs(P - P_exact).sum() * area < 0.025
    # bins are correlated through the slow x motion: chi²/bin scatters around 1 widely
    assert chi2(P, P_exact, mc.density_se, use) < 3.0
    # a 20 % hotter Boltzmann density is clearly rejected
    assert np.abs(P - bin_average(boltzmann(1.2 * delta), xe, ye)).sum() * area > 0.08
    # detailed balance: the current vanishes within its error bars
    assert chi2(mc.current, 0.0, mc.current_se, use) < 2.0
    # marginal from the fine 1-D histogram agrees with the exact one
    xm = np.linspace(-1.5, 1.5, 31)
    lam = L.lam(xm)
    pm_exact = boltzmann(delta)(xm, 0.0) * np.sqrt(2 * np.pi * delta / lam)
    pm, pm_se = mc.marginal("x", xm, return_se=True)
    assert np.max(np.abs(pm - pm_exact) / pm_exact.max()) < 0.03


# -------------------------------------------------------------------------- SGD
def test_sgd_is_euler_maruyama_with_sgd_diffusion():
    """sgd(η, σ) and langevin(D = ησ H², dt = η) are the same update."""
    L = fp.landscapes.paper(**PAPER)
    kw = dict(n_walkers=512, n_steps=1000, seed=3, radius=None)
    a = mcm.sgd(L, eta=0.01, sigma=1.2, **kw)
    b = mcm.langevin(L, fp.diffusion.sgd(L, 0.012), dt=0.01, **kw)
    c = mcm.langevin(L, fp.diffusion.sgd(L, 0.012, cross_diffusion=False), dt=0.01, **kw)
    d = mcm.sgd(L, eta=0.01, sigma=1.2, cross_diffusion=False, **kw)
    # only the rounding of η√(2σ) vs √(2 η Δ_S) differs
    np.testing.assert_allclose(a.positions, b.positions, rtol=0, atol=1e-10)
    np.testing.assert_allclose(c.positions, d.positions, rtol=0, atol=1e-10)
    assert np.abs(a.positions - d.positions).max() > 1e-3
    assert a.params["delta_s"] == pytest.approx(0.012)


@pytest.mark.parametrize("cross", [True, False])
def test_sgd_on_quadratic_has_the_exact_discrete_covariance(cross):
    """θ ← (I − ηA)θ + η√(2σ) B z: covariance solves S = (I−ηA)S(I−ηA)ᵀ + 2ση² BBᵀ.

    BBᵀ = A² with cross-diffusion, diag(A²) without (the documented meaning of
    ``cross_diffusion=False``)."""
    eta, sigma = 0.1, 0.5
    A2 = A_OU @ A_OU
    Q = 2 * sigma * eta ** 2 * (A2 if cross else np.diag(np.diag(A2)))
    S = em_exact(eta, Q=Q)
    mc = mcm.sgd(fp.landscapes.quadratic(A_OU), eta, sigma, cross_diffusion=cross,
                 n_walkers=8192, n_steps=1000, n_burn=200, radius=None, seed=9)
    m = mc.moments()
    assert np.all(np.abs(m["cov"] - S) < 4 * m["cov_se"]), (m["cov"], S)
    other = em_exact(eta, Q=2 * sigma * eta ** 2 * (np.diag(np.diag(A2)) if cross else A2))
    assert abs(m["cov"][0, 1] - other[0, 1]) > 8 * m["cov_se"][0, 1]


def test_sgd_converges_to_langevin_as_eta_shrinks_at_fixed_delta_s():
    L = fp.landscapes.paper(**PAPER)
    ds, n, T = 0.005, 8192, 20.0
    rng = np.random.default_rng(0)
    x0 = np.stack([rng.normal(0, 0.037, n), rng.normal(0, 0.2, n)], axis=1)

    def second_moments(m):
        return np.diag(m["cov"]) + m["mean"] ** 2, np.diag(m["cov_se"])

    ref, ref_se = second_moments(mcm.langevin(
        L, fp.diffusion.sgd(L, ds), dt=0.0025, n_walkers=n, n_steps=8000, n_burn=2000,
        x0=x0, seed=2).moments())
    diffs = []
    for eta in (0.04, 0.02, 0.01):
        steps = int(round(T / eta))
        mc = mcm.sgd(L, eta=eta, sigma=ds / eta, n_walkers=n, n_steps=steps,
                     n_burn=steps // 4 // 10 * 10, x0=x0, seed=2)
        v, se = second_moments(mc.moments())
        diffs.append(v - ref)
        assert np.all(np.abs(v - ref) > 0) and mc.exits == 0
    diffs = np.array(diffs)                           # rows: η; columns: <x²>, <y²>
    assert np.abs(diffs[0] / ref).min() > 0.1        # a real bias at the largest η ...
    assert np.all(np.abs(diffs[1:]) < np.abs(diffs[:-1]))        # ... that shrinks
    r = diffs[1, 1] / diffs[2, 1]
    assert 1.6 < r < 3.5, r                           # like O(η) for <y²>
    assert np.all(np.abs(diffs[2] / ref) < 0.06)


def test_sgd_matches_mc_notes_reference_value():
    """Reference of three independent implementations (docs/montecarlo.md): Δ_S = 0.012,
    η = 0.01, 3000 steps: E x² ≈ 0.094 ± 0.001."""
    L = fp.landscapes.paper(**PAPER)
    n = 20000
    x0 = np.random.default_rng(0).normal(0, 0.2, (n, 2))
    mc = mcm.sgd(L, eta=0.01, sigma=1.2, n_walkers=n, n_steps=3000, radius=None, x0=x0,
                 seed=1)
    x2 = mc.positions[:, 0] ** 2
    se = np.std(x2) / math.sqrt(n)
    assert abs(x2.mean() - 0.094) < 4 * math.hypot(se, 0.001)


def test_sgd_divergence_is_flagged_and_reported():
    L = fp.landscapes.paper(**PAPER)
    with pytest.warns(mcm.MonteCarloWarning, match="diverged"):
        mc = mcm.sgd(L, eta=0.2, sigma=1.0, n_walkers=300, n_steps=200, n_burn=0,
                     radius=None, x0=(1.5, 1.5), seed=3)
    assert mc.diverged > 0
    dead = mc.status == mcm.DIVERGED
    assert dead.sum() == mc.diverged and np.all(np.isnan(mc.positions[dead]))
    assert mc.alive == 300 - mc.diverged
    assert mc.to_dict()["diverged"] == mc.diverged


# ----------------------------------------------------------------- boundaries
def test_fleming_viot_escape_rate_and_quasi_stationary_density_of_brownian_disk():
    """Free diffusion in a unit disk: μ = D j0² / R², P ∝ J0(j0 r / R).

    Discrete-time monitoring misses excursions: the disk is effectively larger by
    0.5826 √(2 D dt) (Siegmund's correction), which is applied to the exact μ.
    """
    from scipy.special import j0, jn_zeros
    D, R, dt = 1.0, 1.0, 1e-3
    z0 = jn_zeros(0, 1)[0]
    R_eff = R + 0.5826 * math.sqrt(2 * D * dt)
    mu = D * z0 ** 2 / R_eff ** 2
    mc = mcm.langevin(fp.landscapes.quadratic(np.zeros((2, 2))), D, dt=dt, n_walkers=4096,
                      n_steps=1600, n_burn=400, radius=R, seed=13, bins=20)
    assert mc.exits > 20000 and mc.removed == 0 and mc.alive == 4096
    assert abs(mc.escape_rate - mu) < 4 * mc.escape_rate_se + 0.01 * mu
    # the 5 % discrete-monitoring bias is resolved: the correction is needed
    assert D * z0 ** 2 / R ** 2 - mc.escape_rate > 5 * mc.escape_rate_se
    P, xe, ye = mc.density
    area = np.diff(xe)[0] * np.diff(ye)[0]
    assert P.sum() * area == pytest.approx(1.0, abs=1e-12)

    def qsd(x, y):
        r = np.hypot(x, y)
        return np.where(r < R_eff, j0(z0 * r / R_eff), 0.0)

    exact = bin_average(qsd, xe, ye)
    exact /= exact.sum() * area
    assert np.abs(P - exact).sum() * area < 0.04


def test_removal_without_reinsertion_follows_the_exact_survival_probability():
    """Brownian motion from the centre of a unit disk: S(t) = Σ 2 exp(−j_n² D t)/(j_n J1(j_n))."""
    from scipy.special import j1, jn_zeros
    D, R, dt, n, t = 1.0, 1.0, 2.5e-4, 4096, 0.5
    R_eff = R + 0.5826 * math.sqrt(2 * D * dt)        # discrete monitoring, as above
    jn = jn_zeros(0, 5)
    S = float(np.sum(2 * np.exp(-jn ** 2 * D * t / R_eff ** 2) / (jn * j1(jn))))
    mc = mcm.langevin(fp.landscapes.quadratic(np.zeros((2, 2))), D, dt=dt, n_walkers=n,
                      n_steps=int(round(t / dt)), n_burn=400, radius=R, reinsert=False,
                      x0=(0.0, 0.0), seed=2)
    assert mc.removed == mc.exits + mc.exits_burn_in
    assert mc.alive == n - mc.removed
    assert np.all(np.isnan(mc.positions[mc.status == mcm.REMOVED]))
    assert abs(mc.alive - n * S) < 4 * math.sqrt(n * S * (1 - S)), (mc.alive, n * S)


# ------------------------------------------------------------ reproducibility
def _same(a, b):
    return (np.array_equal(a.positions, b.positions, equal_nan=True)
            and np.array_equal(a.density[0], b.density[0], equal_nan=True)
            and np.array_equal(a.current, b.current, equal_nan=True)
            and np.array_equal(a._mom, b._mom)
            and np.array_equal(a.marginal("x")[1], b.marginal("x")[1], equal_nan=True)
            and (a.exits, a.exits_burn_in, a.diverged, a.removed, a.walker_time)
            == (b.exits, b.exits_burn_in, b.diverged, b.removed, b.walker_time))


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_same_seed_is_bit_identical_for_any_workers_and_chunking(backend):
    if backend == "numba" and not mcm.numba_available():
        pytest.skip("numba not installed")
    L = fp.landscapes.paper(**PAPER)
    kw = dict(n_walkers=700, n_steps=1000, seed=42, radius=0.8, backend=backend,
              block_size=128)
    runs = [mcm.sgd(L, 0.01, 3.0, workers=1, **kw),
            mcm.sgd(L, 0.01, 3.0, workers=2, **kw),
            mcm.sgd(L, 0.01, 3.0, workers=2, blocks_per_task=2, **kw),
            mcm.sgd(L, 0.01, 3.0, workers=3, blocks_per_task=4, **kw)]
    assert runs[0].exits > 100
    for r in runs[1:]:
        assert _same(runs[0], r)
    ss = np.random.SeedSequence(42)
    assert _same(runs[0], mcm.sgd(L, 0.01, 3.0, **{**kw, "seed": ss}))
    assert _same(runs[0], mcm.sgd(L, 0.01, 3.0, **{**kw, "seed": ss}))   # not consumed
    assert not _same(runs[0], mcm.sgd(L, 0.01, 3.0, **{**kw, "seed": 43}))
    # a run with fresh entropy can be repeated from its recorded seed
    fresh = mcm.sgd(L, 0.01, 3.0, **{**kw, "seed": None})
    assert _same(fresh, mcm.sgd(L, 0.01, 3.0, **{**kw, "seed": fresh.seed_entropy}))


_MODELS = {
    "sgd-paper-exits": lambda be: mcm.sgd(
        fp.landscapes.paper(**PAPER), 0.01, 3.0, n_walkers=600, n_steps=1000, radius=0.6,
        seed=3, backend=be, record_every=100, record_walkers=300),
    # blocks of 39 and 14 walkers: lane groups of the kernel that are not full
    "sgd-paper-partial-lane-groups": lambda be: mcm.sgd(
        fp.landscapes.paper(**PAPER), 0.01, 3.0, n_walkers=599, n_steps=600, radius=0.6,
        seed=5, backend=be, block_size=39, record_every=100, record_walkers=45),
    "sgd-paper-nocross": lambda be: mcm.sgd(
        fp.landscapes.paper(**PAPER), 0.01, 3.0, cross_diffusion=False, n_walkers=600,
        n_steps=1000, radius=0.6, seed=3, backend=be),
    "sgd-quadratic": lambda be: mcm.sgd(
        fp.landscapes.quadratic(A_OU), 0.05, 0.5, n_walkers=600, n_steps=1000,
        radius=None, seed=4, backend=be),
    "langevin-quadratic-constant": lambda be: mcm.langevin(
        fp.landscapes.quadratic(A_OU, center=(0.2, -0.1)), D_OU, dt=0.05, n_walkers=600,
        n_steps=1000, sample_every=5, radius=None, seed=4, backend=be),
    "langevin-paper-sgd": lambda be: mcm.langevin(
        fp.landscapes.paper(**PAPER), fp.diffusion.sgd(fp.landscapes.paper(**PAPER), 0.012),
        dt=0.01, n_walkers=600, n_steps=1000, radius=1.0, seed=4, backend=be),
    "langevin-paper-isotropic-killing": lambda be: mcm.langevin(
        fp.landscapes.paper(**PAPER), 0.05, dt=0.01, n_walkers=600, n_steps=1000,
        radius=0.7, reinsert=False, seed=4, backend=be),
}


@pytest.mark.parametrize("name", sorted(_MODELS))
def test_numba_and_numpy_backends_are_bit_identical(name):
    if not mcm.numba_available():
        pytest.skip("numba not installed")
    a, b = _MODELS[name]("numba"), _MODELS[name]("numpy")
    assert (a.backend, b.backend) == ("numba", "numpy")
    assert _same(a, b)
    if a.trajectories is not None:
        assert np.array_equal(a.trajectories, b.trajectories, equal_nan=True)


class _PaperSubclass(fp.landscapes.PaperLandscape):
    """Same loss, but not the exact type: forces the generic numpy path."""


def test_generic_numpy_path_agrees_statistically_with_the_compiled_model():
    kw = dict(n_walkers=2048, n_steps=1500, n_burn=300, radius=2.0, seed=8)
    fast = mcm.sgd(fp.landscapes.paper(**PAPER), 0.01, 0.5, **kw)
    generic = mcm.sgd(_PaperSubclass(**PAPER), 0.01, 0.5, **kw)
    expr = fp.landscapes.expression(
        "0.5*eps*lam0*x**2 + 0.5*(lam0 + lam1*x**2 + lam2*x**4)*y**2", **PAPER)
    generic2 = mcm.sgd(expr, 0.01, 0.5, cross_diffusion=False, backend="numpy", **kw)
    fast2 = mcm.sgd(fp.landscapes.paper(**PAPER), 0.01, 0.5, cross_diffusion=False, **kw)
    for f, g in ((fast, generic), (fast2, generic2)):
        assert g.backend == "numpy"
        mf, mg = f.moments(), g.moments()
        z = (mf["cov"] - mg["cov"]) / np.hypot(mf["cov_se"], mg["cov_se"])
        assert np.all(np.abs(z) < 4), z
    # same law and same normals: trajectories agree closely, not bitwise
    assert np.nanmax(np.abs(fast.positions - generic.positions)) < 1e-6
    # the expression landscape compiled (sympy-printed ∇L and H): the same walk again
    compiled2 = mcm.sgd(expr, 0.01, 0.5, cross_diffusion=False, **kw)
    assert compiled2.backend == "numba"
    assert np.nanmax(np.abs(compiled2.positions - fast2.positions)) < 1e-6
    assert np.nanmax(np.abs(compiled2.positions - generic2.positions)) < 1e-6


def test_custom_tensor_runs_through_its_noise_factor():
    """A custom callable returning the constant OU tensor reproduces the compiled run."""
    def tensor(x, y):
        return np.broadcast_to(D_OU.reshape(2, 2, *([1] * np.ndim(x))), (2, 2, *np.shape(x)))

    L = fp.landscapes.quadratic(A_OU)
    kw = dict(dt=0.05, n_walkers=300, n_steps=400, radius=None, seed=17)
    custom = mcm.langevin(L, fp.diffusion.custom(tensor, name="ou"), **kw)
    compiled = mcm.langevin(L, D_OU, **kw)
    assert custom.backend == "numpy" and custom.params["func"] == "ou"
    np.testing.assert_allclose(custom.positions, compiled.positions, rtol=0, atol=1e-12)


# ----------------------------------------------------------- drift and extras
def test_rotational_drift_keeps_gaussian_and_adds_its_current():
    """L = |θ|²/2, D = Δ I, b = ω(−y, x): P stays N(0, Δ I) and J = b P."""
    delta, omega = 0.1, 0.5

    def drift(x, y):
        return omega * np.stack([-y, x])

    mc = mcm.langevin(fp.landscapes.quadratic(np.eye(2)), delta, dt=0.01, drift=drift,
                      n_walkers=4096, n_steps=1500, n_burn=300, sample_every=1,
                      radius=None, seed=21, extent=(-0.8, 0.8, -0.8, 0.8), bins=10)
    m = mc.moments()
    assert np.all(np.abs(m["cov"] - delta * np.eye(2)) < 4 * m["cov_se"] + 2e-3)
    P_mc, xe, ye = mc.density

    def J(x, y):
        return drift(x, y) * np.exp(-(x * x + y * y) / (2 * delta)) / (2 * np.pi * delta)

    use = P_mc > 0.2 * P_mc.max()
    assert chi2(mc.current, bin_average(J, xe, ye), mc.current_se, use) < 2.5
    assert chi2(mc.current, 0.0, mc.current_se, use) > 20


def test_accounting_normalisation_records_and_summary():
    L = fp.landscapes.paper(**PAPER)
    mc = mcm.sgd(L, eta=0.01, sigma=0.9, n_walkers=600, n_steps=500, n_burn=100,
                 sample_every=5, x0=(0.3, -0.2), record_every=50, record_walkers=7, seed=1)
    assert mc.exits == 0 and mc.walker_time == pytest.approx(600 * 400 * 0.01)
    assert mc.n_samples == 600 * 80
    P, xe, ye = mc.density
    area = np.diff(xe)[0] * np.diff(ye)[0]
    assert P.sum() * area == pytest.approx(1.0)
    xc, px = mc.marginal("x")
    assert px.sum() * np.diff(mc.marginal_edges[0])[0] == pytest.approx(1.0)
    # marginal from the fine histogram vs the 2-D histogram summed over y
    coarse = P.sum(axis=1) * np.diff(ye)[0]
    fine = px.reshape(-1, 4).mean(axis=1)
    np.testing.assert_allclose(fine, coarse, atol=1e-12)
    assert np.all(mc.marginal("y", [-2.5, 2.5, 3.0]) == 0)
    assert mc.trajectories.shape == (11, 7, 2)
    np.testing.assert_array_equal(mc.trajectories[0], np.tile([0.3, -0.2], (7, 1)))
    np.testing.assert_allclose(mc.record_times, np.arange(11) * 0.5)
    np.testing.assert_array_equal(mc.trajectories[-1], mc.positions[:7])
    times, mean, cov = mc.moment_trace()
    assert times.shape == (20,) and mean.shape == (20, 2) and cov.shape == (20, 2, 2)
    mt = mc.moments(error="time")
    assert mt["n_groups"] == 20 and np.all(np.isfinite(mt["cov_se"]))
    np.testing.assert_allclose(mt["cov"], mc.moments()["cov"])
    d = json.loads(json.dumps(mc.to_dict(arrays=True)))
    assert d["n_walkers"] == 600 and len(d["density"]) == 100 and d["escape_rate"] == 0.0
    assert "escape rate" in mc.summary()
    single = mcm.sgd(L, eta=0.01, sigma=0.9, n_walkers=100, n_steps=200, seed=1)
    assert single.moments()["n_groups"] == 1 and np.all(np.isnan(single.moments()["mean_se"]))
    assert np.isfinite(single.moments("time")["mean_se"]).all()
    free = mcm.sgd(L, eta=0.01, sigma=0.9, n_walkers=100, n_steps=200, radius=None, seed=1)
    assert math.isnan(free.escape_rate)


def test_backend_selection_without_numba(monkeypatch):
    L = fp.landscapes.paper(**PAPER)
    from fpsolve.stochastic import _mc_blocks
    monkeypatch.setattr(_mc_blocks, "_KERNELS", False)
    assert not mcm.numba_available()
    assert mcm.sgd(L, 0.01, 1.0, n_walkers=10, n_steps=20, seed=1).backend == "numpy"
    with pytest.raises(ImportError, match="numba"):
        mcm.sgd(L, 0.01, 1.0, n_walkers=10, n_steps=20, seed=1, backend="numba")


def test_numba_backend_refuses_uncompiled_models():
    if not mcm.numba_available():
        pytest.skip("numba not installed")
    L = fp.landscapes.paper(**PAPER)
    with pytest.raises(ValueError, match="backend='numba'"):
        mcm.langevin(L, 0.1, n_walkers=10, n_steps=20, backend="numba",
                     drift=lambda x, y: np.stack([x, y]))
    with pytest.raises(ValueError, match="backend='numba'"):
        mcm.sgd(_PaperSubclass(), 0.01, 1.0, n_walkers=10, n_steps=20, backend="numba")


# ------------------------------------------------------------------ bad input
L0 = fp.landscapes.paper()


@pytest.mark.parametrize("call, match", [
    (lambda: mcm.sgd(L0, eta=-0.1, sigma=1.0), "eta"),
    (lambda: mcm.sgd(L0, eta=0.0, sigma=1.0), "eta"),
    (lambda: mcm.sgd(L0, eta=float("nan"), sigma=1.0), "eta"),
    (lambda: mcm.sgd(L0, eta=0.01, sigma=-1.0), "sigma"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, n_walkers=0), "n_walkers"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, n_walkers=2.5), "n_walkers"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, n_steps=0), "n_steps"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, n_steps=105), "n_steps"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, n_steps=100, n_burn=100), "n_burn"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, n_steps=100, n_burn=15), "n_burn"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, sample_every=0), "sample_every"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, backend="cuda"), "backend"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, workers=0), "workers"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, block_size=0), "block_size"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, radius=-2.0), "radius"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, seed=-1), "seed"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, seed="abc"), "seed"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, bins=0), "bins"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, extent=(1, -1, 0, 1)), "extent"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, x0=(3.0, 0.0)), "x0"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, x0=np.zeros((5, 2))), "x0"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, record_every=15), "record_every"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, cross_diffusion="no"), "cross_diffusion"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, reinsert=1), "reinsert"),
    (lambda: mcm.sgd(L0, 0.01, 1.0, blowup_radius=1.0), "blowup_radius"),
    (lambda: mcm.langevin(L0, 0.1, dt=0.0), "dt"),
    (lambda: mcm.langevin(L0, -0.1), "D"),
    (lambda: mcm.langevin(L0, "big"), "D"),
    (lambda: mcm.langevin(L0, [[1.0, 2.0], [2.0, 1.0]]), "D"),
    (lambda: mcm.langevin(L0, 0.1, drift=lambda x, y: x), "drift"),
])
def test_bad_arguments_raise_value_errors_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_types_raise_type_errors():
    with pytest.raises(TypeError, match="L must be"):
        mcm.sgd("paper", 0.01, 1.0)
    with pytest.raises(TypeError, match="drift"):
        mcm.langevin(L0, 0.1, drift=3.0)
    with pytest.raises(ValueError, match="axis"):
        mcm.sgd(L0, 0.01, 1.0, n_walkers=10, n_steps=20, seed=1).marginal("z")
    with pytest.raises(ValueError, match="error"):
        mcm.sgd(L0, 0.01, 1.0, n_walkers=10, n_steps=20, seed=1).moments(error="bootstrap")


def test_module_imports_only_models():
    import ast
    import pathlib
    for path in pathlib.Path(mcm.__file__).parent.glob("_mc*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                # siblings (_mc_*), argument checks (_args: plain Python), the models and
                # _display (the hook of .plot()/_repr_html_, imports nothing)
                mod = node.module or ""
                assert mod.startswith("_mc") or mod in ("_args", "_display", "models",
                                                        "models.expressions") or (
                    node.level == 1 and not mod and all(a.name.startswith("_mc") for a in node.names)
                ) or all(a.name in {"landscapes", "diffusion", "expressions"} for a in node.names), \
                    ast.dump(node)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mcm.sgd(L0, 0.01, 1.0, n_walkers=10, n_steps=20, seed=1)
