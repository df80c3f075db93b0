"""Matplotlib figures of densities and probability fluxes (the paper's Fig. 3 layout).

matplotlib is imported lazily, inside the functions, and only its object-oriented API
with the Agg canvas is used (no pyplot state, no display needed).  Every figure is
written atomically (temporary file in the target directory, then ``os.replace``).

* :func:`solution_figure` — one solution: P(x, y) as filled contours on a refined
  triangulation of the FE function (P2 and P3 elements are subdivided so the
  polynomial is resolved, see :func:`_subdivisions`), colour bar, aspect ratio 1; the
  flux as streamlines of the L2-projected J with line width ∝ |J|; cycle centres
  marked ↺ (ccw) / ↻ (cw); the x-marginal ∫P dy in a panel above.
* :func:`panel_figure` — several solutions side by side / in rows (Fig. 3: Δ_S = 0.009
  and 0.012 as columns, with and without cross-diffusion as rows), on a common window.
"""
from __future__ import annotations

import os
import weakref

import numpy as np

from ._streamlines import streamplot as _streamplot

__all__ = ["solution_figure", "panel_figure", "default_title", "auto_extent", "PlotData",
           "solution_fig_from", "panel_fig_from", "png_bytes"]

_CCW, _CW = "\u21ba", "\u21bb"     # ↺ ↻
_TOP_IN, _PAD_IN = 1.25, 0.1           # marginal panel height and gaps (inches)


def _cell_height(width_in: float, extent, main_frac: float) -> float:
    """Height (inches) of one panel of width ``width_in`` so that the aspect-1 plot of
    ``extent`` (``main_frac`` of the width) fills it: main plot + marginal panel + room
    for title and labels."""
    x0, x1, y0, y1 = extent
    ar = min(max((y1 - y0) / (x1 - x0), 0.3), 3.0)
    return main_frac * width_in * ar + _TOP_IN + _PAD_IN + 1.1


def default_title(sol) -> str:
    """A short title naming the diffusion model and its parameters."""
    d = sol.diffusion
    if d.kind == "sgd":
        cross = "with" if d.params.get("cross_diffusion", True) else "without"
        return rf"$\Delta_S$ = {d.strength:g}, {cross} cross-diffusion"
    params = ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
                       for k, v in d.params.items())
    return f"{d.kind} diffusion" + (f" ({params})" if params else "")


def auto_extent(sol, flux=None, level: float = 1e-2, pad: float = 0.2) -> tuple:
    """Plot window (xmin, xmax, ymin, ymax) around where P ≥ ``level`` · max P.

    Padded by ``pad`` times the size of that region on each side, enlarged to contain
    the cycle centres, and clipped to the mesh.
    """
    x, y = sol.basis.doflocs
    P = sol.P
    keep = P >= level * P.max()
    xs, ys = list(x[keep]), list(y[keep])
    if flux is not None:
        xs += [c["center"][0] for c in flux.cycles]
        ys += [c["center"][1] for c in flux.cycles]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    w, h = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
    x0, x1 = x0 - pad * w, x1 + pad * w
    y0, y1 = y0 - pad * h, y1 + pad * h
    return (max(x0, x.min()), min(x1, x.max()), max(y0, y.min()), min(y1, y.max()))


def _union(extents):
    e = np.array(extents)
    return (e[:, 0].min(), e[:, 1].max(), e[:, 2].min(), e[:, 3].max())


def _refined(basis, values, extent, nrefs):
    """Points, triangles and values of the FE function on subdivided elements in the
    window (disconnected triangulation: continuity is that of the FE function)."""
    m = basis.mesh
    p = m.p[:2][:, m.t[:3]]                      # (2, 3, nel) corner coordinates
    lo, hi = p.min(axis=1), p.max(axis=1)
    x0, x1, y0, y1 = extent
    el = np.flatnonzero((hi[0] >= x0) & (lo[0] <= x1) & (hi[1] >= y0) & (lo[1] <= y1))
    xy, vals, ref_t, _, _ = _refined_elements(basis, values, el, nrefs)
    nr = xy.shape[2]
    tri = (ref_t[None, :, :] + nr * np.arange(el.size)[:, None, None]).reshape(-1, 3)
    return xy[0].ravel(), xy[1].ravel(), tri, vals.ravel()


