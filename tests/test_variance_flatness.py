"""Variance–flatness analysis (issue 8): exact OU/quadratic answers, flatness search,
power-law fit, order parameters, trainers, flatness-detecting noise model."""
import math

import numpy as np
import pytest
import scipy.linalg as sla
from scipy.signal import lfilter

import fpsolve as fp
import fpsolve.vf as vf
from fpsolve.stochastic import montecarlo

E = math.e


# ------------------------------------------------------------------ helpers
def rotation(n, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    return q


def ou_chain(h, q, T, seed, R):
    """Discrete OU θ' = θ − a θ + √q z in the eigenbasis (a = η h), rotated by R.

    Each eigen-coordinate is an AR(1) u_t = r u_{t−1} + ε_t (r = 1 − a) started from its
    stationary law, so the window is stationary from the first snapshot.
    """
    rng = np.random.default_rng(seed)
    r = 1.0 - h
    s = q / (1 - r ** 2)
    eps = rng.standard_normal((T, h.size)) * np.sqrt(q)
    u = np.empty((T, h.size))
    for i in range(h.size):
        u[:, i] = lfilter([1.0], [1.0, -r[i]], eps[:, i],
                          zi=[r[i] * rng.normal(0, np.sqrt(s[i]))])[0]
    return u @ R.T, s


A_H = np.array([0.01, 0.03, 0.1, 0.3])       # a_i = η h_i per step
Q = np.array([4e-4, 1e-3, 3e-3, 6e-3])        # per-step noise variances


@pytest.fixture(scope="module")
def ou():
    R = rotation(4, 3)
    theta, s = ou_chain(A_H, Q, 400_000, seed=11, R=R)
    return theta, s, R


# ---------------------------------------------------------------------- PCA
def test_pca_directions_variances_and_learning_dimension_of_an_ou_process(ou):
    theta, s, R = ou
    p = vf.pca(theta)
    order = np.argsort(s)[::-1]
    np.testing.assert_allclose(p.variances, s[order], rtol=0.04)
    # directions: eigenvectors of the (commuting) drift/noise, up to sign
    dots = np.abs(np.sum(p.directions * R[:, order].T, axis=1))
    assert np.all(dots > 0.995), dots
    assert p.directions.shape == (4, 4) and p.n_snapshots == theta.shape[0]
    np.testing.assert_allclose(p.accumulated()[-1], 1.0, rtol=1e-12)
    frac = np.cumsum(s[order]) / s.sum()
    expected = int(np.searchsorted(frac, 0.9)) + 1
    assert p.learning_dimension(0.9) == expected
    # projections are uncorrelated with the PCA variances
    proj = p.project(theta)
    np.testing.assert_allclose(np.var(proj, axis=0), p.variances, rtol=1e-10)
    np.testing.assert_allclose(np.corrcoef(proj.T) - np.eye(4), 0, atol=1e-10)


def test_streaming_pca_equals_batch_pca(ou):
    theta = ou[0][:5000] + 100.0       # an offset that a raw Σθθᵀ would suffer from
    acc = vf.StreamingPCA(4)
    for chunk in np.array_split(theta, 7):
        acc.update(chunk)
    a, b = acc.result(), vf.pca(theta)
    np.testing.assert_allclose(a.variances, b.variances, rtol=1e-9)
    np.testing.assert_allclose(np.abs(np.sum(a.directions * b.directions, axis=1)), 1, atol=1e-9)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12)
    assert a.total_variance == pytest.approx(b.total_variance, rel=1e-9)


def test_learning_dimension_counts_directions_of_999_per_mille():
    v = np.array([0.9, 0.0985, 0.001, 0.0004, 0.0001])
    assert vf.learning_dimension(v) == 3          # 0.9995 >= 0.999 after three
    assert vf.learning_dimension(v, fraction=0.99) == 2
    assert vf.learning_dimension(np.ones(10)) == 10
    with pytest.raises(ValueError, match="decreasing"):
        vf.learning_dimension(v[::-1])
    with pytest.raises(ValueError, match="fraction"):
        vf.learning_dimension(v, fraction=1.0)


