"""Is a model usable on a domain?  Finite L, ∇L, D and ∇·D at given points.

A landscape such as ``log(x)`` is NaN on half of a disk centred at the origin, yet
its gradient 1/x is finite at every quadrature point: without a check the solver
returns a number (an escape rate of −3.8) that means nothing.  These functions raise
:class:`ModelError`, naming the model, the quantity and the first bad point; the
assembly calls them at its quadrature points and the study validation at sample
points of the domain.  A pole that falls between the points (``1/x`` on a polar grid,
``tan(2x)``) is found from the model's symbolic denominators (:func:`check_poles`).
numpy (and scipy for the zero search) only.
"""
from __future__ import annotations

import numpy as np

__all__ = ["ModelError", "describe", "check_finite", "check_poles", "check_landscape",
           "check_diffusion"]


class ModelError(ValueError):
    """A landscape, diffusion or drift model is not finite (or not a valid tensor)."""


def describe(model, role: str) -> str:
    """How messages name a model: its role and its repr (e.g. the expression)."""
    text = repr(model)
    if len(text) > 160:
        text = text[:150] + "...)"
    return f"{role} {text}"


def _points(x, y):
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    x, y = np.broadcast_arrays(x, y)
    return x.ravel(), y.ravel()


def check_finite(values, x, y, what: str, quantity: str) -> None:
    """Raise :class:`ModelError` at the first point where ``values`` is not finite.

    ``values`` has shape ``(*components, *x.shape)``: the trailing axes are the points.
    """
    xs, ys = _points(x, y)
    v = np.asarray(values, dtype=float).reshape(-1, xs.size)
    ok = np.isfinite(v).all(axis=0)
    if ok.all():
        return
    k = int(np.flatnonzero(~ok)[0])
    shown = v[:, k].tolist()
    shown = shown[0] if len(shown) == 1 else shown
    raise ModelError(f"{what}: {quantity} is not finite at (x, y) = ({xs[k]:.6g}, "
                     f"{ys[k]:.6g}) ({quantity} = {shown}); the model must be finite on "
                     "the whole domain")


def check_landscape(landscape, x, y, value=None, gradient=None,
                    with_gradient: bool = True) -> None:
    """L and (unless ``with_gradient`` is False) ∇L finite at the points.

    Both are evaluated unless given.
    """
    what = describe(landscape, "landscape")
    with np.errstate(all="ignore"):     # the bad values are reported, with a point
        value = landscape.value(x, y) if value is None else value
        check_finite(value, x, y, what, "L")
        if with_gradient:
            gradient = landscape.gradient(x, y) if gradient is None else gradient
            check_finite(gradient, x, y, what, "∇L")
    bases = getattr(landscape, "pole_bases", None)
    if bases is not None:
        check_poles(landscape.value, bases("L"), x, y, what, "L")
        if with_gradient:
            check_poles(landscape.gradient, bases("∇L"), x, y, what, "∇L")


def check_diffusion(diffusion, x, y, tensor=None, divergence=None) -> None:
    """D finite, symmetric, positive semi-definite and ∇·D finite at the points.

    ``tensor`` and ``divergence`` (evaluated unless given) may be the unit tensor
    and divergence: the strength is a positive factor.
    """
    from .diffusion import check_tensor
    what = describe(diffusion, "diffusion")
    xs, ys = _points(x, y)
    with np.errstate(all="ignore"):
        if tensor is None or divergence is None:
            tensor, divergence = diffusion.unit_coefficients(x, y)
        check_tensor(np.asarray(tensor).reshape(2, 2, -1), np.stack([xs, ys]), what)
        check_finite(divergence, x, y, what, "∇·D")
    bases = getattr(diffusion, "pole_bases", None)
    if bases is not None:
        check_poles(diffusion.unit_tensor, bases("D"), x, y, what, "D")
        check_poles(diffusion.unit_divergence, bases("∇·D"), x, y, what, "∇·D")


#: at most this many points are searched for poles (a subsample of evenly spaced
#: indices): the assembly passes every quadrature point, millions on adapted meshes
POLE_POINTS = 20_000


