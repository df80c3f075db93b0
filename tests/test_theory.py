"""Adiabatic theory (fpsolve.theory) against closed forms, quadrature, Monte Carlo and FE."""
import numpy as np
import pytest
from scipy.integrate import quad

import fpsolve as fp

T = fp.theory
FIG3 = dict(eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)


@pytest.fixture(scope="module")
def L():
    return fp.landscapes.paper(**FIG3)


# -- effective noise and anisotropy ---------------------------------------------------------

@pytest.mark.parametrize("ds", [0.005, 0.012])
def test_kappa_and_delta_from_gauss_hermite_average_of_sgd_tensor(L, ds):
    """κ(x) = Δ(x)/⟨D11⟩_y with y ~ N(0, Δ_Sλ) (S26–S28), D from the diffusion module."""
    th = T.adiabatic(L, ds)
    D = fp.diffusion.sgd(L, ds)
    g, w = np.polynomial.hermite_e.hermegauss(20)      # exact for the degree-8 polynomial D11
    x = np.linspace(-1.5, 1.5, 13)
    y = np.sqrt(ds * L.lam(x))[:, None] * g[None, :]
    d11 = np.sum(D.tensor(x[:, None] + 0 * y, y)[0, 0] * w, axis=1) / np.sqrt(2 * np.pi)
    d22_valley = D.tensor(x, 0 * x)[1, 1]
    np.testing.assert_allclose(th.Delta(x), d22_valley, rtol=1e-13)
    np.testing.assert_allclose(th.diffusion_x(x), d11, rtol=1e-12)
    np.testing.assert_allclose(th.kappa(x), d22_valley / d11, rtol=1e-12)
    np.testing.assert_allclose(th.variance_y(x), th.Delta(x) / L.lam(x), rtol=1e-14)


@pytest.mark.parametrize("ds", [0.003, 0.01, 0.02])
def test_kappa_at_origin_is_the_main_text_closed_form(L, ds):
    th = T.adiabatic(L, ds)
    closed = 1 / (L.eps ** 2 + 2 * L.eps * ds * L.lam1 + 3 * ds ** 2 * L.lam1 ** 2)
    assert th.kappa(0.0) == pytest.approx(closed, rel=1e-13)
    assert T.kappa_origin(L, ds) == pytest.approx(closed, rel=1e-15)
    assert th.kappa(0.0) > 1                       # anisotropic: stronger noise along y


# -- transition boundary ----------------------------------------------------------------------

@pytest.mark.parametrize("params", [FIG3, dict(eps=0.001, lam0=8.0, lam1=-2.0, lam2=1.0),
                                    dict(eps=0.05, lam0=3.0, lam1=-0.7, lam2=0.2)])
def test_critical_delta_s_is_minus_eps_over_lam1(params):
    L = fp.landscapes.paper(**params)
    dstar = T.critical_delta_s(L)
    assert dstar == pytest.approx(-params["eps"] / params["lam1"], rel=1e-11)
    # and the marginal really switches from a maximum to a minimum at x = 0 there
    assert T.adiabatic(L, 0.98 * dstar).curvature() > 0
    assert T.adiabatic(L, 1.02 * dstar).curvature() < 0
    assert T.adiabatic(L, 0.98 * dstar).x_ss == 0.0
    assert T.adiabatic(L, 1.02 * dstar).x_ss > 0.0


def test_fpe_form_shifts_the_transition_up_by_order_eps(L):
    """Keeping 1/D_x (exact S29 solution) delays the transition by O(ε) relative."""
    shift = [T.critical_delta_s(fp.landscapes.paper(**{**FIG3, "eps": e}), form="fpe")
             / (e / 2) - 1 for e in (0.02, 0.01, 0.005)]
    assert 0.1 < shift[0] < 0.2
    assert shift[1] / shift[0] == pytest.approx(0.5, abs=0.08)
    assert shift[2] / shift[1] == pytest.approx(0.5, abs=0.08)


def test_no_transition_raises(L):
    flat_at_origin = fp.landscapes.paper(eps=0.02, lam0=8.0, lam1=2.0, lam2=0.0)
    with pytest.raises(ValueError, match="bracket"):
        T.critical_delta_s(flat_at_origin)


# -- the reduced density and L_SGD --------------------------------------------------------------

def test_exponent_and_normalisation_against_scipy_quad(L):
    th = T.adiabatic(L, 0.012)
    integrand = lambda s: (th.kappa(s) * L.eps * L.lam0 * s / th.Delta(s)      # S30 as printed
                           + th.kappa(s) * L.dlam(s) / (2 * L.lam(s)))
    for x in (-1.3, -0.4, 0.123, 0.9, 1.7):
        assert th.exponent(x) == pytest.approx(quad(integrand, 0, x, epsabs=1e-13)[0],
                                               rel=1e-11, abs=1e-11)
    mass = quad(th.marginal, -2, 2, points=[-th.x_ss, th.x_ss], limit=200)[0]
    assert mass == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("form, zero_flux", [("fpe", True), ("paper", False)])