# ----------------------------------------------------------------- flatness
def test_flatness_of_a_quadratic_with_offset_is_exact_along_the_principal_directions(ou):
    theta, s, R = ou
    h = np.array([0.5, 2.0, 8.0, 30.0])
    Hm = R @ np.diag(h) @ R.T
    L0 = 0.05

    def loss(w):
        return L0 + 0.5 * w @ Hm @ w

    p = vf.pca(theta)
    curv = np.einsum("ki,ij,kj->k", p.directions, Hm, p.directions)
    res = vf.flatness(loss, np.zeros(4), p.directions)
    np.testing.assert_allclose(res.width, vf.quadratic_flatness(curv, L0), rtol=1e-9)
    np.testing.assert_allclose(res.left, res.right, rtol=1e-9)
    # exact Hessian flatness: 2√(2(e−1)L0/h)
    np.testing.assert_allclose(vf.quadratic_flatness(h, L0), 2 * np.sqrt(2 * (E - 1) * L0 / h))
    # off the minimum (the window mean) the profile has a slope b: exact asymmetric roots
    m = p.mean
    res = vf.flatness(loss, m, p.directions)
    b = p.directions @ (Hm @ m)
    Lm = loss(m)
    disc = np.sqrt(b ** 2 + 2 * curv * (E - 1) * Lm)
    np.testing.assert_allclose(res.right, (-b + disc) / curv, rtol=1e-8)
    np.testing.assert_allclose(res.left, (b + disc) / curv, rtol=1e-8)


def test_flatness_1d_handles_asymmetric_exponential_profiles():
    # the SI's drift mode, L = L0 exp(−β s + β2 s²) (Eq. S8): ln L − ln L0 = 1
    for beta, beta2 in [(2.0, 0.5), (0.3, 4.0), (5.0, 0.01)]:
        r = vf.flatness_1d(lambda s: 0.01 * math.exp(-beta * s + beta2 * s * s))
        d = math.sqrt(beta ** 2 + 4 * beta2)
        assert r.right == pytest.approx((beta + d) / (2 * beta2), rel=1e-9)
        assert r.left == pytest.approx((-beta + d) / (2 * beta2), rel=1e-9)
        assert r.width == pytest.approx(d / beta2, rel=1e-9)
    # log-quadratic profile: the SI's F = √(8/κ)
    r = vf.flatness_1d(lambda s: 2.0 * math.exp(0.5 * 3.0 * s * s))
    assert r.width == pytest.approx(math.sqrt(8 / 3.0), rel=1e-9)
    assert vf.log_quadratic_flatness(3.0) == pytest.approx(math.sqrt(8 / 3.0))
    # different shapes on the two sides: quadratic right, quartic left
    r = vf.flatness_1d(lambda s: 1.0 + (s / 0.2) ** 2 if s > 0 else 1.0 + (s / 3.0) ** 4)
    assert r.right == pytest.approx(0.2 * math.sqrt(E - 1), rel=1e-9)
    assert r.left == pytest.approx(3.0 * (E - 1) ** 0.25, rel=1e-9)


def test_flatness_1d_finds_the_first_crossing_when_the_bracket_holds_three():
    # bump at 5 and a rising wall: the last expansion bracket [4, 8] holds an up-, a
    # down- and an up-crossing; the answer is the first one
    def f(s):
        return 1.0 + 3.0 * math.exp(-(s - 5.0) ** 2 / 0.5) + 0.03 * s * s

    r = vf.flatness_1d(f, step=1.0)
    grid = np.linspace(0, 8, 800_001)
    first = grid[np.argmax(np.array([f(x) for x in grid[::100]]) >= E) * 100]
    assert abs(r.right - first) < 0.02
    assert r.right < 4.9
    assert f(r.right) == pytest.approx(E, rel=1e-8)


def test_flatness_1d_reports_infinite_width_and_non_finite_losses_as_walls():
    r = vf.flatness_1d(lambda s: 1.0 + 1e-6 * s * s if s >= -0.5 else math.inf,
                       max_distance=100)
    assert r.right == math.inf and r.width == math.inf
    assert r.left == pytest.approx(0.5, abs=1e-9)          # a NaN/inf wall at s = −0.5
    with pytest.raises(ValueError, match="positive and finite"):
        vf.flatness_1d(lambda s: s * s)
    with pytest.raises(ValueError, match="factor"):
        vf.flatness_1d(lambda s: 1 + s * s, factor=1.0)


