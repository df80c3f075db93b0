"""The curved boundary's first-order term in the estimates of reflecting solves: the
P_k/P_{k+1} and dual-weighted estimates share the geometry and cannot see it (review
R24: ⟨x²⟩ 1.0e-8 off at tol = 1e-10, estimate 1.4e-11, unflagged)."""
import warnings

import numpy as np
import pytest

import fpsolve as fp


def _exact_moments(a, b, delta, R=1.0, n=400):
    """⟨x²⟩, ⟨y²⟩ of ∝ exp(−(a x² + b y²)/2δ) on the disk of radius R (polar Gauss)."""
    r, wr = np.polynomial.legendre.leggauss(n)
    r, wr = 0.5 * R * (r + 1), 0.5 * R * wr
    t = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)
    rr, tt = np.meshgrid(r, t, indexing="ij")
    x, y = rr * np.cos(tt), rr * np.sin(tt)
    w = np.exp(-(a * x * x + b * y * y) / (2 * delta)) * rr * wr[:, None]
    return (x * x * w).sum() / w.sum(), (y * y * w).sum() / w.sum()


@pytest.mark.parametrize("weighting", ["auto", "none"])
def test_reflecting_moments_reach_tight_tol(weighting):
    a, b, delta, tol = 1.0, 4.0, 0.5, 1e-10
    L = fp.landscapes.quadratic([[a, 0.0], [0.0, b]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)
        sol = fp.solve(L, fp.diffusion.isotropic(delta), fp.disk_mesh(1.0, 0.2), order=3,
                       boundary="reflecting", tol=tol, goals=["x2", "y2"],
                       weighting=weighting)
    assert sol.diagnostics["adapt_converged"]
    m = sol.moments()
    for g, i, exact in zip(("x2", "y2"), (0, 1), _exact_moments(a, b, delta)):
        err = abs(m["cov"][i, i] + m["mean"][i] ** 2 - exact) / exact
        assert err <= tol
        assert sol.error_estimate[g] >= 0.5 * err
    assert set(sol.diagnostics["geometry"]) == {"x2", "y2", "L1"}


def _sagitta_mesh(h):
    """disk_mesh(1, h) whose curved edges have their nodes on the circle (the usual
    choice: an O(h^4) area defect) instead of the area-preserving ones."""
    from skfem import MeshTri2
    mesh = fp.disk_mesh(1.0, h)
    m2 = MeshTri2.from_mesh(mesh.skfem)
    dofs = m2.dofs.facet_dofs[0, m2.boundary_facets()]
    locs = m2.doflocs.copy()
    locs[:, dofs] /= np.linalg.norm(locs[:, dofs], axis=0)
    mesh._cache["curved"] = MeshTri2(locs, m2.t, sort_t=False)
    return mesh


def test_boundary_term_predicts_the_domain_change():
    """The term of a solve on the sagitta geometry predicts how its moments move to the
    area-preserving geometry (the same triangles): first order in the gap."""
    from fpsolve.fe.geometry_estimate import boundary_term
    L = fp.landscapes.quadratic([[1.0, 0.0], [0.0, 4.0]], center=(0.2, -0.1))
    D = fp.diffusion.isotropic(0.5)
    old = fp.solve(L, D, _sagitta_mesh(0.2), order=3, boundary="reflecting")
    new = fp.solve(L, D, fp.disk_mesh(1.0, 0.2), order=3, boundary="reflecting")
    c_old, _ = boundary_term(old)
    c_new, ind = boundary_term(new)
    for g, f in (("x2", lambda x, y: x * x), ("y2", lambda x, y: y * y)):
        moved = old.expectation(f) - new.expectation(f)
        assert abs(moved) > 1e-7                    # measurable: the test can fail
        assert c_old[g] - c_new[g] == pytest.approx(moved, rel=0.05)
        assert abs(c_new[g]) < 1e-3 * abs(moved)
    on_boundary = np.zeros(new.mesh.nelements, dtype=bool)
    on_boundary[new.basis.mesh.f2t[0, new.basis.mesh.boundary_facets()]] = True
    assert np.all(ind["x2"][~on_boundary] == 0) and ind["x2"][on_boundary].sum() > 0
    absorbing = fp.solve(L, D, fp.disk_mesh(1.0, 0.3), order=2)
    assert boundary_term(absorbing) is None       # P = 0 on the boundary: no such term
