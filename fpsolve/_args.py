"""Argument checks shared by the public functions: one-line errors naming the argument.

Each check raises ``ValueError("fn: name must be <expected>, got <value>")``.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["err", "as_float", "as_int", "as_bool"]


def err(fn, name, expected, got) -> ValueError:
    return ValueError(f"{fn}: {name} must be {expected}, got {got!r}")


def as_float(fn, name, value, *, positive=False, nonneg=False) -> float:
    """A finite float (positive / non-negative if asked); booleans are not numbers."""
    if isinstance(value, (bool, np.bool_)):
        raise err(fn, name, "a number", value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise err(fn, name, "a number", value) from None
    if not math.isfinite(v) or (positive and v <= 0) or (nonneg and v < 0):
        what = "a positive" if positive else "a non-negative" if nonneg else "a finite"
        raise err(fn, name, f"{what} finite number", value)
    return v


def as_int(fn, name, value, minimum) -> int:
    """An integer ≥ minimum (integral floats such as 1e4 are accepted)."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if not ok and isinstance(value, float) and value.is_integer():
        ok, value = True, int(value)
    if not ok or int(value) < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise err(fn, name, what, value)
    return int(value)


def as_bool(fn, name, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise err(fn, name, "True or False", value)
    return bool(value)