# ---------------------------------------------------------------- power law
def test_power_law_fit_recovers_a_planted_exponent_and_its_ci_covers_it():
    covered, ests = 0, []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        F = np.exp(rng.uniform(np.log(0.1), np.log(30), 80))
        var = 2e-3 * F ** -3.7 * np.exp(rng.normal(0, 0.5, F.size))
        fit = vf.power_law_fit(F, var, n_boot=800, seed=seed)
        covered += fit.ci[0] <= 3.7 <= fit.ci[1]
        ests.append(fit.exponent)
    assert 0.85 <= covered / 60 <= 1.0
    assert abs(np.mean(ests) - 3.7) < 0.03
    fit = vf.power_law_fit(F, var, seed=1)
    assert not (fit.ci[0] <= 4.2 <= fit.ci[1])       # a wrong exponent is excluded
    assert fit.r2 > 0.9 and fit.n == 80 and fit.n_excluded == 0
    assert fit(1.0) == pytest.approx(fit.prefactor)
    again = vf.power_law_fit(F, var, seed=1)
    assert again.ci == fit.ci                         # seeded bootstrap reproduces


def test_power_law_fit_excludes_infinite_flatness_and_rejects_bad_input():
    F = np.array([1.0, 2.0, 4.0, np.inf, 8.0])
    fit = vf.power_law_fit(F, 3 * F ** -2.0, n_boot=100)
    assert fit.exponent == pytest.approx(2.0) and fit.n_excluded == 1
    with pytest.raises(ValueError, match="at least 3"):
        vf.power_law_fit([1.0, 2.0], [1.0, 0.5])
    with pytest.raises(ValueError, match="same length"):
        vf.power_law_fit([1.0, 2.0, 3.0], [1.0, 0.5])
    with pytest.raises(ValueError, match="all x are equal"):
        vf.power_law_fit([2.0, 2.0, 2.0], [1.0, 0.5, 3.0])