def _subdivisions(sol) -> int:
    """Levels of uniform subdivision of each element for the contour plot.

    P1 is drawn as it is.  P2 elements get 2 levels (16 sub-triangles), 1 on meshes of
    30000 elements or more.  P3 is typically run on coarser meshes than P2 for the
    same accuracy, so its elements get one level more (3, i.e. 64 sub-triangles)
    below 8000 elements, else as P2.  On the Fig. 3 density the piecewise-linear
    drawing then deviates from the FE function by about 3e-4 max P both for P2 at
    h = 0.05 and for P3 at h = 0.1 (the 24 contour levels are 4e-2 max P apart), and
    the triangulation stays below about 0.5 M triangles.
    """
    if sol.order == 1:
        return 0
    n = sol.mesh.nelements
    if sol.order >= 3 and n < 8000:
        return 3
    return 2 if n < 30000 else 1


class PlotData:
    """What the figures of one solution draw, computed once and shared by its figures.

    The refined values of the density on every element, the x-marginal at each line
    position and the flux field on each streamline grid are cached, so a case figure
    and the panel drawn from the same PlotData evaluate nothing twice.  Only ``J`` and
    ``cycles`` of the flux are used, so the flux may be any object with these
    attributes (a study's renderer process has no :class:`~fpsolve.flux.Flux`).

    Parameters
    ----------
    sol : fpsolve.Solution
    flux : Flux or object with ``J`` (2, N) and ``cycles``
    """

    def __init__(self, sol, flux):
        self.sol = sol
        self.J = np.asarray(flux.J)
        self.cycles = list(flux.cycles)
        self.vmax = float(np.max(sol.P))
        self.extent = auto_extent(sol, flux)
        self._nrefs = _subdivisions(sol)
        self._elements = None
        self._merged = None
        self._contours = None
        self._marginal: dict = {}
        self._fields: dict = {}

    def contour_data(self, extent):
        """Points, triangles and values of the subdivided elements meeting ``extent``
        (as :func:`_refined`, from values computed once for the whole mesh)."""
        if self._elements is None:
            basis = self.sol.basis
            xy, phis, ref_t, lo, hi = _shared(basis, "refined", self._nrefs,
                                              lambda: _refined_basis(basis, self._nrefs))
            self._elements = xy, _refined_values(basis, self.sol.P, phis), ref_t, lo, hi
        xy, vals, ref_t, lo, hi = self._elements
        el = _in_window(lo, hi, extent)
        nr = xy.shape[2]
        tri = (ref_t[None, :, :] + nr * np.arange(el.size)[:, None, None]).reshape(-1, 3)
        return xy[0, el].ravel(), xy[1, el].ravel(), tri, vals[el].ravel()

    def contour_mesh(self, extent):
        """As :meth:`contour_data`, as one connected triangulation: the nodes that
        neighbouring elements share are merged (the FE function is continuous there).
        Filled contours then cross element edges instead of outlining every element:
        4-6x fewer contour vertices, the same image.  Points and values are those of the
        whole mesh (unused ones included)."""
        self.contour_data(extent)
        xy, vals, ref_t, lo, hi = self._elements
        px, py, first, inv = _shared(self.sol.basis, "nodes", self._nrefs,
                                     lambda: _merged_nodes(xy))
        if self._merged is None:
            self._merged = vals.ravel()[first]
        el = _in_window(lo, hi, extent)
        tri = inv[el[:, None, None] * xy.shape[2] + ref_t[None, :, :]].reshape(-1, 3)
        return px, py, tri, self._merged

    def filled_contours(self, ax, extent):
        """The density's filled contours on ``ax`` (24 levels from 0 to max P): those
        of :meth:`prepare_contours` if made, else on the elements meeting ``extent``."""
        from matplotlib.contour import ContourSet
        if self._contours is not None:
            return ContourSet(ax, self.levels, *self._contours, filled=True,
                              cmap="viridis")
        T, z = self._contour_input(extent)
        return _tricontourf(ax, T, z, self.levels, cmap="viridis")

    def prepare_contours(self) -> None:
        """Compute the filled contours on the whole mesh now, for a later figure whose
        window is not known yet (a study's panel): its axes clip them to the image of
        contours on its own window (the same contour lines inside it)."""
        got = _filled_segments(*self._contour_input((-np.inf, np.inf, -np.inf, np.inf)),
                               self.levels)
        if got is not None and any(got[0]):
            self._contours = got

    @property
    def levels(self) -> np.ndarray:
        """The 25 contour levels (24 bands) from 0 to max P."""
        from matplotlib.ticker import MaxNLocator
        return MaxNLocator(nbins=24).tick_values(0.0, self.vmax)

    def _contour_input(self, extent):
        from matplotlib.tri import Triangulation
        px, py, tri, vals = self.contour_mesh(extent)
        return Triangulation(px, py, tri), np.clip(vals, 0.0, self.vmax)

    def marginal(self, xs) -> np.ndarray:
        """∫P dy at ``xs`` (``sol.marginal("x", xs)`` to round-off; the quadrature on
        these lines is shared by the solutions on the same basis)."""
        xs = np.asarray(xs, dtype=float)
        key = xs.tobytes()
        if key not in self._marginal and self.sol.weight is not None:
            self._marginal[key] = self.sol.marginal("x", xs)     # w exact (fe/gibbs.py)
        if key not in self._marginal:
            sol = self.sol
            dofs, phis, w, line = _shared(
                sol.basis, "marginal", (key, sol.order),
                lambda: _marginal_quadrature(sol.basis, xs, sol.order))
            vals = np.einsum("ij,ij->j", phis, sol.P[dofs])
            self._marginal[key] = np.bincount(line, w * vals, minlength=xs.size)
        return self._marginal[key]

    def stream_field(self, extent):
        """Grid, projected flux (NaN where negligible or outside) and line widths."""
        key = tuple(float(v) for v in extent)
        if key not in self._fields:
            basis = self.sol.basis
            grid = _shared(basis, "stream", key, lambda: _stream_grid(basis, key))
            self._fields[key] = _stream_field(grid, self.J)
        return self._fields[key]


