"""Numerical Δ_S* of the 2-D FE solution and the FE ↔ theory helpers (fpsolve.fe.transition)."""
import warnings

import numpy as np
import pytest

import fpsolve as fp
from fpsolve.fe import transition as tr

FIG3 = dict(eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)


@pytest.fixture(scope="module")
def L():
    return fp.landscapes.paper(**FIG3)


@pytest.fixture(scope="module")
def coarse():
    return fp.disk_mesh(2.0, 0.08)


def test_marginal_curvature_on_a_boltzmann_density():
    """κ = 1 makes S21 exact (P ∝ e^{−L/Δ}): P''(0)/P(0) = −Φ''(0) is known in closed form."""
    L = fp.landscapes.paper(eps=0.01, lam0=2.0, lam1=-2.0, lam2=1.0)
    for delta in (0.05, 0.2):
        sol = fp.solve(L, fp.diffusion.anisotropic(delta, 1.0), fp.disk_mesh(2.0, 0.06),
                       boundary="reflecting")
        # Φ = κελ0x²/(2Δ) + (κ/2) ln λ  ⇒  Φ''(0) = ελ0/Δ + λ1/λ0
        exact = -(L.eps * L.lam0 / delta + L.lam1 / L.lam0)
        assert tr.marginal_curvature(sol) == pytest.approx(exact, rel=1e-4)
        assert tr.marginal_curvature(sol, d=0.03) == pytest.approx(exact, rel=1e-4)
    with pytest.raises(ValueError, match="d"):
        tr.marginal_curvature(sol, d=-1.0)


@pytest.fixture(scope="module")
def transitions(L, coarse):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)   # negative mass on coarse meshes
        return {cross: fp.critical_delta_s(L, cross_diffusion=cross, mesh=coarse, order=2,
                                           bracket=(0.009, 0.013), xtol=1e-6)
                for cross in (True, False)}


def test_critical_delta_s_two_coarse_levels(transitions, L):
    """Both levels agree to ≲ 1e-4; the values match the h = 0.025 study (bench/transition.py)."""
    for cross, ref in ((True, 0.01059), (False, 0.01175)):
        res = transitions[cross]
        assert res.cross_diffusion is cross
        assert len(res.levels) == 2
        assert res.levels[1].h == pytest.approx(res.levels[0].h / np.sqrt(2), rel=0.05)
        assert res.levels[1].dofs > 1.8 * res.levels[0].dofs
        assert res.value == res.levels[1].value
        assert res.uncertainty < 1.5e-4
        assert abs(res.levels[0].value - res.levels[1].value) <= res.uncertainty
        assert res.value == pytest.approx(ref, abs=1.5e-4)
        assert res.nsolves == sum(lv.nsolves for lv in res.levels)
        assert all(5 <= lv.nsolves <= 15 for lv in res.levels)
        assert all(lv.slope > 0 for lv in res.levels)     # minimum at 0 above Δ_S*
        assert res.theory == pytest.approx(-L.eps / L.lam1)
        d = res.as_dict()
        assert d["value"] == res.value and "history" not in d["levels"][0]


def test_cross_diffusion_lowers_the_transition_and_both_exceed_the_adiabatic_value(transitions):
    cross, nocross = transitions[True], transitions[False]
    assert nocross.value - cross.value > 8e-4
    # the adiabatic −ε/λ1 = 0.01 is low by O(ε) (docs/transition.md)
    assert 0.03 < cross.value / cross.theory - 1 < 0.1
    assert 0.13 < nocross.value / nocross.theory - 1 < 0.22


