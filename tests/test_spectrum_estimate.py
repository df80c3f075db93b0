"""Error estimates of the relaxation spectrum (P_k against P_{k+1}) against exact rates."""
import warnings

import numpy as np
import pytest

import fpsolve as fp
from fpsolve.fe.estimate import enriched_basis
from fpsolve.fe.solver import FPSolveWarning
from fpsolve.fe.spectrum_estimate import _next_spectrum, match
from fpsolve.theory.exact import radial_ou_escape_rate

#: reflecting radial OU L = |x|²/2, D = I/4 in a disk of radius 4: rates 0, 1, 1, 2, 2, 2
#: (to ~e^(−32))
EXACT = np.array([0.0, 1.0, 1.0, 2.0, 2.0, 2.0])


def _ou(order, h, boundary="reflecting", delta=0.25, R=4.0):
    return fp.Problem(fp.landscapes.quadratic(np.eye(2)), fp.diffusion.isotropic(delta),
                      fp.disk_mesh(R, h), boundary=boundary, order=order)


def _spectrum(prob, k=6):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = prob.spectrum(k)
    return spec, [w for w in caught if issubclass(w.category, FPSolveWarning)]


@pytest.mark.parametrize("order, h", [(1, 1.0), (1, 0.8), (2, 1.0), (3, 1.0)])
def test_rate_estimates_are_honest_on_coarse_meshes(order, h):
    spec, caught = _spectrum(_ou(order, h))
    err = np.abs(spec.rates.real - EXACT)
    err[1:] /= EXACT[1:]
    est = spec.error_estimate
    assert est[0] < 1e-12                     # the zero mode: absolute, exact in both
    big = err > 1e-6
    assert big[1:].all()
    assert np.all((est[big] >= 0.5 * err[big]) & (est[big] <= 10 * err[big])), (est, err)
    assert spec.untrusted == bool(np.any(est > 0.1)) == bool(caught)
    assert spec.summary()["error_estimate"] == pytest.approx(est.tolist())
    if caught:
        assert "not known to 10 %" in spec.warnings[-1]


def test_p1_coarse_mesh_is_flagged_and_fine_mesh_is_not():
    spec, caught = _spectrum(_ou(1, 1.0))          # λ 3.5 % … 5 % off
    assert spec.untrusted and caught and "λ4" in str(caught[0].message)
    spec, caught = _spectrum(_ou(3, 0.5))
    assert not spec.untrusted and not caught and spec.warnings == []
    assert np.all(spec.error_estimate < 1e-7)
    assert np.allclose(spec.rates.real, EXACT, atol=1e-7)


def test_estimate_can_be_skipped():
    prob = _ou(1, 1.0)
    spec = prob.spectrum(6, estimate=False)
    assert spec.error_estimate is None and spec.untrusted is None
    assert spec.summary()["error_estimate"] is None and spec.warnings == []


def test_split_rate_cluster_is_paired_by_mode():
    """The rate-2 triple (one radial mode, two l = 2 modes, mixed by the mesh): P1
    h = 0.8 has its 1.943 mode where P2 on the same mesh has 2.0014, not 2.0006;
    paired by value order the two modes would be nearly M-orthogonal."""
    prob = _ou(1, 0.8)
    spec, _ = _spectrum(prob)
    _, M, rates_n, u_n, _ = _next_spectrum(prob, prob.diffusion, 9, 1e-12)
    record = spec.estimate_record
    assert record["pairing"][3] == 5 and min(record["cosine"]) > 0.85
    _, rec = enriched_basis(prob.basis, prob.mesh._cache)
    mode = spec.modes[3]
    emb = (rec.prolong(mode.real[:, None]) + 1j * rec.prolong(mode.imag[:, None])).T
    _, cos = match(spec.rates[3:4], emb, rates_n[3:4], u_n[3:4], M)
    assert cos[0] < 0.1                            # the value-order partner: another mode
    assert record["rates"][3] == pytest.approx(rates_n[5])


def test_match_follows_the_modes_not_the_order():
    M = np.eye(3)
    a, b, c = np.eye(3)
    rates_k = np.array([1.0, 1.1, 5.0])
    # V_{k+1}: mode b now lies below mode a
    index, cos = match(rates_k, np.array([a, b, c]), np.array([1.05, 1.06, 5.0]),
                       np.array([b, a, c]), M)
    assert index.tolist() == [1, 0, 2] and np.allclose(cos, 1)
    # conjugate modes a ± iω: paired by the sign of ω
    u = np.array([1.0, 1j, 0.0])
    index, _ = match(np.array([1 + 2j, 1 - 2j]), np.array([u, u.conj()]),
                     np.array([1.001 - 2j, 1.001 + 2j]), np.array([u.conj(), u]), M)
    assert index.tolist() == [1, 0]


@pytest.mark.parametrize("order, h, delta, weighting",
                         [(1, 0.15, 0.1, "none"), (2, 0.2, 0.1, "none"),
                          (2, 0.1, 0.05, "gibbs")])
def test_absorbing_escape_rate_estimate_is_honest(order, h, delta, weighting):
    mu = radial_ou_escape_rate(delta)
    prob = fp.Problem(fp.landscapes.quadratic(np.eye(2)), fp.diffusion.isotropic(delta),
                      fp.disk_mesh(1.0, h), boundary="absorbing", order=order,
                      weighting=weighting)
    assert prob.gibbs == (weighting == "gibbs")
    spec, _ = _spectrum(prob, k=3)
    err = abs(spec.rates[0].real - mu) / mu
    assert err > 1e-6
    assert 0.5 * err <= spec.error_estimate[0] <= 10 * err
    assert spec.estimate_record["layer_peclet"] <= 3.0


def test_unresolved_boundary_layer_gives_no_escape_rate_estimate():
    """Radial OU δ = 0.02, P3 h = 0.1: μ 26 % off, outflow Péclet 5 (P3 and P4 wrong alike)."""
    spec, caught = _spectrum(_ou(3, 0.1, "absorbing", 0.02, 1.0), k=3)
    assert spec.error_estimate[0] == np.inf and spec.untrusted
    assert "boundary layer not resolved" in str(caught[0].message)
    assert spec.summary()["error_estimate"][0] is None and spec.summary()["untrusted"]
