"""The hook through which result objects draw themselves (``obj.plot()``,
``obj._repr_html_()``).

``Solution``, ``Flux`` and ``MonteCarloResult`` live in layers that may not import the
figure code above them (tests/test_layers.py).  Their ``plot`` and ``_repr_html_``
methods call :func:`figure` and :func:`html` here, which import the display module
named by :data:`PROVIDER` only when a figure or table is asked for.  The package facade
sets :data:`PROVIDER` (to ``fpsolve.display``), so the dependency is wired at the top,
and ``import fpsolve`` imports neither the display module nor matplotlib.
"""
from __future__ import annotations

import importlib

__all__ = ["PROVIDER", "figure", "html"]

#: dotted name of the module with ``figure(kind, obj, **kw)`` and ``html(kind, obj)``
PROVIDER: str | None = None


def _provider():
    if PROVIDER is None:
        raise RuntimeError("no display module registered (import fpsolve first)")
    return importlib.import_module(PROVIDER)


def figure(kind: str, obj, **kwargs):
    """A matplotlib Figure of ``obj`` (``kind``: "solution", "flux", "montecarlo", ...)."""
    return _provider().figure(kind, obj, **kwargs)


def html(kind: str, obj) -> str:
    """An HTML table of the key numbers of ``obj`` (for Jupyter's rich display)."""
    return _provider().html(kind, obj)
