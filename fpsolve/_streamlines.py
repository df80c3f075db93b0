"""Streamlines of a field on a regular grid, drawn as ``Axes.streamplot`` draws them.

matplotlib's streamplot (3.x) integrates every streamline point by point on masked
arrays, which makes it the costliest part of fpsolve's figures.  :func:`streamplot` is
the same algorithm (its grid/mask bookkeeping, spiral seeding, adaptive Heun steps, NaN
ending a line) on Python floats, drawing the same LineCollection and arrows: the images
are identical (tests/test_plot.py), in a fraction of the time.  A leaf module (numpy and
matplotlib only), used by :mod:`fpsolve.plot`.
"""
from __future__ import annotations

import numpy as np

__all__ = ["streamplot"]


class _Stop(Exception):
    """End of a streamline: NaN field, zero speed, or an occupied mask cell."""


class _Streams:
    """Streamlines of (u, v) on the regular grid (x, y), seeded like matplotlib's."""

    def __init__(self, x, y, u, v, density):
        self.nx, self.ny = len(x), len(y)
        self.dx, self.dy = x[1] - x[0], y[1] - y[0]
        self.x0, self.y0 = x[0], y[0]
        self.mnx, self.mny = (30 * np.broadcast_to(density, 2)).astype(int)
        self.mask = [[0] * self.mnx for _ in range(self.mny)]
        # the last mask cell entered; like matplotlib's, it carries over between lines
        self.cur = None
        self.traj = []
        self.g2m = ((self.mnx - 1) / (self.nx - 1), (self.mny - 1) / (self.ny - 1))
        self.m2g = (1.0 / self.g2m[0], 1.0 / self.g2m[1])
        ug, vg = u * (1.0 / self.dx), v * (1.0 / self.dy)       # grid units
        speed = np.sqrt((ug / (self.nx - 1)) ** 2 + (vg / (self.ny - 1)) ** 2)
        self.u, self.v, self.speed = ug.tolist(), vg.tolist(), speed.tolist()
        self.maxds = min(1.0 / self.mnx, 1.0 / self.mny, 0.1)

    def interp(self, a, xi, yi):
        x, y = int(xi), int(yi)
        xn = x if x == self.nx - 1 else x + 1
        yn = y if y == self.ny - 1 else y + 1
        xt, yt = xi - x, yi - y
        a0 = a[y][x] * (1 - xt) + a[y][xn] * xt
        a1 = a[yn][x] * (1 - xt) + a[yn][xn] * xt
        ai = a0 * (1 - yt) + a1 * yt
        if ai != ai:                    # NaN: outside the mesh or negligible flux
            raise _Stop
        return ai

    def within(self, xi, yi):
        return 0 <= xi <= self.nx - 1 and 0 <= yi <= self.ny - 1

    def velocity(self, xi, yi, sign):
        """d(grid position)/d(arc length in axes units), or raise at the domain edge."""
        if not self.within(xi, yi):
            raise IndexError
        ds_dt = self.interp(self.speed, xi, yi)
        if ds_dt == 0:
            raise _Stop
        dt_ds = sign / ds_dt
        return self.interp(self.u, xi, yi) * dt_ds, self.interp(self.v, xi, yi) * dt_ds

    def visit(self, xg, yg):
        """Occupy the mask cell of a grid point (raise _Stop if another line has)."""
        xm, ym = round(xg * self.g2m[0]), round(yg * self.g2m[1])
        if self.cur != (xm, ym):
            if self.mask[ym][xm]:
                raise _Stop
            self.traj.append((ym, xm))
            self.mask[ym][xm] = 1
            self.cur = (xm, ym)

    def line(self, x0, y0, minlength, maxlength):
        """Grid coordinates of the streamline through (x0, y0), or None if too short."""
        self.traj = []
        try:
            self.visit(x0, y0)
        except _Stop:
            return None
        sb, back = self.integrate(x0, y0, -1.0, maxlength)
        self.cur = (round(x0 * self.g2m[0]), round(y0 * self.g2m[1]))
        sf, fwd = self.integrate(x0, y0, 1.0, maxlength)
        if sb + sf > minlength:
            return np.array(back[::-1] + fwd[1:])
        for t in self.traj:                 # too short: free its cells again
            self.mask[t[0]][t[1]] = 0
        return None

    def integrate(self, xi, yi, sign, maxlength):
        """Adaptive Heun steps (matplotlib's _integrate_rk12) in one direction."""
        maxerror, ds, stotal, out = 0.003, self.maxds, 0.0, []
        while True:
            try:
                if not self.within(xi, yi):
                    raise IndexError
                out.append((xi, yi))
                k1x, k1y = self.velocity(xi, yi, sign)
                k2x, k2y = self.velocity(xi + ds * k1x, yi + ds * k1y, sign)
            except IndexError:
                if out:                     # Euler step onto the domain edge
                    step = self.euler_to_edge(out, sign)
                    stotal += step
                break
            except _Stop:
                break
            dx1, dy1 = ds * k1x, ds * k1y
            dx2, dy2 = ds * 0.5 * (k1x + k2x), ds * 0.5 * (k1y + k2y)
            error = np.hypot((dx2 - dx1) / (self.nx - 1), (dy2 - dy1) / (self.ny - 1))
            if error < maxerror:
                xi += dx2
                yi += dy2
                try:
                    if not self.within(xi, yi):
                        raise _Stop
                    self.visit(xi, yi)
                except _Stop:
                    break
                if stotal + ds > maxlength:
                    break
                stotal += ds
            ds = self.maxds if error == 0 else min(self.maxds,
                                                   0.85 * ds * (maxerror / error) ** 0.5)
        return stotal, out

    def euler_to_edge(self, out, sign):
        xi, yi = out[-1]
        cx, cy = self.velocity(xi, yi, sign)
        dsx = np.inf if cx == 0 else (xi / -cx if cx < 0 else (self.nx - 1 - xi) / cx)
        dsy = np.inf if cy == 0 else (yi / -cy if cy < 0 else (self.ny - 1 - yi) / cy)
        step = min(dsx, dsy)
        out.append((xi + cx * step, yi + cy * step))
        return step

    def seeds(self):
        """Mask cells from the corner spiralling inwards (matplotlib's order)."""
        nx, ny = self.mnx, self.mny
        xfirst, yfirst, xlast, ylast = 0, 1, nx - 1, ny - 1
        x = y = 0
        direction = "right"
        for _ in range(nx * ny):
            yield x, y
            if direction == "right":
                x += 1
                if x >= xlast:
                    xlast -= 1
                    direction = "up"
            elif direction == "up":
                y += 1
                if y >= ylast:
                    ylast -= 1
                    direction = "left"
            elif direction == "left":
                x -= 1
                if x <= xfirst:
                    xfirst += 1
                    direction = "down"
            else:
                y -= 1
                if y <= yfirst:
                    yfirst += 1
                    direction = "right"

    def lines(self, minlength, maxlength=4.0):
        out = []
        for xm, ym in self.seeds():
            if self.mask[ym][xm] == 0:
                t = self.line(xm * self.m2g[0], ym * self.m2g[1], minlength, 0.5 * maxlength)
                if t is not None:
                    out.append(t)
        return out