# ---------------------------------------------------------- D_i and τ_i
def test_diffusion_constants_and_correlation_times_of_an_ou_process(ou):
    theta, s, R = ou
    u = theta @ R                            # exact eigen-coordinates
    W = 40_000
    Ds, taus = [], []
    for k in range(theta.shape[0] // W):
        r = vf.diffusion_and_correlation(u[k * W:(k + 1) * W], max_lag=50)
        Ds.append(r.D)
        taus.append(r.tau)
    a = A_H
    D_exact = 2 * Q / (2 - a)                # ⟨(Δθ)²⟩ of the AR(1)
    n = np.arange(1, W)
    tau_exact = np.array([(np.sum((1 - (1 - ai) ** n) / ai) - 0.5 * (1 - (1 - ai) ** (W - 1)) / ai)
                          / (W - 1) for ai in a])
    np.testing.assert_allclose(np.mean(Ds, axis=0), D_exact, rtol=0.01)
    np.testing.assert_allclose(np.mean(taus, axis=0), tau_exact, rtol=0.06)
    # G_i(t) = (1 − a)^t exactly for the AR(1); S_i(t) = (1 − (1 − a)^t)/a
    np.testing.assert_allclose(r.G[:, :6], (1 - a[:, None]) ** np.arange(6), atol=0.03)
    np.testing.assert_allclose(r.S[:, 10], (1 - (1 - a) ** 10) / a, rtol=0.06)
    assert r.c[:, 0] == pytest.approx(np.ones(4))
    # the SI's σ² = D Δt τ holds up to the factor 2 of a confined direction
    np.testing.assert_allclose(np.mean(Ds, axis=0) * np.mean(taus, axis=0) / s, 2.0, rtol=0.1)


def test_dt_sets_the_time_unit_of_d_and_tau(ou):
    u = ou[0][:20_000]
    r1 = vf.diffusion_and_correlation(u)
    r5 = vf.diffusion_and_correlation(u, dt=5.0)
    np.testing.assert_allclose(r5.D, r1.D / 25)
    np.testing.assert_allclose(r5.tau, r1.tau * 5)
    np.testing.assert_allclose(r5.D * r5.tau * 5, r1.D * r1.tau)
    with pytest.raises(ValueError, match="do not move"):
        vf.diffusion_and_correlation(np.c_[u[:, 0], np.ones(len(u))])


# ------------------------------------------------------------ order params
def test_order_parameters_of_synthetic_gradients():
    g = np.array([[3.0, 4.0], [-3.0, -4.0]] * 10)          # perfectly anti-aligned
    op = vf.gradient_order_parameters(g, window=4)
    np.testing.assert_allclose(op.A, 5.0)
    np.testing.assert_allclose(op.C, -1.0)
    assert op.C.size == op.A.size - 1 and op.A_avg.size == op.C_avg.size == op.t_avg.size
    # directed then random: C_g ≈ 1 for aligned gradients, ≈ 0 for independent ones in 500-D
    rng = np.random.default_rng(0)
    u = np.ones(500) / math.sqrt(500)
    G = np.vstack([u + 0.01 * rng.normal(size=(300, 500)), rng.normal(size=(300, 500))])
    op = vf.gradient_order_parameters(G, window=20)
    assert np.all(op.C_avg[:250] > 0.9) and np.all(np.abs(op.C_avg[-250:]) < 0.05)
    t_star = vf.transition_time(op.t_avg, op.C_avg)
    assert 295 <= t_star <= 315
    np.testing.assert_allclose(vf.moving_average([1, 2, 3, 4, np.nan, 6], 2),
                               [1.5, 2.5, 3.5, 4.0, 6.0])


# --------------------------------------------------------- 2-D trainers
def test_2d_langevin_walkers_pca_and_sigma2_against_the_exact_em_covariance():
    A = np.array([[1.0, 0.3], [0.3, 0.5]])
    D = np.array([[0.05, -0.02], [-0.02, 0.02]])
    L = fp.landscapes.quadratic(A)
    dt = 0.02
    tr = vf.walkers_2d(L, diffusion=fp.diffusion.constant(D), dt=dt, n_walkers=8,
                       n_steps=100_000, seed=4)
    S = sla.solve_discrete_lyapunov(np.eye(2) - dt * A, 2 * dt * D)
    w, V = np.linalg.eigh(S)
    pooled = np.concatenate([tr.walker(i, 80_000) for i in range(8)])
    p = vf.pca(pooled)
    np.testing.assert_allclose(p.variances, w[::-1], rtol=0.05)
    assert abs(p.directions[0] @ V[:, 1]) > 0.99
    assert tr.positions.shape == (100_001, 8, 2)


def test_2d_sgd_on_a_quadratic_gives_sigma2_proportional_to_h_and_hessian_flatness():
    # random-shift SGD: D = Δ_S H², so σ_i² = Δ_S h_i: the inverse relation with ψ = 2
    h = np.array([0.5, 4.0])
    R = rotation(2, 1)
    A = R @ np.diag(h) @ R.T
    L = fp.landscapes.quadratic(A)
    eta, sigma, L0 = 0.02, 0.5, 0.01
    tr = vf.walkers_2d(L, eta=eta, sigma=sigma, n_walkers=8, n_steps=60_000, seed=2)
    pooled = np.concatenate([tr.walker(i, 50_000) for i in range(8)])
    p = vf.pca(pooled)
    a = eta * h
    s_exact = 2 * sigma * eta ** 2 * h ** 2 / (1 - (1 - a) ** 2)       # discrete, per mode
    np.testing.assert_allclose(p.variances, s_exact[::-1], rtol=0.05)
    res = vf.flatness(lambda w: L0 + float(L.value(w[0], w[1])), np.zeros(2), p.directions)
    np.testing.assert_allclose(res.width, vf.quadratic_flatness(h[::-1], L0), rtol=2e-3)
    assert p.variances[0] > p.variances[1] and res.width[0] < res.width[1]


def test_walkers_2d_argument_errors():
    L = fp.landscapes.paper()
    with pytest.raises(ValueError, match="not a mix"):
        vf.walkers_2d(L, eta=0.01, sigma=1.0, dt=0.1)
    with pytest.raises(ValueError, match="not a mix"):
        vf.walkers_2d(L, diffusion=fp.diffusion.isotropic(0.1))


def test_variance_flatness_on_a_known_window_and_its_errors(ou):
    theta, s, R = ou
    h = np.array([0.5, 2.0, 8.0, 30.0])
    Hm = R @ np.diag(h) @ R.T
    res = vf.variance_flatness(theta[:50_000], lambda w: 0.05 + 0.5 * w @ Hm @ w,
                               solution=np.zeros(4), fit_from=1, n_boot=200)
    assert res.indices.tolist() == [0, 1, 2, 3]
    # the chain's variances s_i (0.020, 0.017, 0.016, 0.012) against curvatures h_i
    np.testing.assert_allclose(res.flat.width, vf.quadratic_flatness(
        np.einsum("ki,ij,kj->k", res.pca.directions, Hm, res.pca.directions), 0.05), rtol=1e-8)
    d = res.to_dict()
    assert d["learning_dimension"] == 4 and len(d["F"]) == 4 and d["psi"]["n"] == 4
    with pytest.raises(ValueError, match="2-D array"):
        vf.variance_flatness(theta[:, 0], lambda w: 1.0)
    with pytest.raises(ValueError, match="indices"):
        vf.variance_flatness(theta[:100], lambda w: 1.0, indices=[7])
    with pytest.raises(ValueError, match="NaN"):
        vf.pca(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="positive and finite"):
        vf.variance_flatness(theta[:100], lambda w: 0.0)


def test_log_spaced_indices():
    idx = vf.log_spaced_indices(900, 40)
    assert idx[0] == 0 and idx[-1] == 899 and idx.size >= 40 and np.all(np.diff(idx) > 0)
    assert vf.log_spaced_indices(5, 40).tolist() == [0, 1, 2, 3, 4]


# ---------------------------------------------- flatness-detecting noise model
def test_fdn_diffusion_is_delta_h_where_h_is_positive_definite():
    A = np.array([[2.0, 0.5], [0.5, 1.0]])
    L = fp.landscapes.quadratic(A)
    D = fp.diffusion.fdn(L, 0.05)
    x = np.linspace(-1, 1, 5)
    np.testing.assert_allclose(D.tensor(x, x), 0.05 * A[:, :, None] * np.ones(5))
    np.testing.assert_allclose(D.divergence(x, x), 0.0)
    assert D.kind == "fdn" and D.params == {"delta": 0.05}
    assert D.with_strength(0.1).delta == 0.1


def test_fdn_diffusion_is_the_psd_part_and_its_divergence_matches_finite_differences():
    L = fp.landscapes.paper()
    D = fp.diffusion.fdn(L, 1.0)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1.5, 1.5, (2, 400))
    H = np.moveaxis(L.hessian(x, y), (0, 1), (-2, -1))
    lam, U = np.linalg.eigh(H)
    T = np.moveaxis(D.tensor(x, y), (0, 1), (-2, -1))
    tl = np.linalg.eigvalsh(T)
    np.testing.assert_allclose(tl, np.sort(np.maximum(lam, 0), axis=1), atol=1e-12)
    assert np.sum(lam[:, 0] < 0) > 50                 # the test does see indefinite H
    fdiff = fp.diffusion.custom(lambda x, y: D.unit_tensor(x, y)).unit_divergence(x, y)
    smooth = np.min(np.abs(lam), axis=1) > 0.05      # away from the kink λ = 0
    np.testing.assert_allclose(D.divergence(x, y)[:, smooth], fdiff[:, smooth], atol=1e-8)
    # where H is positive definite, ∇·(H⁺) = ∇·H
    pd = lam[:, 0] > 0.05
    divH = np.einsum("jij...->i...", L.hessian_gradient(x, y))
    np.testing.assert_allclose(D.divergence(x, y)[:, pd], divH[:, pd], atol=1e-12)