def test_fpe_form_is_the_zero_flux_solution_of_s29(L, form, zero_flux):
    """J = a P − (D_x P)' vanishes for ψ/D_x, not for S30's ψ (the dropped 1/D_x)."""
    th = T.adiabatic(L, 0.012, form=form)
    x, h = np.linspace(-1.2, 1.2, 25), 1e-4
    P = th.marginal
    dDP = (th.diffusion_x(x + h) * P(x + h) - th.diffusion_x(x - h) * P(x - h)) / (2 * h)
    J = th.drift_x(x) * P(x) - dDP
    scale = np.max(np.abs(th.drift_x(x) * P(x)))
    if zero_flux:
        assert np.max(np.abs(J)) < 1e-6 * scale
    else:
        assert np.max(np.abs(J)) > 1e-2 * scale


def test_l_sgd_is_eq10_literally(L):
    ds = 0.009
    th = T.adiabatic(L, ds)
    kap, Dl = th.kappa, th.Delta
    for x in (-1.1, 0.3, 0.8, 1.4):
        integral = quad(lambda s: kap(s) * L.eps * L.lam0 * s / Dl(s)
                        + kap(s) * L.dlam(s) / (2 * L.lam(s)), 0, x, epsabs=1e-13)[0]
        eq10 = (Dl(x) * integral - 0.5 * Dl(x) * np.log(L.lam(x) / Dl(x))
                - 0.5 * L.eps * L.lam0 * x * x)
        assert th.L_sgd(x) == pytest.approx(eq10, rel=1e-10, abs=1e-12)
    # L_eff = L + L_SGD (Eq. 7 / S32)
    assert th.L_eff(0.8, 0.2) == pytest.approx(L.value(0.8, 0.2) + th.L_sgd(0.8), rel=1e-14)


def test_eq11_is_the_small_x_limit_of_eq10(L):
    th = T.adiabatic(L, 0.005)
    x = np.array([1e-2, 2e-2])
    eq10 = th.L_sgd(x) - th.L_sgd(0.0)
    eq11 = th.L_sgd_approx(x) - th.L_sgd_approx(0.0)
    # same quadratic term up to O(1/κ(0)) and O(Δ_S) corrections
    np.testing.assert_allclose(eq10, eq11, rtol=0.02)
    # far from the origin κ(x) ≪ κ(0): Eq. 11 (constant κ) overestimates the barrier
    big = th.L_sgd_approx(1.5) - th.L_sgd_approx(0.0)
    assert big > 3 * (th.L_sgd(1.5) - th.L_sgd(0.0))


def test_x_ss_is_a_zero_of_the_drift_and_approaches_s42(L):
    dstar = T.critical_delta_s(L)
    for rel in (1e-3, 1e-2):
        th = T.adiabatic(L, dstar * (1 + rel))
        assert abs(th.drift_x(th.x_ss)) < 1e-10          # max of ψ ⇔ a(x) = 0
        assert th.x_ss / th.x_ss_s42() == pytest.approx(1.0, abs=3 * rel)
    assert T.adiabatic(L, 0.9 * dstar).x_ss_s42() == 0.0


def test_landau_coefficients_of_s41(L):
    """Φ Δ(0) ≈ ½A(Δ_S* − Δ_S)x² + ¼Bx⁴, A = −κ(0)λ0λ1, B = κ(0)Δ_S(λ1² + 2λ0λ2)."""
    dstar = T.critical_delta_s(L)
    for ds in (0.9 * dstar, 1.1 * dstar):
        th = T.adiabatic(L, ds)
        c2, _ = th.taylor()
        A = -th.kappa(0.0) * L.lam0 * L.lam1
        assert c2 * th.Delta(0.0) == pytest.approx(0.5 * A * (dstar - ds), rel=1e-6)
    th = T.adiabatic(L, dstar)
    B = th.kappa(0.0) * dstar * (L.lam1 ** 2 + 2 * L.lam0 * L.lam2)
    assert th.taylor()[1] * th.Delta(0.0) == pytest.approx(0.25 * B, rel=1e-6)


# -- search time (S44) against Monte Carlo of the reduced SDE ------------------------------------

