"""Figures: PNGs written atomically, with the elements that make them readable."""
import os
import warnings

import numpy as np
import pytest

import fpsolve as fp
from fpsolve import plot

OU_A = np.array([[1.0, 0.3], [0.3, 2.0]])
OU_D = np.array([[0.10, 0.04], [0.04, 0.05]])


@pytest.fixture(scope="module")
def ou():
    sol = fp.solve(fp.landscapes.quadratic(OU_A), fp.diffusion.constant(OU_D),
                   fp.disk_mesh(1.5, 0.1), boundary="reflecting", order=2)
    return sol, fp.flux(sol)


@pytest.fixture(scope="module")
def paper_pair():
    L = fp.landscapes.paper()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)
        prob = fp.Problem(L, fp.diffusion.sgd(L, 0.012, cross_diffusion=False),
                          fp.disk_mesh(2.0, 0.1), order=2)
        return prob.sweep([0.011, 0.012])


def png_shape(path):
    import matplotlib.image as mpimg
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(path).shape


def test_solution_figure_writes_png(tmp_path, ou):
    sol, fl = ou
    path = tmp_path / "ou.png"
    assert plot.solution_figure(sol, path, flux=fl, title="OU") == str(path)
    h, w, _ = png_shape(path)
    assert w >= 900 and h > 500          # 6.4 in at 150 dpi; height follows the window
    assert sorted(os.listdir(tmp_path)) == ["ou.png"]      # no temporary file left


def test_solution_figure_is_readable(ou):
    sol, fl = ou
    fig = plot._solution_fig(sol, fl, title="OU test")
    main = [a for a in fig.axes if a.get_xlabel() == "x" and a.get_ylabel() == "y"]
    assert len(main) == 1
    ax = main[0]
    assert ax.get_aspect() == 1.0                          # aspect ratio 1
    cbar = [a for a in fig.axes if a.get_ylabel() == "P(x, y)"]
    assert len(cbar) == 1                                  # colour bar, labelled
    top = [a for a in fig.axes if a.get_title() == "OU test"]
    assert len(top) == 1 and top[0].get_ylabel() == "∫P dy"
    # marginal panel shows ∫P dy over the window
    x, m = top[0].lines[0].get_data()
    # exact on straight segments; the quadratures differ in the curved boundary ring,
    # where neither is exact (reflecting boundary: P > 0 there)
    np.testing.assert_allclose(m, sol.marginal("x", x), rtol=1e-7)
    # streamlines drawn, cycle centre marked with its sense (OU: one clockwise cycle)
    assert ax.collections, "no density / streamlines"
    assert [t.get_text() for t in ax.texts] == ["\u21bb"]
    assert ax.get_legend() is not None
    x0, x1 = ax.get_xlim()
    assert x0 < fl.cycles[0]["center"][0] < x1


def test_panel_figure_grid_and_shapes(tmp_path, paper_pair):
    a, b = paper_pair
    path = tmp_path / "panel.png"
    plot.panel_figure([[a, b], [b, a]], path, titles=[["a", "b"], ["c", "d"]])
    h, w, _ = png_shape(path)
    assert w > 1200 and h > 1300
    fig = plot._panel_fig([a, b], titles=["left", "right"])
    titles = sorted(t for t in (ax.get_title() for ax in fig.axes) if t)
    assert titles == ["left", "right"]
    mains = [ax for ax in fig.axes if ax.get_xlabel() == "x" and ax.get_ylabel() == "y"]
    assert len(mains) == 2 and mains[0].get_xlim() == mains[1].get_xlim()   # common window
    assert all(len(ax.texts) == 4 for ax in mains)         # four cycles each
    assert plot.default_title(a) == r"$\Delta_S$ = 0.011, without cross-diffusion"


