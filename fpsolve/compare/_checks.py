"""Argument checks of the cross-check: one-line errors naming the argument."""
from __future__ import annotations

import math
from numbers import Integral, Real


def _positive_floats(name, values, minimum_count=1):
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name}: expected a sequence of positive numbers, got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name}: expected positive finite numbers, got {v!r}")
        out.append(float(v))
    if len(out) < minimum_count:
        raise ValueError(f"{name}: expected at least {minimum_count} values, got {len(out)}")
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: values must be distinct, got {out}")
    return tuple(out)


def _positive(name, v):
    if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: expected a positive number, got {v!r}")
    return float(v)


def _count(name, v, minimum):
    if isinstance(v, bool) or not isinstance(v, Integral) or v < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {v!r}")
    return int(v)
