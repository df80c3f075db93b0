"""Is a model usable on a domain?  Finite L, ∇L, D and ∇·D at given points.

A landscape such as ``log(x)`` is NaN on half of a disk centred at the origin, yet
its gradient 1/x is finite at every quadrature point: without a check the solver
returns a number (an escape rate of −3.8) that means nothing.  These functions raise
:class:`ModelError`, naming the model, the quantity and the first bad point; the
assembly calls them at its quadrature points and the study validation at sample
points of the domain.  numpy only.
"""
from __future__ import annotations

import numpy as np

__all__ = ["ModelError", "describe", "check_finite", "check_landscape", "check_diffusion"]


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
