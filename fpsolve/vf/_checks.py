"""Argument checks shared by the variance–flatness modules (one-line errors)."""
from __future__ import annotations

import math
import numbers

import numpy as np


def _err(fn, name, expected, got):
    return ValueError(f"{fn}: {name} must be {expected}, got {got!r}")


def _positive(fn, name, value, *, allow_inf=False):
    if isinstance(value, bool):
        raise _err(fn, name, "a positive number", value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise _err(fn, name, "a positive number", value) from None
    if not (v > 0) or (math.isinf(v) and not allow_inf) or math.isnan(v):
        raise _err(fn, name, "a positive finite number" if not allow_inf
                   else "a positive number", value)
    return v


def _count(fn, name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise _err(fn, name, f"an integer >= {minimum}", value)
    return int(value)


def _fraction(fn, name, value):
    v = _positive(fn, name, value)
    if v >= 1:
        raise _err(fn, name, "a number in (0, 1)", value)
    return v


def _snapshots(fn, snapshots, min_rows=2):
    X = np.asarray(snapshots, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"{fn}: snapshots must be a 2-D array (T snapshots, N parameters), "
                         f"got shape {X.shape}")
    if X.shape[0] < min_rows or X.shape[1] < 1:
        raise ValueError(f"{fn}: need at least {min_rows} snapshots of at least one "
                         f"parameter, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{fn}: snapshots contain NaN or inf (row "
                         f"{int(np.flatnonzero(~np.all(np.isfinite(X), axis=1))[0])})")
    return X