def test_fdn_langevin_on_a_quadratic_has_isotropic_covariance():
    # D = Δ A: A S + S A = 2 Δ A gives S = Δ I — variance independent of flatness (ψ = 0),
    # unlike SGD's D = Δ H² (σ² = Δ h, ψ = 2); Euler–Maruyama's exact discrete value
    A = np.array([[2.0, 0.5], [0.5, 1.0]])
    L = fp.landscapes.quadratic(A)
    dt, delta = 0.01, 0.05
    mc = montecarlo.langevin(L, fp.diffusion.fdn(L, delta), dt=dt, n_walkers=1024,
                             n_steps=2000, seed=3, radius=None, x0=(0.0, 0.0))
    S = sla.solve_discrete_lyapunov(np.eye(2) - dt * A, 2 * dt * delta * A)
    m = mc.moments()
    assert np.all(np.abs(m["cov"] - S) < 5 * m["cov_se"] + 1e-4)
    np.testing.assert_allclose(np.diag(S), delta, rtol=0.02)


def test_fdn_diffusion_argument_errors():
    with pytest.raises(ValueError, match="delta"):
        fp.diffusion.fdn(fp.landscapes.paper(), -1.0)
    with pytest.raises(TypeError, match="Landscape"):
        fp.diffusion.fdn("paper", 0.1)