#: Mesh-only values of the figures, shared by the PlotData of the solutions on one basis
#: (a study's cases on one mesh: the case figures and the panel): the shape functions on
#: the refined elements, the marginal's quadrature and the streamline grid's probe matrix.
#: Per basis and kind, the last few windows are kept.
_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SHARED_KEEP = 3


def _shared(basis, kind: str, key, make):
    """``make()``, remembered for ``basis`` under (``kind``, ``key``)."""
    try:
        per = _SHARED.setdefault(basis, {})
    except TypeError:                       # not weak-referenceable: nothing shared
        return make()
    cache = per.setdefault(kind, {})
    if key not in cache:
        cache[key] = make()
        while len(cache) > _SHARED_KEEP:    # the oldest window goes
            cache.pop(next(iter(cache)))
    return cache[key]


def _in_window(lo, hi, extent):
    """Elements whose corner bounding box (``lo``, ``hi``) meets ``extent``."""
    x0, x1, y0, y1 = extent
    return np.flatnonzero((hi[0] >= x0) & (lo[0] <= x1) & (hi[1] >= y0) & (lo[1] <= y1))


def _merged_nodes(xy):
    """The refined nodes ``xy`` (2, nel, nref) with coinciding points merged: the
    distinct points' coordinates, one node of each (``first``) and every node's point
    (``inv``).  Points equal to 1e-9 of the coordinates' size are one (round-off of
    the element maps)."""
    x, y = xy[0].ravel(), xy[1].ravel()
    q = 1e-9 * max(float(np.abs(x).max()), float(np.abs(y).max()), 1e-300)
    key = np.round(x / q).astype(np.int64) * (1 << 32) + np.round(y / q).astype(np.int64)
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    return x[first], y[first], first, inv.ravel()


