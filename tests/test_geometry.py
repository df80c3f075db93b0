"""Curved boundary elements: exact facet quadrature points and the inverse map (issue 17).

Adapted meshes have curved boundary elements of size 1e-5; scikit-fem's Newton inverse
stops at an absolute 1e-12 in reference coordinates, below the round-off floor
eps·|x|/h of such elements, so ``basis.boundary()`` raised and point location declared
them outside.  ``graded_disk`` makes such elements by local refinement at one point.
"""
import numpy as np
import pytest

import fpsolve as fp
from fpsolve.fe.assembly import _curved, locate, make_basis
from fpsolve.fe.geometry import boundary_basis, inverse_map
from fpsolve.fe.refine import refine


def graded_disk(R=1.0, h=0.2, levels=14, at=(1.0, 0.0)):
    """Disk mesh refined ``levels`` times towards the boundary point R·at (h_min ≈ 1e-5)."""
    m = fp.disk_mesh(R, h)
    a = R * np.asarray(at, dtype=float)
    for k in range(levels):
        mid = m.p[:, m.t].mean(axis=1)
        m = refine(m, np.flatnonzero(np.hypot(mid[0] - a[0], mid[1] - a[1]) < 1.5 * h * 0.5 ** k))
    return m


@pytest.mark.parametrize("order", [1, 2, 3])
def test_boundary_basis_equals_scikit_fem_where_that_works(order):
    basis = make_basis(fp.disk_mesh(1.5, 0.3), order)
    ours, theirs = boundary_basis(basis), basis.boundary()
    np.testing.assert_array_equal(ours.find, theirs.find)
    np.testing.assert_allclose(ours.global_coordinates(), theirs.global_coordinates(),
                               atol=1e-13)
    np.testing.assert_allclose(ours.normals, theirs.normals, atol=1e-12)
    np.testing.assert_allclose(ours.dx, theirs.dx, rtol=1e-13)
    u = np.random.default_rng(1).standard_normal(basis.N)
    a, b = ours.interpolate(u), theirs.interpolate(u)
    np.testing.assert_allclose(a, b, atol=1e-10)
    np.testing.assert_allclose(a.grad, b.grad, atol=1e-8)


@pytest.mark.parametrize("order", [2, 3])
def test_boundary_basis_on_tiny_curved_elements(order):
    mesh = graded_disk()
    assert mesh.quality()["h_min"] < 2e-5
    basis = make_basis(mesh, order)
    fb = boundary_basis(basis)
    x, n, ds = (np.asarray(a) for a in (fb.global_coordinates(), fb.normals, fb.dx))
    # the discrete (quadratic) boundary: ∮ n ds = 0 and ∮ x·n ds = 2·area, both exact
    # for polynomial geometry with this quadrature
    assert np.abs((n * ds).sum(axis=(1, 2))).max() < 1e-14
    area = float(np.asarray(basis.dx).sum())
    assert ((x * n).sum(0) * ds).sum() == pytest.approx(2 * area, rel=1e-13)
    assert np.abs(np.hypot(*x) - 1.0).max() < 1e-5           # on the circle to O(h_coarse³)
    # a linear function has the same trace as its values: u = x + 2y
    u = basis.doflocs[0] + 2 * basis.doflocs[1]
    np.testing.assert_allclose(fb.interpolate(u), x[0] + 2 * x[1], atol=1e-12)
    np.testing.assert_allclose(np.asarray(fb.interpolate(u).grad)[0], 1.0, rtol=1e-9)


def test_points_in_tiny_curved_elements_are_located():
    basis = make_basis(graded_disk(), 3)
    m = basis.mesh
    curved = np.flatnonzero(_curved(m))
    centroids = m.p[:, m.t[:, curved]].mean(axis=1)
    cells, X = locate(basis, centroids)
    np.testing.assert_array_equal(cells, curved)
    back = basis.mapping.F(X[:, :, None], tind=cells)[:, :, 0]
    np.testing.assert_allclose(back, centroids, rtol=0, atol=1e-15)
    # far outside its element: Newton stays bounded and never claims the point inside
    Xo, ok = inverse_map(basis.mapping, centroids + 0.5, curved, X)
    inside = (Xo[0] >= 0) & (Xo[1] >= 0) & (Xo[0] + Xo[1] <= 1)
    assert np.all(np.isfinite(Xo)) and not np.any(ok & inside)


def test_solution_values_in_tiny_boundary_elements():
    """P ∝ e^{−r²/2T} (isotropic reflecting OU): the value in the smallest elements."""
    T = 0.1
    mesh = graded_disk()
    sol = fp.solve(fp.landscapes.quadratic([[1.0, 0.0], [0.0, 1.0]]), fp.diffusion.isotropic(T),
                   mesh, boundary="reflecting", order=3)
    Z = 2 * np.pi * T * (1 - np.exp(-1 / (2 * T)))
    m = sol.basis.mesh
    small = np.argsort(np.abs(np.asarray(sol.basis.dx).sum(1)))[:20]      # smallest elements
    pts = m.p[:, m.t[:, small]].mean(axis=1).T
    assert np.hypot(*pts.T).min() > 1 - 1e-4
    np.testing.assert_allclose(sol(pts), np.exp(-(pts ** 2).sum(1) / (2 * T)) / Z, rtol=1e-3)
