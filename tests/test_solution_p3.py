"""P3 (cubic) solutions downstream of the solver: Solution observables and figures.

Reference values: the finest P3 level of bench/fig3_refinement.py (326587 dofs,
docs/fig3_refinement.md), case noD12, Δ_S = 0.012.  This test runs P3 at h = 0.1
(13177 dofs).
"""
import warnings

import numpy as np
import pytest

import fpsolve as fp
from fpsolve import plot

BEST = {"x2": 0.1080956, "y2": 0.093960, "xmax": 0.16174, "xmarg_mode": 0.15667,
        "mu": 1.699728e-06}


@pytest.fixture(scope="module")
def sol():
    L = fp.landscapes.paper(eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)
    return fp.solve(L, fp.diffusion.sgd(L, 0.012, cross_diffusion=False),
                    fp.disk_mesh(2.0, 0.1), boundary="absorbing", order=3)


def test_p3_observables_match_the_converged_values(sol):
    # measured at h = 0.1: ⟨x²⟩ 1.1e-5, ⟨y²⟩ 4e-6, μ 4e-4, marginal mode and |x| of the
    # (flat, ill-conditioned: docs/fig3_refinement.md) maximum 3.3e-3 relative
    assert sol.order == 3 and "P3" in repr(sol)
    assert sol.diagnostics["negative_mass"] < 1e-9
    assert sol.mass == pytest.approx(1.0, abs=1e-12)
    mo = sol.moments()
    assert np.all(np.abs(mo["mean"]) < 1e-9)                  # x → −x, y → −y symmetry
    assert mo["cov"][0, 0] == pytest.approx(BEST["x2"], rel=1e-4)
    assert mo["cov"][1, 1] == pytest.approx(BEST["y2"], rel=1e-4)
    assert sol.escape_rate == pytest.approx(BEST["mu"], rel=2e-3)
    mode = sol.mode()
    assert sol(mode) >= sol.P.max() * (1 - 1e-12)
    assert abs(mode[0]) == pytest.approx(BEST["xmax"], rel=1e-2) and abs(mode[1]) < 1e-3
    assert abs(sol.marginal_mode("x")) == pytest.approx(BEST["xmarg_mode"], rel=1e-2)


def test_p3_marginal_is_exact_for_the_cubic(sol):
    """Four Gauss points per element segment integrate the cubic exactly: the marginal
    equals a fine trapezoid rule of point values (measured 3e-10)."""
    xs = np.linspace(-2, 2, 801)
    mx = sol.marginal("x", xs)
    assert np.trapezoid(mx, xs) == pytest.approx(1.0, abs=1e-9)
    assert np.all(mx >= -1e-12)
    ys = np.linspace(-1.9, 1.9, 40001)
    for x0 in (0.05, 0.3):
        line = sol(np.column_stack([np.full_like(ys, x0), ys]))
        assert sol.marginal("x", x0) == pytest.approx(np.trapezoid(line, ys), rel=1e-8)
    # marginal in y, by symmetry of the landscape even in y
    yy = np.array([-0.4, 0.4])
    my = sol.marginal("y", yy)
    assert my[0] == pytest.approx(my[1], rel=1e-9) and my[0] > 0


def test_marginal_on_mesh_edges_counts_each_segment_once(sol):
    """A line along mesh edges (disk_mesh's rows of horizontal edges, y = 0 among them;
    the vertical edges bisection makes) lies in both neighbours of each edge: it was
    integrated twice, the marginal 2x too large there (redteam F7)."""
    m = sol.mesh
    e, bnd = m.edges()
    row = m.p[1, e[0]] == m.p[1, e[1]]
    assert np.any(row & (m.p[1, e[0]] == 0.0))           # y = 0 is an edge row
    ys = np.unique(m.p[1, e[0, row & ~bnd]])[::7]
    np.testing.assert_allclose(sol.marginal("y", ys), sol.marginal("y", ys + 1e-11),
                               rtol=1e-7, atol=1e-12)
    # a refined mesh has vertical edges: the same along x
    fine = fp.fe.refine.refine(m, np.arange(0, m.nelements, 3))
    e, bnd = fine.edges()
    col = (fine.p[0, e[0]] == fine.p[0, e[1]]) & ~bnd
    assert np.any(col)
    f = fp.solve(sol.landscape, sol.diffusion, fine, order=2)
    xs = np.unique(fine.p[0, e[0, col]])[:: 5]
    np.testing.assert_allclose(f.marginal("x", xs), f.marginal("x", xs + 1e-11),
                               rtol=1e-7, atol=1e-12)


def test_p3_point_evaluation(sol):
    """sol(points) at the dof locations gives the dof values (edge and centroid dofs
    included, i.e. the edge-dof orientation is the one the elements use)."""
    locs = sol.basis.doflocs
    inner = np.flatnonzero(np.hypot(*locs) < 1.9)
    np.testing.assert_allclose(sol(locs[:, inner].T), sol.P[inner], rtol=0,
                               atol=1e-12 * sol.P.max())
    assert isinstance(sol(np.array([0.1, 0.2])), float)
    assert sol(np.array([[3.0, 0.0]]))[0] == 0.0              # outside the disk