def _marginal_quadrature(basis, xs, order):
    """The quadrature of ∫P dy on the lines x = ``xs``: dofs and shape functions
    (Nbfun, npoints) at its points, weights, lines.

    As in ``Solution.marginal("x", xs)``, but with the Gauss points that integrate the
    FE function on each straight segment exactly (degree ``order``: 2 for P2 and P3),
    not its products (``order + 1``): the same curve to round-off, at half the cost.
    """
    from .fe.assembly import line_cuts, reference_coordinates
    pts, w, line, cells = line_cuts(basis, 0, xs, npts=order // 2 + 1)
    cells, X = reference_coordinates(basis, pts, cells)
    ok = cells >= 0                # as probe_matrix: nothing from points it rejects
    # the shape functions at the points, not a sparse probe matrix (whose assembly
    # costs twice their evaluation)
    X = X[:, ok]
    phis = np.array([basis.elem.lbasis(X, j)[0] for j in range(basis.Nbfun)])
    return basis.element_dofs[:, cells[ok]], phis, w[ok], line[ok]


def _refined_elements(basis, values, el, nrefs):
    """Coordinates (2, nel, nref) and values (nel, nref) of the FE function at the
    nodes of ``nrefs``-times subdivided elements ``el``, the sub-triangles of the
    reference element and the corner bounding boxes of the elements."""
    xy, phis, ref_t, lo, hi = _refined_basis(basis, nrefs, el)
    return xy, _refined_values(basis, values, phis, el), ref_t, lo, hi


def _refined_basis(basis, nrefs, el=None):
    """As :func:`_refined_elements` (all elements if ``el`` is None), with the shape
    functions at the nodes instead of the values: (Nbfun, nref), the same on every
    element for H1 (Lagrange) elements, else (Nbfun, nel, nref)."""
    from skfem import MeshTri
    from skfem.element import ElementH1
    m = basis.mesh
    el = np.arange(m.t.shape[1]) if el is None else el
    p = m.p[:2][:, m.t[:3, el]]                  # (2, 3, nel) corner coordinates
    ref = MeshTri.init_refdom().refined(nrefs)
    X = ref.p
    xy = basis.mapping.F(X, tind=el)              # (2, nel, nref)
    if isinstance(basis.elem, ElementH1):
        # gbasis's values are lbasis broadcast to every element (identity transformation);
        # gbasis would also map the gradients of all elements
        phis = np.array([basis.elem.lbasis(X, j)[0] for j in range(basis.Nbfun)])
    else:
        phis = np.array([np.asarray(basis.elem.gbasis(basis.mapping, X, j, tind=el)[0])
                         for j in range(basis.Nbfun)])
    return xy, phis, ref.t.T, p.min(axis=1), p.max(axis=1)


def _refined_values(basis, values, phis, el=None):
    """The FE function ``values`` at the refined nodes from :func:`_refined_basis`."""
    dofs = basis.element_dofs if el is None else basis.element_dofs[:, el]
    vals = np.zeros((dofs.shape[1], phis.shape[-1]))
    for j in range(basis.Nbfun):
        vals += values[dofs[j]][:, None] * phis[j]
    return vals


def _stream_grid(basis, extent):
    """The regular streamline grid of ``extent``, its probe matrix and inside mask."""
    from .fe.assembly import probe_matrix
    x0, x1, y0, y1 = extent
    nx = 180
    ny = max(int(round(nx * (y1 - y0) / (x1 - x0))), 20)
    gx, gy = np.linspace(x0, x1, nx), np.linspace(y0, y1, ny)
    GX, GY = np.meshgrid(gx, gy)
    pts = np.stack([GX.ravel(), GY.ravel()])
    cells, X = _locate(basis, pts)
    V = probe_matrix(basis, pts, cells, X)       # values only: no gradients needed here
    return gx, gy, V, cells >= 0


def _locate(basis, pts):
    """``fpsolve.fe.assembly.locate(basis, pts)``, faster for many points: each point's
    straight triangle from matplotlib's trapezoid-map finder (built once per basis), its
    reference coordinates as ``locate`` computes them; the points in no straight triangle
    or rejected there (outside, or in a curved element's bulge) go to ``locate``.  A point
    on an edge may get the other neighbour (the same value: the FE function is
    continuous)."""
    from .fe.assembly import locate, reference_coordinates
    finder = _shared(basis, "finder", 0, lambda: _trifinder(basis.mesh))
    if finder is None:
        return locate(basis, pts)
    cells = np.asarray(finder(pts[0], pts[1]), dtype=np.int64)
    X = np.zeros(pts.shape)
    hit = np.flatnonzero(cells >= 0)
    cells[hit], X[:, hit] = reference_coordinates(basis, pts[:, hit], cells[hit])
    miss = np.flatnonzero(cells < 0)
    if miss.size:
        cells[miss], X[:, miss] = locate(basis, pts[:, miss])
    return cells, X


def _trifinder(mesh):
    """matplotlib's TriFinder of the mesh's straight triangles (None if it refuses)."""
    from matplotlib.tri import Triangulation
    try:
        return Triangulation(mesh.p[0], mesh.p[1], mesh.t[:3].T).get_trifinder()
    except (RuntimeError, ValueError):
        return None


def _stream_field(grid, J):
    """The projected flux on a streamline grid from :func:`_stream_grid`."""
    gx, gy, V, inside = grid
    shape = (gy.size, gx.size)
    U = np.where(inside, V @ J[0], np.nan).reshape(shape)
    W = np.where(inside, V @ J[1], np.nan).reshape(shape)
    speed = np.hypot(U, W)
    smax = np.nanmax(speed) if np.any(np.isfinite(speed)) else 0.0
    lw = None
    if smax > 0:
        # no streamlines where the current is negligible (there J_h is mostly noise);
        # NaN ends a streamline (plain arrays: masked ones make streamplot 5x slower)
        weak = ~(speed >= 0.03 * smax)
        U[weak] = np.nan
        W[weak] = np.nan
        lw = 0.3 + 2.2 * np.nan_to_num(speed) / smax
    return gx, gy, U, W, lw


def _tricontourf(ax, T, z, levels, **kw):
    """``ax.tricontourf(T, z, levels=levels, **kw)`` for finite ``z`` at every point of
    ``T``: the same paths from matplotlib's contour generator, without tricontourf's
    check of z at ``np.unique`` of the triangles (a third of its cost here)."""
    from matplotlib.contour import ContourSet
    got = _filled_segments(T, z, levels)
    if got is None:                              # another matplotlib: the public way
        return ax.tricontourf(T, z, levels=levels, **kw)
    return ContourSet(ax, levels, *got, filled=True, **kw)


def _filled_segments(T, z, levels):
    """(segments, codes) per band of the filled contours, as ``tricontourf`` makes
    them (None if this matplotlib has no contour generator where expected)."""
    try:
        from matplotlib import _tri
        gen = _tri.TriContourGenerator(T.get_cpp_triangulation(), z)
    except (ImportError, AttributeError):
        return None
    lowers = np.array(levels[:-1], dtype=float)
    if z.min() == lowers[0]:
        lowers[0] -= 1                           # as matplotlib: the minimum is in band 0
    segs, kinds = [], []
    for lo, hi in zip(lowers, levels[1:]):
        vs, cs = gen.create_filled_contour(lo, hi)
        segs.append([np.concatenate(vs)] if len(vs) else [])
        kinds.append([np.concatenate(cs)] if len(vs) else [])
    return segs, kinds


def _draw(fig, ax, data, extent, title, show_legend=True):
    """Density, streamlines, cycles and the x-marginal of ``data`` (a PlotData) on
    ``ax`` (+ appended axes)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    x0, x1, y0, y1 = extent
    cs = data.filled_contours(ax, extent)
    # streamlines of the projected (continuous) flux on a regular grid
    gx, gy, U, W, lw = data.stream_field(extent)
    if lw is not None:
        _streamplot(ax, gx, gy, U, W, lw, density=1.3, arrowsize=0.9, minlength=0.2,
                    color="white")
    mesh = data.sol.mesh
    adapted = "adapt" in data.sol.diagnostics
    if adapted:         # where the adaptive refinement put the elements
        _draw_edges(ax, mesh, extent)
    if mesh.radius is not None:
        ax.add_patch(Circle(mesh.center, mesh.radius, fill=False, color="0.3", lw=1.0))
    for c in data.cycles:
        cx, cy = c["center"]
        if x0 <= cx <= x1 and y0 <= cy <= y1:
            col = "#ff5a36" if c["sense"] == "ccw" else "#36c2ff"
            ax.plot(cx, cy, "o", ms=5, mfc=col, mec="black", mew=0.6, zorder=5)
            ax.annotate(_CCW if c["sense"] == "ccw" else _CW, (cx, cy), xytext=(5, 4),
                        textcoords="offset points", color=col, fontsize=15,
                        fontweight="bold", zorder=6)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    if show_legend:
        handles = [Line2D([], [], color="white", lw=2.0, label="flux J (width ∝ |J|)"),
                   Line2D([], [], ls="none", marker="o", mfc="#ff5a36", mec="black",
                          label=f"{_CCW} ccw cycle centre"),
                   Line2D([], [], ls="none", marker="o", mfc="#36c2ff", mec="black",
                          label=f"{_CW} cw cycle centre")]
        if adapted:
            handles.append(Line2D([], [], color="white", lw=0.6, alpha=0.6,
                                  label="adapted mesh"))
        leg = ax.legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.55,
                        facecolor="0.25", labelcolor="white", edgecolor="none")
        leg.set_zorder(10)
    div = make_axes_locatable(ax)
    top = div.append_axes("top", size=_TOP_IN, pad=_PAD_IN, sharex=ax)
    cax = div.append_axes("right", size="4%", pad=_PAD_IN)
    cb = fig.colorbar(cs, cax=cax)
    cb.set_label("P(x, y)")
    xs = np.linspace(x0, x1, 301)
    top.plot(xs, data.marginal(xs), color="k", lw=1.3)
    top.set_ylabel("∫P dy")
    top.set_ylim(bottom=0.0)
    top.tick_params(labelbottom=False)
    top.grid(alpha=0.3)
    top.set_title(title, fontsize=11)
    return cs


def _draw_edges(ax, mesh, extent) -> None:
    """The (straight) mesh edges meeting ``extent``, thin and faint."""
    from matplotlib.collections import LineCollection

    x0, x1, y0, y1 = extent
    e, _ = mesh.edges()
    a, b = mesh.p[:, e[0]], mesh.p[:, e[1]]
    keep = ((np.maximum(a[0], b[0]) >= x0) & (np.minimum(a[0], b[0]) <= x1)
            & (np.maximum(a[1], b[1]) >= y0) & (np.minimum(a[1], b[1]) <= y1))
    segs = np.stack([a[:, keep].T, b[:, keep].T], axis=1)
    ax.add_collection(LineCollection(segs, colors="white", linewidths=0.25, alpha=0.45,
                                     zorder=2))


def _check_png(path) -> str:
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path: expected a file path, got {type(path).__name__}") from None
    if not path.lower().endswith(".png"):
        raise ValueError(f"path: expected a file name ending in .png, got {path!r}")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise FileNotFoundError(f"path: directory {d!r} does not exist")
    return path


def _save(fig, path, dpi) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    path = _check_png(path)
    d = os.path.dirname(os.path.abspath(path))
    FigureCanvasAgg(fig)
    tmp = os.path.join(d, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        fig.savefig(tmp, format="png", dpi=dpi)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def png_bytes(fig, dpi: int = 150) -> bytes:
    """The PNG of a Figure made by this module, as bytes (what :func:`_save` writes)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _flux_of(sol, fl):
    from .fe.flux import Flux, flux
    if fl is None:
        return flux(sol)
    if not isinstance(fl, Flux):
        raise TypeError(f"flux: expected a Flux from fpsolve.flux(sol) or None, got "
                        f"{type(fl).__name__}")
    if fl.solution is not sol:
        raise ValueError("flux: was computed for another solution")
    return fl


def _check_extent(extent):
    try:
        e = tuple(float(v) for v in extent)
    except (TypeError, ValueError):
        raise ValueError(f"extent: expected (xmin, xmax, ymin, ymax), got {extent!r}") from None
    if len(e) != 4 or not (e[0] < e[1] and e[2] < e[3]) or not np.all(np.isfinite(e)):
        raise ValueError(f"extent: expected (xmin, xmax, ymin, ymax) with xmin < xmax "
                         f"and ymin < ymax, got {extent!r}")
    return e


def solution_figure(sol, path, flux=None, title=None, extent=None, dpi: int = 150) -> str:
    """Density, flux streamlines, cycle centres and x-marginal of one solution, as PNG.

    Parameters
    ----------
    sol : fpsolve.Solution
    path : str or os.PathLike
        Target ``.png``; its directory must exist.
    flux : fpsolve.flux.Flux, optional
        Flux of ``sol`` (computed if None).
    title : str, optional
        Default: the diffusion model and its parameters (:func:`default_title`).
    extent : (xmin, xmax, ymin, ymax), optional
        Plot window; default :func:`auto_extent` (where P ≥ 1e-2 max P, padded).
    dpi : int

    Returns
    -------
    str
        ``path``.
    """
    _check_png(path)
    return _save(_solution_fig(sol, flux, title, extent), path, dpi)


def _solution_fig(sol, flux=None, title=None, extent=None):
    """The :func:`solution_figure` as a matplotlib Figure (not saved)."""
    from .fe.solution import Solution
    if not isinstance(sol, Solution):
        raise TypeError(f"sol: expected a fpsolve Solution, got {type(sol).__name__}")
    data = PlotData(sol, _flux_of(sol, flux))
    return solution_fig_from(data, default_title(sol) if title is None else str(title),
                             None if extent is None else _check_extent(extent))


def solution_fig_from(data: PlotData, title: str, extent=None):
    """The figure of :func:`solution_figure` from a :class:`PlotData` (not saved)."""
    from matplotlib.figure import Figure

    extent = data.extent if extent is None else extent
    W = 6.4
    H = _cell_height(W, extent, 0.72)
    fig = Figure(figsize=(W, H))
    # no constrained layout: it ignores the axes appended by make_axes_locatable
    fig.subplots_adjust(left=0.12, right=0.9, bottom=0.75 / H, top=1 - 0.5 / H)
    ax = fig.add_subplot(1, 1, 1)
    _draw(fig, ax, data, extent, title)
    return fig


def _grid(obj, name):
    """Normalise a flat list or a list of rows to a list of rows."""
    if obj is None:
        return None
    rows = list(obj)
    if not rows:
        raise ValueError(f"{name}: expected at least one entry")
    if all(isinstance(r, (list, tuple)) for r in rows):
        return [list(r) for r in rows]
    return [rows]


def panel_figure(sols, path, titles=None, fluxes=None, extent=None, dpi: int = 150) -> str:
    """Several solutions as panels of one PNG (the paper's Fig. 3 layout).

    Parameters
    ----------
    sols : list of Solution, or list of rows (list of lists)
        A flat list is drawn as one row; ``[[a, b], [c, d]]`` as two rows, e.g.
        columns Δ_S = 0.009, 0.012 and rows with / without cross-diffusion.
    path : str or os.PathLike
        Target ``.png``.
    titles : same shape as ``sols``, optional
        Panel titles (default :func:`default_title`).
    fluxes : same shape as ``sols``, optional
        Precomputed fluxes (None entries are computed).
    extent : (xmin, xmax, ymin, ymax), optional
        Common window; default: the union of the panels' :func:`auto_extent`.
    dpi : int

    Returns
    -------
    str
        ``path``.
    """
    _check_png(path)
    return _save(_panel_fig(sols, titles, fluxes, extent), path, dpi)


def _panel_fig(sols, titles=None, fluxes=None, extent=None):
    """The :func:`panel_figure` as a matplotlib Figure (not saved)."""
    from matplotlib.figure import Figure

    from .fe.solution import Solution
    rows = _grid(sols, "sols")
    ncols = max(len(r) for r in rows)
    for r in rows:
        for s in r:
            if not isinstance(s, Solution):
                raise TypeError(f"sols: expected fpsolve Solutions, got {type(s).__name__}")
    trows = _grid(titles, "titles")
    frows = _grid(fluxes, "fluxes")
    for name, g in (("titles", trows), ("fluxes", frows)):
        if g is not None and [len(r) for r in g] != [len(r) for r in rows]:
            raise ValueError(f"{name}: expected the same shape as sols "
                             f"({[len(r) for r in rows]}), got {[len(r) for r in g]}")
    data = [[PlotData(s, _flux_of(s, None if frows is None else frows[i][j]))
             for j, s in enumerate(r)] for i, r in enumerate(rows)]
    if trows is None:
        trows = [[default_title(s) for s in r] for r in rows]
    return panel_fig_from(data, [[str(t) for t in r] for r in trows],
                          None if extent is None else _check_extent(extent))


def panel_fig_from(data, titles, extent=None):
    """The figure of :func:`panel_figure` from rows of :class:`PlotData` (not saved).

    ``titles`` has the shape of ``data``; ``extent`` defaults to the union of the
    data's windows.
    """
    from matplotlib.figure import Figure

    ncols = max(len(r) for r in data)
    if extent is None:
        extent = _union([d.extent for r in data for d in r])
    W = 5.0
    H = _cell_height(W, extent, 0.6)
    fig = Figure(figsize=(W * ncols, H * len(data)))
    fig.subplots_adjust(left=0.65 / (W * ncols), right=1 - 0.75 / (W * ncols),
                        bottom=0.7 / (H * len(data)), top=1 - 0.45 / (H * len(data)),
                        wspace=0.5, hspace=1.0 / H)
    for i, r in enumerate(data):
        for j, d in enumerate(r):
            ax = fig.add_subplot(len(data), ncols, i * ncols + j + 1)
            _draw(fig, ax, d, extent, titles[i][j], show_legend=(i == 0 and j == 0))
    return fig