# ------------------------------------------------------------------- network
def test_network_gradients_and_fisher_pieces_match_per_sample_finite_differences():
    net = vf.MLP((5, 4, 3, 3))
    rng = np.random.default_rng(0)
    th = net.init(rng)
    X, y = rng.normal(size=(7, 5)), rng.integers(0, 3, 7)
    _, g = net.loss_grad(th, X, y)
    eps = 1e-6
    gn = np.array([(net.loss(th + eps * e, X, y) - net.loss(th - eps * e, X, y)) / (2 * eps)
                   for e in np.eye(net.n_params)])
    np.testing.assert_allclose(g, gn, atol=1e-8)
    G = np.array([net.loss_grad(th, X[k:k + 1], y[k:k + 1])[1] for k in range(7)])
    np.testing.assert_allclose(net.per_sample_sq_norms(th, X, y), (G ** 2).sum(1), rtol=1e-12)
    np.testing.assert_allclose(net.fisher_diagonal(th, X, y), (G ** 2).mean(0), atol=1e-15)
    z = rng.normal(size=7)
    np.testing.assert_allclose(net.weighted_grad(th, X, y, z), z @ G, atol=1e-14)


def test_fdn_and_isotropic_noise_have_the_intended_covariance_and_equal_strength():
    net = vf.MLP((5, 4, 3))
    rng = np.random.default_rng(1)
    th = net.init(rng)
    X, y = rng.normal(size=(6, 5)), rng.integers(0, 3, 6)
    G = np.array([net.loss_grad(th, X[k:k + 1], y[k:k + 1])[1] for k in range(6)])
    F = G.T @ G / 6
    kw = dict(fisher="minibatch", noise_scale=0.5, fisher_batch=6)
    draws = {m: np.array([vf.gd_noise(net, th, X, y, method=m, rng_batch=rng, rng_noise=rng, **kw)
                          for _ in range(10_000)]) for m in ("fdn", "isotropic")}
    C = draws["fdn"].T @ draws["fdn"] / 10_000
    assert np.abs(C - 0.5 * F).max() < 0.05 * np.abs(F).max()
    tr_f = np.mean(np.sum(draws["fdn"] ** 2, 1))
    tr_i = np.mean(np.sum(draws["isotropic"] ** 2, 1))
    assert tr_i == pytest.approx(0.5 * np.trace(F), rel=0.03)
    assert tr_f == pytest.approx(tr_i, rel=0.05)
    Ci = draws["isotropic"].T @ draws["isotropic"] / 10_000
    np.testing.assert_allclose(np.diag(Ci), 0.5 * np.trace(F) / net.n_params, rtol=0.1)
    # diagonal Fisher
    fd = net.fisher_diagonal(th, X, y)
    d = np.array([vf.gd_noise(net, th, X, y, method="fdn", fisher="diagonal", noise_scale=0.5,
                              fisher_batch=6, rng_batch=rng, rng_noise=rng, fisher_diag=fd)
                  for _ in range(5000)])
    np.testing.assert_allclose(np.var(d, axis=0), 0.5 * fd, rtol=0.1, atol=1e-12)


# -------------------------------------------------------------------- digits
@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn", reason="scikit-learn not installed (extra 'digits')")
    return vf.load_digits_data(seed=0)


def test_digits_training_is_seeded_and_reproducible(digits):
    kw = dict(hidden=(12, 12), iterations=300, window=100, lr=0.05, data=digits)
    a = vf.train_digits("sgd", seed=5, **kw)
    b = vf.train_digits("sgd", seed=5, **kw)
    c = vf.train_digits("sgd", seed=6, **kw)
    assert np.array_equal(a.theta, b.theta) and np.array_equal(a.snapshots, b.snapshots)
    assert np.array_equal(a.A, b.A) and not np.array_equal(a.theta, c.theta)
    assert a.snapshots.shape == (100, 144) and a.A.size == 300 and a.C.size == 299
    assert a.history["train_loss"][-1] < a.history["train_loss"][0]
    f1 = vf.train_digits("fdn", seed=5, **kw)
    f2 = vf.train_digits("fdn", seed=5, **kw)
    assert np.array_equal(f1.theta, f2.theta)
    np.testing.assert_allclose(a.window_mean[a.layer_slice], a.snapshots.mean(0), rtol=1e-12)
    assert a.layer_loss()(a.window_mean[a.layer_slice]) == pytest.approx(
        a.train_loss(a.window_mean))


