"""Conversion of results to JSON-able Python values (shared by io, compare and studies).

A leaf module (numpy only), so that numerics modules such as ``compare`` can use it
without importing the I/O layer.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["jsonable"]


def jsonable(v):
    """numpy scalars/arrays -> Python; non-finite floats -> None (JSON has no NaN)."""
    if isinstance(v, dict):
        return {str(k): jsonable(u) for k, u in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(u) for u in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if v is None or isinstance(v, (str, int, bool)):
        return v
    return repr(v)