def test_plot_argument_errors(tmp_path, ou, paper_pair):
    sol, fl = ou
    with pytest.raises(ValueError, match="path"):
        plot.solution_figure(sol, tmp_path / "x.jpg", flux=fl)
    with pytest.raises(FileNotFoundError, match="path"):
        plot.solution_figure(sol, tmp_path / "no" / "x.png", flux=fl)
    with pytest.raises(ValueError, match="flux"):
        plot.solution_figure(paper_pair[0], tmp_path / "x.png", flux=fl)
    with pytest.raises(ValueError, match="extent"):
        plot.solution_figure(sol, tmp_path / "x.png", flux=fl, extent=(1, 0, 0, 1))
    with pytest.raises(ValueError, match="titles"):
        plot.panel_figure(list(paper_pair), tmp_path / "x.png", titles=["only one"])
    with pytest.raises(TypeError, match="sols"):
        plot.panel_figure([sol, "x"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# -- the figure pipeline's shortcuts draw exactly what matplotlib / a fresh figure draws ----

def _cell_flow(n=120, m=170, seed=None):
    """Four counter-rotating cells, NaN outside a disk and where the flow is weak."""
    gx, gy = np.linspace(-1.0, 1.0, n), np.linspace(-1.3, 1.3, m)
    X, Y = np.meshgrid(gx, gy)
    U = -np.sin(np.pi * X) * np.cos(np.pi * Y / 1.3) + 0.1 * Y
    W = np.cos(np.pi * X) * np.sin(np.pi * Y / 1.3) - 0.05 * X
    speed = np.hypot(U, W)
    U[X ** 2 + Y ** 2 > 1.2] = np.nan
    W[X ** 2 + Y ** 2 > 1.2] = np.nan
    weak = ~(speed >= 0.03 * np.nanmax(speed))
    U[weak], W[weak] = np.nan, np.nan
    return gx, gy, U, W, 0.3 + 2.2 * speed / speed.max()


def _png(draw):
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(4, 5))
    ax = fig.add_subplot(1, 1, 1)
    FigureCanvasAgg(fig)
    draw(ax)
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1.3, 1.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


@pytest.mark.parametrize("density", [1.3, 0.7])
def test_streamlines_are_matplotlibs(density):
    """plot._streamplot (plain floats) gives the image of Axes.streamplot byte for byte."""
    gx, gy, U, W, lw = _cell_flow()
    ref = _png(lambda ax: ax.streamplot(gx, gy, U, W, color="k", linewidth=lw,
                                        density=density, arrowsize=0.9, minlength=0.2))
    ours = _png(lambda ax: plot._streamplot(ax, gx, gy, U, W, lw, density=density,
                                            arrowsize=0.9, minlength=0.2, color="k"))
    assert ours == ref


def test_filled_contours_are_matplotlibs(paper_pair):
    """plot._tricontourf gives the image of Axes.tricontourf byte for byte (also with
    values exactly at the lowest level, which matplotlib puts in the first band)."""
    from matplotlib.ticker import MaxNLocator
    from matplotlib.tri import Triangulation
    d = plot.PlotData(paper_pair[0], fp.flux(paper_pair[0]))
    px, py, tri, vals = d.contour_data((-1, 1, -1.3, 1.3))
    T = Triangulation(px, py, tri)
    levels = MaxNLocator(nbins=24).tick_values(0.0, d.vmax)
    for z in (np.clip(vals, 0.0, d.vmax), np.where(vals < 1e-3 * d.vmax, 0.0, vals)):
        ref = _png(lambda ax: ax.figure.colorbar(ax.tricontourf(T, z, levels=levels,
                                                                cmap="viridis")))
        ours = _png(lambda ax: ax.figure.colorbar(plot._tricontourf(ax, T, z, levels,
                                                                    cmap="viridis")))
        assert ours == ref


def test_streamline_grid_points_are_located_as_locate_does(ou):
    """The trapezoid-map search finds the grid points of locate, curved boundary ring
    (bulges) and points outside included, with the same FE values."""
    from fpsolve.fe.assembly import locate, probe_matrix
    sol = ou[0]
    g = np.linspace(-1.6, 1.6, 161)          # the disk of radius 1.5 and beyond
    pts = np.stack([a.ravel() for a in np.meshgrid(g, g)])
    want, Xw = locate(sol.basis, pts)
    got, Xg = plot._locate(sol.basis, pts)
    assert np.array_equal(got >= 0, want >= 0)
    straight = plot._trifinder(sol.basis.mesh)(pts[0], pts[1]) >= 0
    assert np.any((want >= 0) & ~straight) and np.any(want < 0)    # bulges, outside
    np.testing.assert_allclose(probe_matrix(sol.basis, pts, got, Xg) @ sol.P,
                               probe_matrix(sol.basis, pts, want, Xw) @ sol.P,
                               rtol=1e-12, atol=1e-14 * sol.P.max())


def test_contour_mesh_merges_the_shared_nodes(paper_pair):
    """The connected triangulation of the refined elements has one node per distinct
    point (vertices, edge and interior nodes of the refinement), the triangles and values
    of the separate elements, and gives their image."""
    from matplotlib.ticker import MaxNLocator
    from matplotlib.tri import Triangulation
    a = paper_pair[0]
    d = plot.PlotData(a, fp.flux(a))
    ext = (-1, 1, -1.3, 1.3)
    px, py, tri, z = d.contour_mesh(ext)
    m, n = a.basis.mesh, 2 ** plot._subdivisions(a)
    assert px.size == (np.unique(m.t[:3]).size + (n - 1) * m.facets.shape[1]
                       + (n - 1) * (n - 2) // 2 * m.t.shape[1])
    qx, qy, qtri, qz = d.contour_data(ext)
    assert len(tri) == len(qtri)
    np.testing.assert_allclose(px[tri], qx[qtri], rtol=0, atol=1e-12)
    np.testing.assert_allclose(py[tri], qy[qtri], rtol=0, atol=1e-12)
    np.testing.assert_allclose(z[tri], qz[qtri], rtol=1e-12, atol=1e-14 * d.vmax)
    levels = MaxNLocator(nbins=24).tick_values(0.0, d.vmax)
    separate, merged = (
        _png(lambda ax: plot._tricontourf(ax, Triangulation(x, y, t), np.clip(v, 0, d.vmax),
                                          levels, cmap="viridis"))
        for x, y, t, v in ((qx, qy, qtri, qz), (px, py, tri, z)))
    assert separate == merged


def test_contours_prepared_on_the_whole_mesh_draw_the_window_image(paper_pair):
    """Filled contours made before the window is known (the study's panel) give the
    figure of contours on the window itself, for the case's own window and a larger one."""
    a = paper_pair[1]
    fa = fp.flux(a)
    fresh, prepared = plot.PlotData(a, fa), plot.PlotData(a, fa)
    prepared.prepare_contours()
    assert prepared._contours is not None
    for ext in (fresh.extent, (-1.6, 1.6, -1.5, 1.5)):
        assert (plot.png_bytes(plot.solution_fig_from(prepared, "t", ext))
                == plot.png_bytes(plot.solution_fig_from(fresh, "t", ext)))


def test_plot_data_is_shared_and_matches_fresh_figures(tmp_path, paper_pair):
    """A PlotData drawn twice (case figure, then panel) gives the PNGs of fresh calls,
    and its cached contour data are those of plot._refined for the window."""
    a, b = paper_pair
    fa, fb = fp.flux(a), fp.flux(b)
    da, db = plot.PlotData(a, fa), plot.PlotData(b, fb)
    case = plot.png_bytes(plot.solution_fig_from(da, "a"))
    panel = plot.png_bytes(plot.panel_fig_from([[da, db]], [["a", "b"]]))
    plot.solution_figure(a, tmp_path / "a.png", flux=fa, title="a")
    plot.panel_figure([a, b], tmp_path / "p.png", titles=["a", "b"], fluxes=[fa, fb])
    assert case == (tmp_path / "a.png").read_bytes()
    assert panel == (tmp_path / "p.png").read_bytes()
    for got, want in zip(da.contour_data(da.extent),
                         plot._refined(a.basis, a.P, da.extent, plot._subdivisions(a))):
        assert np.array_equal(got, want)
    # the shape functions at the refined nodes are skfem's gbasis values on every element
    from skfem import MeshTri
    _, phis, _, _, _ = plot._refined_basis(a.basis, 2)
    X = MeshTri.init_refdom().refined(2).p
    for j in range(a.basis.Nbfun):
        g = np.asarray(a.basis.elem.gbasis(a.basis.mapping, X, j)[0])
        assert np.array_equal(np.broadcast_to(phis[j], g.shape), g)
    xs = np.linspace(*da.extent[:2], 7)
    # fewer Gauss points than Solution.marginal, both exact on straight segments
    np.testing.assert_allclose(da.marginal(xs), a.marginal("x", xs), rtol=1e-12,
                               atol=1e-14 * a.P.max())
    # b's quadrature and refined shape functions are a's (one basis): same values as b's own
    assert a.basis is b.basis and plot._SHARED[a.basis]["marginal"]
    np.testing.assert_allclose(db.marginal(xs), b.marginal("x", xs), rtol=1e-12,
                               atol=1e-14 * b.P.max())
    for got, want in zip(db.contour_data(da.extent),
                         plot._refined(b.basis, b.P, da.extent, plot._subdivisions(b))):
        assert np.array_equal(got, want)


def test_adaptive_solution_figure_shows_its_mesh(ou):
    """An adaptive solution's figure draws its (adapted) mesh edges in the window, with a
    legend entry; a solution on a given mesh does not."""
    from matplotlib.collections import LineCollection

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)
        ada = fp.solve(fp.landscapes.quadratic(OU_A), fp.diffusion.constant(OU_D),
                       fp.disk_mesh(1.5, 0.5), boundary="reflecting", order=2, tol=1e-3)
    for sol, fl, adapted in ((ada, None, True), (*ou, False)):
        fig = plot._solution_fig(sol, fl)
        ax = next(a for a in fig.axes if a.get_xlabel() == "x" and a.get_ylabel() == "y")
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert ("adapted mesh" in labels) is adapted
        edges = [c for c in ax.collections if isinstance(c, LineCollection)
                 and len(c.get_segments()) and np.all(c.get_linewidths() == 0.25)]
        if adapted:
            (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
            e, _ = sol.mesh.edges()
            mid = 0.5 * (sol.mesh.p[:, e[0]] + sol.mesh.p[:, e[1]])
            inside = np.sum((mid[0] > x0) & (mid[0] < x1) & (mid[1] > y0) & (mid[1] < y1))
            assert len(edges) == 1 and len(edges[0].get_segments()) >= inside > 100
        else:
            assert edges == []