def test_p3_figure_resolves_the_cubic(tmp_path, sol):
    assert plot._subdivisions(sol) == 3                        # 2886 elements
    extent = (-1.2, 1.2, -1.0, 1.0)
    px, py, tri, vals = plot._refined(sol.basis, sol.P, extent, plot._subdivisions(sol))
    c = np.stack([px[tri].mean(axis=1), py[tri].mean(axis=1)], axis=1)
    # piecewise-linear drawing vs the FE function at sub-triangle centroids
    # (measured 2.7e-4 max P; the 24 contour levels are 4e-2 max P apart)
    assert np.abs(vals[tri].mean(axis=1) - sol(c)).max() < 1e-3 * sol.P.max()
    with warnings.catch_warnings():
        warnings.simplefilter("error", fp.FPSolveWarning)
        fl = fp.flux(sol)
    path = tmp_path / "p3.png"
    assert plot.solution_figure(sol, path, flux=fl) == str(path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def _random_points(n, seed=1):
    """Points of the disk of radius 2 and a little beyond (outside rows included)."""
    rng = np.random.default_rng(seed)
    r = 2.03 * np.sqrt(rng.uniform(0, 1, n))
    t = rng.uniform(0, 2 * np.pi, n)
    return np.stack([r * np.cos(t), r * np.sin(t)])


def test_probe_values_equal_the_probe_matrix_bit_for_bit(sol):
    """The matrix-free evaluation adds each point's terms in the sparse product's order:
    the same floats (the shrinking-grid searches compare values with argmax)."""
    from fpsolve.fe.assembly import locate, probe_matrix, probe_values
    pts = _random_points(20000)
    rng = np.random.default_rng(2)
    for u in (sol.P, rng.standard_normal(sol.P.size)):
        v, inside = probe_values(sol.basis, u, pts, inside=True)
        assert np.array_equal(v, probe_matrix(sol.basis, pts) @ u)
        assert 0 < inside.sum() < pts.shape[1] and np.all(v[~inside] == 0.0)
        cells, X = locate(sol.basis, pts)
        assert np.array_equal(probe_values(sol.basis, u, pts, cells, X), v)


def test_value_gradient_matrices_equal_scikit_fem_gbasis(sol):
    """One inverse Jacobian per batch gives scikit-fem's gbasis numbers exactly."""
    from fpsolve.fe.assembly import locate
    from fpsolve.fe.flux import value_gradient_matrices
    basis = sol.basis
    pts = _random_points(3000, seed=3)
    V, Gx, Gy, inside = value_gradient_matrices(basis, pts)
    cells, X = locate(basis, pts)
    idx = np.flatnonzero(cells >= 0)
    assert np.array_equal(inside, cells >= 0)
    # entry (point, its j-th dof) against gbasis' value and gradient of basis function j
    for j in range(basis.Nbfun):
        f = basis.elem.gbasis(basis.mapping, X[:, idx, None], j, tind=cells[idx])[0]
        cols = basis.element_dofs[j, cells[idx]]
        for M, ref_j in ((V, np.asarray(f)[:, 0]), (Gx, np.asarray(f.grad)[0][:, 0]),
                         (Gy, np.asarray(f.grad)[1][:, 0])):
            assert np.array_equal(np.asarray(M[idx, cols]).ravel(), ref_j)


def test_line_cuts_of_many_lines_are_those_of_each_line(sol):
    """The lines are cut together (interval search): each line gets exactly the points,
    weights and elements it gets alone, lines in the given order (duplicates, NaN and
    lines outside the mesh included)."""
    from fpsolve.fe.assembly import line_cuts
    vals = np.array([0.3, -1.99, 0.3, 5.0, np.nan, 0.0, 1.2345, -0.7])
    for axis in (0, 1):
        pts, w, line, cells = line_cuts(sol.basis, axis, vals, npts=4)
        assert np.all(np.diff(line) >= 0)
        for i, v in enumerate(vals):
            p1, w1, l1, c1 = line_cuts(sol.basis, axis, [v], npts=4)
            k = line == i
            assert np.array_equal(pts[:, k], p1) and np.array_equal(w[k], w1)
            assert np.array_equal(cells[k], c1) and np.all(l1 == 0)
            assert (w1.size == 0) == (not abs(v) < 2.0)
        assert np.sum(w[line == 0]) == pytest.approx(2 * np.sqrt(4 - 0.09), rel=1e-3)


def test_cached_marginal_grid_gives_the_fresh_values(sol):
    """The quadrature of a set of many lines is kept on the basis (the cases of a study
    share it): a second solution on the basis gets the values of a fresh computation."""
    from fpsolve.fe import solution as S
    xs = np.linspace(-2, 2, 101)
    sol.basis.__dict__.pop("_fpsolve_lines", None)
    first = sol.marginal("x", xs)
    assert len(sol.basis._fpsolve_lines) == 1
    other = S.Solution(2.0 * sol.P, sol.basis, sol.mesh, sol.landscape, sol.diffusion,
                       sol.boundary, sol.order, sol.escape_rate, sol.diagnostics)
    again = other.marginal("x", xs)                       # from the cache
    sol.basis.__dict__.pop("_fpsolve_lines")
    assert np.array_equal(again, other.marginal("x", xs))  # fresh
    assert np.allclose(again, 2 * first, rtol=1e-14, atol=0)
    for k in range(S._LINE_CACHE_SIZE + 2):                # bounded
        sol.marginal("y", xs + k)
    assert len(sol.basis._fpsolve_lines) == S._LINE_CACHE_SIZE


def test_quadrature_values_equal_scikit_fem_interpolate(sol):
    """P at the quadrature points without the gradients: interpolate's floats."""
    from fpsolve.fe.solution import _values_at_quadrature
    for u in (sol.P, np.random.default_rng(5).standard_normal(sol.P.size)):
        assert np.array_equal(_values_at_quadrature(sol.basis, u),
                              np.asarray(sol.basis.interpolate(u)))
