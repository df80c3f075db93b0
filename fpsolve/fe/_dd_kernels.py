"""The compiled double-double residual kernel of :mod:`fpsolve.fe.exact_residual`.

Module-level ``@njit(cache=True)`` functions, so numba's on-disk cache is hit by every
later run (a kernel defined inside a function was compiled anew each run: ~0.5 s CPU).
Imported on first use only: importing numba costs ~0.3 s.
"""
from numba import njit


@njit(inline="always")
def two_prod(a, b):
    """a·b = p + e exactly (Dekker's split: exact without an FMA; numba does not contract)."""
    p = a * b
    c = 134217729.0 * a
    ah = c - (c - a)
    al = a - ah
    c = 134217729.0 * b
    bh = c - (c - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@njit(inline="always")
def two_sum(a, b):
    """a + b = s + e exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@njit(cache=True, nogil=True)
def residual(indptr, indices, data, x, b, bl, out, out_lo):
    """out + out_lo = b + bl − K x row by row (CSR), accumulated in double-double."""
    for r in range(indptr.size - 1):
        hi, lo = two_sum(b[r], bl[r])
        for k in range(indptr[r], indptr[r + 1]):
            p, e = two_prod(data[k], x[indices[k]])
            hi, t = two_sum(hi, -p)
            lo += t - e
        out[r], out_lo[r] = two_sum(hi, lo)