def _interp_along(a, xi, yi):
    """Bilinear values of the grid array ``a`` along a line (array form)."""
    ny, nx = a.shape
    x, y = xi.astype(int), yi.astype(int)
    xn, yn = np.clip(x + 1, 0, nx - 1), np.clip(y + 1, 0, ny - 1)
    xt, yt = xi - x, yi - y
    a0 = a[y, x] * (1 - xt) + a[y, xn] * xt
    a1 = a[yn, x] * (1 - xt) + a[yn, xn] * xt
    return a0 * (1 - yt) + a1 * yt


def streamplot(ax, x, y, u, v, linewidth, density, arrowsize, minlength, color):
    """``ax.streamplot(x, y, u, v, color=color, linewidth=linewidth, density=density,
    arrowsize=arrowsize, minlength=minlength)``, drawn from :class:`_Streams`.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    x, y : ndarray
        The regular grid's coordinates (increasing, evenly spaced).
    u, v : ndarray
        The field on the grid, shape (len(y), len(x)); NaN ends a streamline.
    linewidth : ndarray
        Line width on the grid (same shape as ``u``).
    density, arrowsize, minlength : float
        As for ``Axes.streamplot``.
    color : color
        Colour of the lines and arrows.
    """
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch

    st = _Streams(x, y, u, v, density)
    segments, widths, arrows = [], [], []
    for t in st.lines(minlength):
        tgx, tgy = t.T
        tx, ty = tgx / (1.0 / st.dx) + st.x0, tgy / (1.0 / st.dy) + st.y0
        pts = np.transpose([tx, ty]).reshape(-1, 1, 2)
        segments.extend(np.hstack([pts[:-1], pts[1:]]))
        lw = _interp_along(linewidth, tgx, tgy)[:-1]
        widths.extend(lw)
        s = np.cumsum(np.hypot(np.diff(tx), np.diff(ty)))
        i = np.searchsorted(s, s[-1] * 0.5)
        arrows.append(FancyArrowPatch((tx[i], ty[i]), (np.mean(tx[i:i + 2]),
                                                      np.mean(ty[i:i + 2])),
                                      transform=ax.transData, arrowstyle="-|>",
                                      mutation_scale=10 * arrowsize, color=color,
                                      linewidth=lw[i], zorder=Line2D.zorder))
    lc = LineCollection(segments, transform=ax.transData, color=color, linewidth=widths,
                        zorder=Line2D.zorder)
    lc.sticky_edges.x[:] = [st.x0, st.x0 + (x[-1] - x[0])]
    lc.sticky_edges.y[:] = [st.y0, st.y0 + (y[-1] - y[0])]
    ax.add_collection(lc)
    for p in arrows:
        # add_artist, not add_patch: the arrows lie on the lines, whose collection has
        # set the data limits already (add_patch's per-patch limit update is 1/3 of the
        # cost of the arrows)
        ax.add_artist(p)
    ax.autoscale_view()