def test_digits_argument_errors(digits):
    with pytest.raises(ValueError, match="method"):
        vf.train_digits("adam", data=digits)
    with pytest.raises(ValueError, match="window"):
        vf.train_digits("sgd", iterations=10, window=20, data=digits)
    with pytest.raises(ValueError, match="lr"):
        vf.train_digits("sgd", lr=-0.1, data=digits)
    with pytest.raises(ValueError, match="fisher"):
        vf.train_digits("fdn", fisher="full", data=digits)
    with pytest.raises(ValueError, match="layer"):
        vf.train_digits("sgd", layer=3, iterations=10, window=5, data=digits)


@pytest.mark.slow
def test_digits_inverse_variance_flatness_relation(digits):
    run = vf.train_digits("sgd", lr=0.05, batch_size=32, iterations=16_000, window=4000,
                          seed=0, data=digits)
    assert run.history["train_error"][-1] == 0.0
    res = vf.variance_flatness(run.snapshots, run.layer_loss(), n_directions=40, n_boot=500)
    assert res.fit_variance.ci[0] > 2.0            # an inverse relation, steeper than F^-2
    assert res.learning_dimension < 0.1 * run.snapshots.shape[1]


# ------------------------------------------------------------- experiments
def test_experiment_2d_is_seeded_and_gives_the_three_noise_exponents_signs():
    from fpsolve.vf.experiments import experiment_2d
    kw = dict(seed=3, n_landscapes=2, n_walkers=2, n_steps=4000, window=3000)
    a, b = experiment_2d(**kw), experiment_2d(**kw)
    a.pop("seconds"), b.pop("seconds")
    assert a == b
    psi = {m: d["psi"]["exponent"] for m, d in a["models"].items()}
    assert psi["sgd"] > 1.5 and abs(psi["fdn"]) < 0.5 and psi["isotropic"] < -1.5
    for row in a["paper"]:           # near-quadratic valley: SI flatness ≈ Hessian-based
        np.testing.assert_allclose(row["F"], row["F_hessian"], rtol=0.1)


def test_fe_solver_with_fdn_noise_on_a_quadratic_gives_the_exact_gaussian():
    # D = Δ A on L = ½ θᵀAθ: stationary density N(0, Δ I), zero current
    A = np.array([[2.0, 0.5], [0.5, 1.0]])
    L = fp.landscapes.quadratic(A)
    sol = fp.solve(L, fp.diffusion.fdn(L, 0.05), fp.disk_mesh(radius=1.5, h=0.15),
                   boundary="reflecting", order=2)
    m = sol.moments()
    np.testing.assert_allclose(m["cov"], 0.05 * np.eye(2), atol=1e-6)
    np.testing.assert_allclose(m["mean"], 0.0, atol=1e-8)


@pytest.mark.slow
def test_fe_and_monte_carlo_agree_with_fdn_noise_on_the_paper_landscape():
    L = fp.landscapes.paper()
    D = fp.diffusion.fdn(L, 0.02)
    sol = fp.solve(L, D, fp.disk_mesh(radius=2.0, h=0.1), boundary="absorbing", order=2)
    x0 = np.random.default_rng(0).normal(0, 0.14, (1024, 2))
    # Euler–Maruyama's O(dt) bias is 4 % on ⟨y²⟩ at dt = 0.01 (η h = 0.08): Richardson
    # extrapolation of dt = 0.01 and 0.005 removes it
    var, se = [], []
    for dt in (0.01, 0.005):
        # 16 blocks of 64 walkers: enough independent groups for a trustworthy error bar
        mc = montecarlo.langevin(L, D, dt=dt, n_walkers=1024, n_steps=int(40 / dt), seed=5,
                                 x0=x0, block_size=64)
        var.append(np.diag(mc.moments()["cov"]))
        se.append(np.diag(mc.moments()["cov_se"]))
    extrap = 2 * var[1] - var[0]
    se_ex = np.hypot(2 * se[1], se[0])
    fe = np.diag(sol.moments()["cov"])
    assert np.all(np.abs(extrap - fe) < 4 * se_ex), (extrap, fe, se_ex)
    assert np.abs(var[0][1] - fe[1]) > 4 * se[0][1]      # the raw dt = 0.01 value is biased