def _mfpt_euler_maruyama(th, x0, target, n=3000, dt=0.005, tmax=300.0, seed=7):
    """Mean first passage of dx = a dt + √(2D_x) dW from x0 to ``target`` (seeded EM).

    A Brownian-bridge test catches crossings inside a step: P = exp(−2 d0 d1/(2D dt)).
    """
    rng = np.random.default_rng(seed)
    x = np.full(n, float(x0))
    t = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    side = np.sign(x0 - target)
    for _ in range(int(tmax / dt)):
        i = np.flatnonzero(alive)
        if i.size == 0:
            break
        xa = x[i]
        var = 2 * th.diffusion_x(xa) * dt
        xn = np.clip(xa + th.drift_x(xa) * dt + np.sqrt(var) * rng.standard_normal(i.size),
                     -th.R, th.R)
        d0, d1 = side * (xa - target), side * (xn - target)
        hit = (d1 <= 0) | (rng.random(i.size) < np.exp(-2 * d0 * np.maximum(d1, 0) / var))
        t[i] += dt
        x[i] = xn
        alive[i[hit]] = False
    assert not alive.any(), "Monte Carlo walkers did not all arrive: raise tmax"
    return t.mean(), t.std() / np.sqrt(n)


@pytest.mark.parametrize("ds, x0, above", [(0.006, 0.05, False), (0.014, 0.6, True)])
def test_search_time_s44_against_monte_carlo(L, ds, x0, above):
    th = T.adiabatic(L, ds)
    target = th.x_ss if above else 0.0
    tau = th.search_time(x0, target)
    mc, err = _mfpt_euler_maruyama(th, x0, target)
    # 3 standard errors plus 2 % for the Euler–Maruyama bias
    assert abs(tau - mc) < 3 * err + 0.02 * tau, (tau, mc, err)
    # default target is x_ss on the side of x0; the problem is symmetric
    assert th.search_time(-x0) == pytest.approx(th.search_time(x0), rel=1e-12)


def test_search_time_grows_toward_the_transition(L):
    """Critical slowing down (S45): τ_s increases as Δ_S → Δ_S* from below."""
    taus = [T.adiabatic(L, ds).search_time(0.05, 0.0) for ds in (0.006, 0.008, 0.0095)]
    assert taus[0] < taus[1] < taus[2]


# -- critical exponents ------------------------------------------------------------------------

def test_critical_exponents_from_the_theory_itself():
    """α = 1 and β1 = ½ emerge from the formulas in their asymptotic window (small ε).

    β2 does not: with landscape-dependent κ(x) the diffusion D_x(x_ss) grows
    with x_ss² ∝ δ, so τ_s above Δ_S* falls faster than δ^(−½) (docs/transition.md).
    """
    L = fp.landscapes.paper(eps=2e-4, lam0=8.0, lam1=-2.0, lam2=1.0)
    r = T.critical_exponents(L, npts=5, R=1.0)
    assert r["delta"][-1] < 0.03 * r["delta_star"]           # close to criticality
    assert r["alpha"] == pytest.approx(1.0, abs=0.02)
    assert r["beta1"] == pytest.approx(0.5, abs=0.05)
    assert r["beta2"] > 0.65


# -- convergence and divergence ----------------------------------------------------------------

def test_convergence_multipliers_and_moments(L):
    th = T.adiabatic(L, 0.012)
    mo = th.moments()
    assert mo["lam"] == pytest.approx(quad(lambda x: L.lam(x) * th.marginal(x), -2, 2,
                                           limit=200)[0], rel=1e-8)
    eta = 0.04
    out = th.convergence(eta)
    sigma = 0.012 / eta
    assert out["m1"] == pytest.approx(1 - eta * mo["lam"])
    assert out["m2"] == pytest.approx(1 + eta ** 2 * mo["lam2"] - 2 * eta * mo["lam"]
                                      + 2 * eta ** 2 * sigma * mo["dlam2"])
    assert out["first_order"] and out["second_order"]
    bad = T.convergence_multipliers(0.5, 1.0, mo["lam"], mo["lam2"], mo["dlam2"])
    assert not bad["first_order"] and not bad["second_order"]


def test_delta_m_satisfies_s38_and_s40_is_its_small_eta_limit(L):
    eta = 0.04
    dm = T.delta_m(L, eta)
    lam_f = L.lam(T.flattest_point(L))
    assert T.flattest_point(L) == pytest.approx(1.0)
    assert eta * lam_f * (1 + 3 * dm ** 2 * L.lam1 ** 2) == pytest.approx(2.0, rel=1e-12)
    ratio = [T.delta_m(L, e, "S40") / T.delta_m(L, e) for e in (1e-2, 1e-4)]
    assert abs(ratio[1] - 1) < abs(ratio[0] - 1) < 0.05