def check_poles(quantity_fn, bases, x, y, what: str, quantity: str) -> None:
    """Raise :class:`ModelError` if ``quantity`` is unbounded between the points.

    A finite check at sample points misses a pole between them: ``1/x`` is finite at
    every point of a polar grid.  For each base b of ``bases`` (the denominators of
    the model's expressions), a zero inside the domain is found from a sign change of
    b between two points (bisection; the domain is taken as connected) or, where b
    keeps its sign, by minimising |b| from the point where it is smallest.  The zero
    is a pole if ``quantity_fn`` grows without bound towards it (``x/√(x² + y²)`` has
    a vanishing denominator but stays bounded).

    Parameters
    ----------
    quantity_fn
        ``f(x, y)`` evaluating the quantity (components first, points last).
    bases
        ``(text, f)`` pairs: a denominator's text (for the message) and its function.
    x, y
        Points of the domain (any common shape); at most :data:`POLE_POINTS` of them
        are used.
    what, quantity
        How the message names the model and the quantity.

    Raises
    ------
    ModelError
        Naming the model, the quantity, the point and the denominator.
    """
    if not bases:
        return
    xs, ys = _points(x, y)
    if xs.size > POLE_POINTS:
        pick = np.linspace(0, xs.size - 1, POLE_POINTS).astype(np.int64)
        xs, ys = xs[pick], ys[pick]
    scale = max(np.ptp(xs), np.ptp(ys), 1e-300)
    for text, f in bases:
        with np.errstate(all="ignore"):
            b = np.asarray(f(xs, ys), dtype=float)
        if not np.isfinite(b).all():
            continue                     # not continuous there: check_finite's business
        zero = _zero_of(f, xs, ys, b)
        if zero is not None and _grows(quantity_fn, zero, scale, xs, ys):
            raise ModelError(
                f"{what}: {quantity} is unbounded near (x, y) = ({zero[0]:.6g}, "
                f"{zero[1]:.6g}), where its denominator {text} vanishes inside the "
                f"domain (checked at {xs.size} points); the model must be finite on "
                "the whole domain")


def _zero_of(f, xs, ys, b):
    """A point where the continuous function ``f`` vanishes, near the points, or None."""
    if np.any(b == 0):
        k = int(np.flatnonzero(b == 0)[0])
        return xs[k], ys[k]
    k = int(np.argmin(np.abs(b)))
    other = np.flatnonzero(np.sign(b) != np.sign(b[k]))
    if other.size:                                 # a sign change: bisect the segment
        j = other[np.argmin(np.hypot(xs[other] - xs[k], ys[other] - ys[k]))]
        a, c = np.array([xs[k], ys[k]]), np.array([xs[j], ys[j]])
        fa = b[k]
        for _ in range(80):
            m = 0.5 * (a + c)
            fm = float(f(m[:1], m[1:])[0])
            if fm == 0 or not np.isfinite(fm):
                return tuple(m)
            a, c, fa = (m, c, fm) if np.sign(fm) == np.sign(fa) else (a, m, fa)
        return tuple(0.5 * (a + c))
    if np.abs(b[k]) > 1e-2 * np.abs(b).max():      # far from zero everywhere
        return None
    return _minimise_abs(f, xs, ys, k, np.abs(b).max())


def _minimise_abs(f, xs, ys, k, bmax):
    """Minimise |f| from point k; a zero inside the cloud of points, or None."""
    from scipy.optimize import minimize
    from scipy.spatial import cKDTree
    tree = cKDTree(np.column_stack([xs, ys]))
    gaps = tree.query(tree.data, k=2)[0][:, 1]      # nearest-neighbour distances
    start, step = np.array([xs[k], ys[k]]), max(gaps[k], 1e-300)
    res = minimize(lambda p: abs(float(f(p[:1], p[1:])[0])), start, method="Nelder-Mead",
                   options={"xatol": 1e-14 * (1 + step), "fatol": 0.0, "maxfev": 800,
                            "initial_simplex": [start, start + [step, 0], start + [0, step]]})
    inside = tree.query(res.x)[0] <= 2 * gaps.max()     # not beyond the domain's edge
    return tuple(res.x) if res.fun <= 1e-10 * bmax and inside else None


def _grows(quantity_fn, zero, scale, xs, ys) -> bool:
    """Is |quantity| unbounded towards ``zero``?  Probed in 8 directions at two radii.

    It is if it grows by 100× from the far to the near ring, or if the near ring holds
    values 1e8 above the quantity's typical size at the points (a zero found to
    round-off sits on the pole itself, so both rings can see the same huge value).
    """
    ang = np.linspace(0.0, 2 * np.pi, 8, endpoint=False)

    def size(px, py, reduce=np.max):
        with np.errstate(all="ignore"):
            v = np.abs(np.asarray(quantity_fn(px, py), dtype=float)).reshape(-1, px.size)
        return np.inf if not np.isfinite(v).all() else reduce(v.max(axis=0))

    def ring(eps):
        return size(zero[0] + eps * np.cos(ang), zero[1] + eps * np.sin(ang))

    near, far = ring(1e-9 * scale), ring(1e-5 * scale)
    pick = np.linspace(0, xs.size - 1, min(xs.size, 512)).astype(np.int64)
    typical = size(xs[pick], ys[pick], np.median)
    return not np.isfinite(near) or near > 100.0 * far or near > 1e8 * (typical + 1e-300)
