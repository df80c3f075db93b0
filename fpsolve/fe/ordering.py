"""Fill-reducing orderings (nested dissection) for the sparse LU factorisations.

SuperLU's built-in orderings are minimum degree (MMD on AᵀA or Aᵀ+A) and COLAMD.
On the large 2-D finite-element graphs of this package minimum degree leaves
much more fill than nested dissection, whose separators of O(√N) vertices give
the optimal O(N log N) fill and O(N^1.5) flops for planar meshes
(docs/ordering.md).  This module computes a nested-dissection permutation once
per sparsity pattern; the matrix is permuted symmetrically and handed to SuperLU
with ``permc_spec="NATURAL"`` (SuperLU still post-orders the elimination tree
and pivots as before).
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["splu", "nd_permutation", "restrict", "adjacency", "metis_order",
           "geometric_nd_order", "PermutedLU", "MIN_SIZE", "MIN_SIZE_GRADED",
           "MIN_SIZE_UNIFORM_ONCE", "MIN_ROW_NNZ",
           "MIN_ROW_NNZ_REUSE"]

# When nested dissection is used (measured, docs/ordering.md).  The METIS call costs
# about as much as one factorisation in its order (0.4 s at 81k P3 unknowns); it pays
# even on the first factorisation for the dense P3 stencils (~17 nonzeros per row),
# where SuperLU's MMD is slow (31.6 s against 3.7 s incl. METIS at 325k), but not on
# P1/P2 stencils (7/11 per row), where MMD is within 1.6x of the nested-dissection
# factorisation and the METIS call would make a single solve slower.
#: Matrices smaller than this keep SuperLU's own MMD ordering.
MIN_SIZE = 20_000
#: ... and on the graded meshes of the adaptive loop (``min_size`` below), where every
#: pattern is factorised once: there MMD leaves 5-10 % more fill than nested dissection
#: (and less for the P4 duals) and factorises 1.3-1.6x slower, but the METIS call costs
#: 1.5-2x the factorisation.  Measured (CPU s, order + factorisation, paper landscape
#: Δ_S = 0.004 levels): P3 39k rows 0.33 -> 0.16, 58k 0.53 -> 0.28, P4 103k 1.05 -> 0.62.
#: Uniform P3 81k: 0.66 against 0.69 (break-even); at 325k MMD is 8x slower.
MIN_SIZE_GRADED = 120_000
#: ... and on the adaptive loop's level 0 when it is the user's uniform mesh, factorised
#: once (no sweep group sharing the order): uniform P3, CPU s of order + factorisation,
#: MMD against METIS + ND: 81k rows 0.65 / 0.65, 100k 1.71 / 0.84, 127k 2.71 / 1.10
MIN_SIZE_UNIFORM_ONCE = 80_000
#: ... and so do matrices with fewer nonzeros per row than this (P1, P2).
MIN_ROW_NNZ = 14.0
#: When the caller factorises one pattern many times (a Δ_S sweep), P2 stencils
#: (~11 per row) qualify too: METIS factorises them 1.6-2x faster and its order
#: pays from the third factorisation on (docs/ordering.md).  P1 is not measured.
MIN_ROW_NNZ_REUSE = 9.0
#: Permutations of the most recently seen sparsity patterns (a Δ_S sweep or the
#: Fig. 3 cases re-factorise the same pattern; the flux operators share the interior
#: pattern of the solve).  Each entry is one int64 per unknown.
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 16
_LOCK = threading.Lock()     # studies may factorise in threads


class PermutedLU:
    """LU factors of ``A[perm][:, perm]`` that solve systems with ``A``.

    Wraps a :class:`scipy.sparse.linalg.SuperLU`; ``solve`` permutes the right-hand
    side and the solution, every other attribute (``L``, ``U``, ``shape``, ``nnz``,
    ...) is the wrapped object's, i.e. refers to the permuted matrix.

    Parameters
    ----------
    lu : scipy.sparse.linalg.SuperLU
        Factorisation of ``A[perm][:, perm]``.
    perm : ndarray of int
        The symmetric permutation.
    """

    def __init__(self, lu, perm):
        self.lu = lu
        self.perm = perm

    def solve(self, rhs, trans="N"):
        """Solve ``A x = rhs`` (``trans="T"``: ``Aᵀ x = rhs``) for 1-D or 2-D ``rhs``."""
        # A' = P A Pᵀ with (P v)_i = v[perm_i], and the same holds for Aᵀ: y = A'⁻¹ P b, x = Pᵀ y
        y = self.lu.solve(np.asarray(rhs)[self.perm], trans=trans)
        x = np.empty_like(y)
        x[self.perm] = y
        return x

    def __getattr__(self, name):
        return getattr(self.lu, name)


def _pattern_key(A) -> tuple:
    # a digest of the structure: the permutation depends on nothing else, and the
    # callers pass fresh sub-blocks (interior, pinned) of matrices assembled once
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(A.indptr).tobytes())
    h.update(np.ascontiguousarray(A.indices).tobytes())
    return (A.format, A.shape, A.nnz, h.hexdigest())


def nd_permutation(A, reuse: bool = False, min_size: int | None = None):
    """Cached nested-dissection permutation of A's pattern, or None.

    Parameters
    ----------
    A : scipy.sparse.csc_matrix or csr_matrix, square
    reuse : bool
        The pattern will be factorised several times: use the lower density
        threshold :data:`MIN_ROW_NNZ_REUSE`.
    min_size : int, optional
        Smallest size ordered by nested dissection (default :data:`MIN_SIZE`;
        :data:`MIN_SIZE_GRADED` for the single factorisations of adapted meshes).

    Returns
    -------
    perm : ndarray of int64 or None
        None when ``pymetis`` is not installed, or A has fewer than :data:`MIN_SIZE`
        rows or fewer than :data:`MIN_ROW_NNZ` nonzeros per row: the caller then
        keeps SuperLU's MMD ordering.
    """
    n = A.shape[0]
    small = n < (MIN_SIZE if min_size is None else min_size)
    if small or A.nnz < (MIN_ROW_NNZ_REUSE if reuse else MIN_ROW_NNZ) * n:
        return None
    key = _pattern_key(A)
    with _LOCK:
        perm = _CACHE.get(key)
        if perm is not None:
            _CACHE.move_to_end(key)
            return perm
    try:
        perm = metis_order(A)
    except ImportError:
        return None
    with _LOCK:
        _CACHE[key] = perm
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return perm


def pattern_orders(A, reuse: bool = True) -> dict:
    """``{pattern key: permutation}`` of A's pattern (empty when it gets none), for
    :func:`remember` in another process: METIS is deterministic, so the permutation is
    the one :func:`nd_permutation` would compute there."""
    A = sp.csc_matrix(A)
    perm = nd_permutation(A, reuse)
    return {} if perm is None else {_pattern_key(A): perm}


def remember(orders: dict) -> None:
    """Cache permutations computed elsewhere (:func:`pattern_orders`): a later
    :func:`nd_permutation` of the same pattern returns them instead of calling METIS."""
    with _LOCK:
        for key, perm in orders.items():
            _CACHE[key] = np.asarray(perm, dtype=np.int64)
            _CACHE.move_to_end(key)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)


def restrict(perm, subset):
    """The order ``perm`` induces on a principal sub-block.

    Deleting vertices from a nested-dissection order leaves one for the remaining
    graph (separators stay separators), so the sub-blocks of one matrix (interior,
    pinned) can share one METIS call.

    Parameters
    ----------
    perm : ndarray of int or None
        Permutation of ``range(n)``.
    subset : ndarray of int
        Sorted, distinct indices of the sub-block ``A[subset][:, subset]``.

    Returns
    -------
    ndarray of int64 or None
        Permutation of ``range(len(subset))``; None if ``perm`` is None.
    """
    if perm is None:
        return None
    pos = np.full(len(perm), -1, dtype=np.int64)
    pos[np.asarray(subset)] = np.arange(len(subset))
    q = pos[perm]
    return q[q >= 0]


def splu(A, perm=None, reuse: bool = False, min_size: int | None = None, **kwargs):
    """Sparse LU of a structurally symmetric matrix in a nested-dissection order.

    The matrix is permuted symmetrically by ``perm`` (default: :func:`nd_permutation`)
    and factorised by SuperLU with ``permc_spec="NATURAL"`` in symmetric mode; when
    there is no permutation (no ``pymetis``, a small or sparse-stencil matrix)
    SuperLU's own minimum-degree ordering on Aᵀ+A is used, as before.  Pivoting
    options (``kwargs``, e.g. ``diag_pivot_thresh``) are passed on unchanged.

    Parameters
    ----------
    A : sparse matrix, square, with a symmetric sparsity pattern
    perm : ndarray of int, optional
        A fill-reducing order to use instead of :func:`nd_permutation`'s.
    reuse : bool
        Passed to :func:`nd_permutation` (the pattern will be factorised again).
    min_size : int, optional
        Passed to :func:`nd_permutation`.
    **kwargs
        Passed to :func:`scipy.sparse.linalg.splu`.

    Returns
    -------
    scipy.sparse.linalg.SuperLU or PermutedLU
        Either way ``.solve(b)`` solves ``A x = b``.
    """
    A = sp.csc_matrix(A)
    if perm is None:
        perm = nd_permutation(A, reuse, min_size)
    if perm is None:
        return spla.splu(A, permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True},
                         **kwargs)
    lu = spla.splu(A[perm][:, perm].tocsc(), permc_spec="NATURAL",
                   options={"SymmetricMode": True}, **kwargs)
    return PermutedLU(lu, perm)


def adjacency(A):
    """Symmetric adjacency (pattern of A + Aᵀ without the diagonal) in CSR form.

    Parameters
    ----------
    A : sparse matrix, square

    Returns
    -------
    indptr, indices : ndarray of int32
        CSR structure of the graph, sorted indices.
    """
    P = sp.csr_matrix(A, copy=False)
    P = sp.csr_matrix((np.ones(P.nnz, dtype=np.int8), P.indices, P.indptr), shape=P.shape)
    G = (P + P.T).tocoo()
    keep = G.row != G.col
    G = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.int8), (G.row[keep], G.col[keep])),
                      shape=A.shape)
    G.sort_indices()
    return G.indptr.astype(np.int32), G.indices.astype(np.int32)


def metis_order(A):
    """Nested-dissection permutation of A's symmetrised graph by METIS (pymetis).

    Parameters
    ----------
    A : sparse matrix, square

    Returns
    -------
    perm : ndarray of int64
        Elimination order: ``A[perm][:, perm]`` is the reordered matrix.

    Raises
    ------
    ImportError
        If ``pymetis`` is not installed (a dependency of fpsolve; the callers fall
        back to SuperLU's minimum degree without it).
    """
    import pymetis   # optional: lazily imported, callers fall back to SuperLU's MMD

    indptr, indices = adjacency(A)
    # METIS: "row i of A' is row perm[i] of A", i.e. A' = A[perm][:, perm].  Its
    # default options are deterministic (fixed seed), so a cached and a fresh
    # permutation are the same.
    perm, _ = pymetis.nested_dissection(pymetis.CSRAdjacency(indptr, indices))
    return np.asarray(perm, dtype=np.int64)


def geometric_nd_order(A, coords, leaf=256):
    """Geometric nested dissection: coordinate bisection with graph separators.

    Each part is split at the median of its longer extent; the separator is the
    set of vertices on one side (the smaller candidate) adjacent to the other.
    Parts of at most ``leaf`` vertices stay in their original order; separators
    are eliminated after both halves (post-order), ordered along the cut.

    Parameters
    ----------
    A : sparse matrix, square
        Only its (symmetrised) pattern is used.
    coords : ndarray, shape (2, n) or (n, 2)
        A point per row/column of A (the dof locations).
    leaf : int
        Parts of at most this many vertices are not split further.

    Returns
    -------
    perm : ndarray of int64
        Elimination order: ``A[perm][:, perm]`` is the reordered matrix.
    """
    n = A.shape[0]
    X = np.asarray(coords, dtype=float)
    if X.shape[0] != n:
        X = X.T
    indptr, indices = adjacency(A)
    rows = np.repeat(np.arange(n, dtype=np.int32), np.diff(indptr))
    label = np.zeros(n, dtype=np.int64)      # node (path bits) of the active vertices, -1: done
    path = np.zeros(n, dtype=np.int64)       # node where a vertex was finished
    depth = np.zeros(n, dtype=np.int64)
    sub = np.zeros(n)                        # secondary key (order within a leaf/separator)
    sub[:] = np.arange(n)
    d = 0
    while True:                              # one level of the dissection tree per pass
        act = np.flatnonzero(label >= 0)
        if act.size == 0:
            break
        lab = label[act]
        small = np.bincount(lab)[lab] <= leaf
        done = act[small]
        path[done], depth[done] = lab[small], d
        label[done] = -1
        act, lab = act[~small], lab[~small]
        if act.size == 0:
            break
        _bisect_parts(X, rows, indices, label, act, lab, d, path, depth, sub)
        d += 1
    dmax = int(depth.max()) if n else 0
    end = (path + 1) << (dmax - depth)     # end of the node's interval of leaves
    # post-order: by interval end; at a common end the deeper node first; leaves
    # before separators of the same node cannot occur (a node is one or the other)
    return np.lexsort((sub, -depth, end)).astype(np.int64)


def _bisect_parts(X, rows, cols, label, act, lab, d, path, depth, sub):
    """Split every active part (vertices ``act`` with node labels ``lab``) at the median of
    its longer extent; finish its separator at depth ``d`` and relabel the two halves.

    Updates ``label``, ``path``, ``depth`` and ``sub`` in place.
    """
    n = label.size
    # longer extent per part (parts are contiguous after a stable sort by label)
    o = np.argsort(lab, kind="stable")
    act, lab = act[o], lab[o]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    ext = [np.maximum.reduceat(X[act, k], starts) - np.minimum.reduceat(X[act, k], starts)
           for k in (0, 1)]
    axis_g = (ext[1] > ext[0]).astype(np.int64)
    gid = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, act.size]))
    c = X[act, axis_g[gid]]
    o = np.lexsort((c, gid))
    act, lab, gid = act[o], lab[o], gid[o]
    size = np.diff(np.r_[starts, act.size])
    rank = np.arange(act.size) - starts[gid]
    side = np.full(n, -1, dtype=np.int64)
    side[act] = (rank >= size[gid] // 2)
    # candidate separators: vertices of side s with a neighbour in the other side
    e = (label[rows] >= 0) & (label[rows] == label[cols]) & (side[rows] >= 0) \
        & (side[cols] >= 0) & (side[rows] != side[cols])
    cand = np.zeros(n, dtype=bool)
    cand[rows[e]] = True
    ng = starts.size
    n0 = np.bincount(gid[cand[act] & (side[act] == 0)], minlength=ng)
    n1 = np.bincount(gid[cand[act] & (side[act] == 1)], minlength=ng)
    sep_side = (n1 < n0).astype(np.int64)   # per part: the side giving the smaller separator
    sep = cand[act] & (side[act] == sep_side[gid])
    s = act[sep]
    path[s], depth[s] = lab[sep], d
    # order a separator along its cut (coordinate orthogonal to the split axis)
    sub[s] = X[s, 1 - axis_g[gid[sep]]]
    label[s] = -1
    keep = ~sep
    label[act[keep]] = 2 * lab[keep] + side[act[keep]]