def test_bracket_without_sign_change_raises(L):
    prob = fp.Problem(L, fp.diffusion.sgd(L, 0.005), fp.disk_mesh(2.0, 0.1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)
        with pytest.raises(ValueError, match="bracket"):
            tr.locate_transition(prob, bracket=(0.005, 0.008))
    with pytest.raises(ValueError, match="bracket"):
        tr.locate_transition(prob, bracket=(0.01, 0.009))
    iso = fp.Problem(L, fp.diffusion.isotropic(0.1), fp.disk_mesh(2.0, 0.1))
    with pytest.raises(ValueError, match="prob"):
        tr.locate_transition(iso)
    with pytest.raises(ValueError, match="cross_diffusion"):
        fp.critical_delta_s(L, cross_diffusion="yes")


def test_x_ss_curve_fe_and_theory(L, coarse):
    c = tr.x_ss_curve(L, [0.008, 0.013], mesh=coarse)
    np.testing.assert_array_equal(c["delta_s"], [0.008, 0.013])
    assert c["fe"][0] < 0.02 and c["theory_paper"][0] == 0.0       # phase I
    assert c["fe"][1] > 0.3 and c["theory_paper"][1] > 0.3          # phase II
    assert c["fe"][1] == pytest.approx(c["theory_paper"][1], abs=0.05)
    with pytest.raises(ValueError, match="delta_s_values"):
        tr.x_ss_curve(L, [0.01, -1.0], mesh=coarse)


class _TheorySolution:
    """Duck-typed Solution whose marginal is the theory's (times an arbitrary constant)."""

    def __init__(self, th):
        self.th, self.landscape = th, th.landscape
        self.diffusion = fp.diffusion.sgd(th.landscape, th.delta_s)
        self.mesh = fp.disk_mesh(2.0, 0.5)

    def marginal(self, axis, xs):
        return 3.7 * self.th.marginal(np.asarray(xs))


@pytest.mark.parametrize("ds", [0.009, 0.012])
def test_l_sgd_fe_is_eq10_with_the_fe_marginal(L, ds):
    """Fed the S30 marginal, the FE definition returns Eq. 10 exactly (any normalisation)."""
    th = fp.theory.adiabatic(L, ds)
    xs = np.linspace(-1.6, 1.6, 17)
    np.testing.assert_allclose(tr.l_sgd_fe(_TheorySolution(th), xs), th.L_sgd(xs),
                               rtol=1e-10, atol=1e-12)
    # the floor masks the far tail only
    floored = tr.l_sgd_fe(_TheorySolution(th), xs, rel_floor=1e-3)
    low = th.marginal(xs) < 1e-3 * th.marginal(xs).max()
    assert low.any() and np.all(np.isnan(floored[low]))
    np.testing.assert_array_equal(floored[~low], tr.l_sgd_fe(_TheorySolution(th), xs)[~low])
    prof = tr.l_sgd_profiles(_TheorySolution(th), xs)
    np.testing.assert_allclose(prof["fe"], prof["eq10"], rtol=1e-9, atol=1e-11)
    assert prof["eq11"][8] == 0.0


def test_l_sgd_from_fe_changes_shape_across_the_transition(L, coarse):
    """Without cross-diffusion (clean P2 solution even at h = 0.08)."""
    prob = fp.Problem(L, fp.diffusion.sgd(L, 0.009, cross_diffusion=False), coarse)
    xs = np.array([0.0, 0.15, 0.3, 0.45])
    below = tr.l_sgd_profiles(prob.solve(0.009), xs)
    above = tr.l_sgd_profiles(prob.solve(0.013), xs)
    assert np.all(np.diff(below["fe"]) > 0) and np.all(np.diff(below["eq10"]) > 0)
    assert above["fe"][1] < 0 and above["eq10"][1] < 0          # minima moved off 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)
        iso = fp.solve(L, fp.diffusion.isotropic(0.1), fp.disk_mesh(2.0, 0.2))
    with pytest.raises(ValueError, match="sol"):
        tr.l_sgd_fe(iso, xs)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::fpsolve.FPSolveWarning")
def test_critical_delta_s_mesh_refinement_study(L):
    """h = 0.05 → 0.035: the cross-diffusion value moves by < 2e-5 (bench has h = 0.025)."""
    res = fp.critical_delta_s(L, cross_diffusion=True, mesh=fp.disk_mesh(2.0, 0.05))
    assert res.uncertainty < 3e-5
    assert res.value == pytest.approx(0.01059, abs=5e-5)