def test_adiabatic_ratio_is_small_near_the_transition(L):
    th = T.adiabatic(L, 0.01)
    assert th.adiabatic_ratio(0.0) == pytest.approx(abs(L.eps + 0.01 * L.lam1), abs=1e-15)
    assert np.max(th.adiabatic_ratio(np.linspace(-1, 1, 21))) < 0.1


# -- simple model (constant Δ, κ): Eq. 6 --------------------------------------------------------

def test_simple_model_formulas(L):
    sm = T.simple_model(0.05, 4.0, L)
    x, y = 0.7, 0.1
    # L_eff = −Δ ln P + const (Eq. 7, S23)
    d1 = -sm.delta * np.log(sm.density(x, y) / sm.density(0.2, -0.3))
    assert d1 == pytest.approx(sm.L_eff(x, y) - sm.L_eff(0.2, -0.3), rel=1e-12)
    assert sm.L_sgd(x) == pytest.approx(sm.L_eff(x, y) - L.value(x, y), rel=1e-12)
    assert quad(sm.marginal, -2, 2, limit=200)[0] == pytest.approx(1.0, rel=1e-9)
    inner = quad(lambda yy: sm.density(x, yy), -np.inf, np.inf)[0]
    assert inner == pytest.approx(sm.marginal(x), rel=1e-10)
    assert sm.x_ss == 0.0                       # Fig. 3 landscape: confinement wins
    # weak confinement: x_ss is the zero of Φ' = κελ0x/Δ + κλ'/(2λ) (S21) near x_F
    L2 = fp.landscapes.paper(eps=0.01, lam0=2.0, lam1=-2.0, lam2=1.0)
    sm2 = T.simple_model(0.05, 4.0, L2)
    xs = sm2.x_ss
    dphi = 4.0 * L2.eps * L2.lam0 * xs / 0.05 + 4.0 * L2.dlam(xs) / (2 * L2.lam(xs))
    assert 0.5 < xs < 1.0 and abs(dphi) < 1e-6      # Brent on Φ: x to ~√ε_mach


SIMPLE = dict(lam0=2.0, lam1=-2.0, lam2=1.0)      # λ ≥ 1: wide y-band, cheap mesh


def _simple_fe_error(kappa, delta, eps, mesh):
    """Max relative deviation of the FE x-marginal from S21 (reflecting disk)."""
    L = fp.landscapes.paper(eps=eps, **SIMPLE)
    sol = fp.solve(L, fp.diffusion.anisotropic(delta, kappa), mesh, boundary="reflecting")
    xs = np.linspace(-1.5, 1.5, 31)
    th = T.simple_model(delta, kappa, L).marginal(xs)
    return np.max(np.abs(sol.marginal("x", xs) - th)) / th.max()


def test_eq6_against_fe_exact_for_kappa_one_and_first_order_in_delta_otherwise():
    """Eq. 6/S22 solves the 2-D equation exactly only for κ = 1 (Boltzmann).

    For κ > 1 it is the adiabatic limit: the x-flux carries a y² term (½λ'y²(1 − 1/κ))
    that does not vanish, and the error is of the order of the time-scale ratio
    τ_y/τ_x ∝ Δ.  Scaling Δ and ε together keeps S21 fixed, so the FE–Eq. 6
    deviation must halve when Δ halves.
    """
    mesh = fp.disk_mesh(2.0, 0.06)
    assert _simple_fe_error(1.0, 0.05, 0.01, mesh) < 1e-3
    e1 = _simple_fe_error(4.0, 0.05, 0.01, mesh)
    e2 = _simple_fe_error(4.0, 0.025, 0.005, mesh)
    assert 5e-3 < e1 < 3e-2
    assert 0.45 < e2 / e1 < 0.65


# -- validation -------------------------------------------------------------------------------

def test_bad_arguments_raise_value_errors(L):
    with pytest.raises(ValueError, match="delta_s"):
        T.adiabatic(L, -0.01)
    with pytest.raises(ValueError, match="form"):
        T.adiabatic(L, 0.01, form="exact")
    with pytest.raises(ValueError, match="landscape"):
        T.adiabatic(fp.landscapes.quadratic(np.eye(2)), 0.01)
    with pytest.raises(ValueError, match="x"):
        T.adiabatic(L, 0.01).marginal(2.5)
    with pytest.raises(ValueError, match="kappa"):
        T.simple_model(0.1, 0.0, L)
    with pytest.raises(ValueError, match="eta"):
        T.convergence_multipliers(-1.0, 0.1, 8.0, 64.0, 0.0)
    with pytest.raises(ValueError, match="approx"):
        T.delta_m(L, 0.01, approx="S41")
    with pytest.raises(ValueError, match="window"):
        T.critical_exponents(L, window=(0.5, 0.1))
