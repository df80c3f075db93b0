"""The mesh-only operators of :mod:`fpsolve.fe.flux`, factorised once per mesh.

The flux projects J onto the FE space (mass matrix M) and splits it into a stream
function (Laplacian with ψ = 0 on the boundary) and a potential (pinned Neumann
Laplacian).  These three matrices depend only on the mesh and the element, so every
solution on one mesh (a Δ_S sweep, the Fig. 3 cases with and without cross-diffusion)
shares one set of factorisations, cached on the mesh as a Future: a study starts the
build in a background thread right after its assembly (:func:`prefetch_operators`;
SuperLU releases the GIL, so the factorisations overlap the first solve), and the
first flux waits for it.  Prefetched or not, the matrices and orderings are the same,
so the flux is bit for bit the same.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from skfem import BilinearForm
from skfem.helpers import dot, grad

from .assembly import mass_matrix

__all__ = ["prefetch_operators", "prefetch_pending", "wait_prefetch"]

_OPS_LOCK = threading.Lock()


@BilinearForm(nthreads=2)
def _laplace(u, v, _):
    return dot(grad(u), grad(v))


def _spd_lu(A, perm=None):
    """Sparse LU of a symmetric positive definite matrix (mass, Laplacian).

    Symmetric-mode fill-reducing ordering without pivoting: minimum degree on Aᵀ+A
    is 4–5× faster than SuperLU's default COLAMD for these matrices (0.7 s vs 3.2 s
    at 93k P2 dofs); METIS nested dissection (``perm``, or computed here when
    ``pymetis`` is installed, see ``fpsolve.fe.ordering``) is 3–8× faster again for
    P3 from 80k dofs on (docs/ordering.md).
    """
    from . import ordering as _ordering

    return _ordering.splu(A, perm=perm, diag_pivot_thresh=0.0)


def _operator_key(basis) -> tuple:
    return (type(basis.elem).__name__, basis.X.shape[1])


def _operator_slot(basis):
    """(Future of the operators of ``basis``, True if this call created it).

    The cache lives on the mesh, so every solution on one mesh (a Δ_S sweep, the
    Fig. 3 cases with and without cross-diffusion) shares one set of factorisations.
    """
    with _OPS_LOCK:
        cache = basis.mesh.__dict__.setdefault("_fpsolve_flux_ops", {})
        key = _operator_key(basis)
        fut = cache.get(key)
        created = fut is None
        if created:
            fut = cache[key] = Future()
        return fut, created


def _build_operators(basis) -> dict:
    """Mass and Laplace matrices of ``basis`` and their factorisations."""
    N = basis.N
    M = mass_matrix(basis)
    K = _laplace.assemble(basis)
    B = basis.get_dofs().flatten()
    I = np.setdiff1d(np.arange(N), B)
    keep = np.arange(1, N)          # Neumann problem: pin dof 0 (see _potential)
    from . import ordering as _ordering
    # one nested-dissection order (None: SuperLU's MMD) of the mesh graph serves
    # all three matrices: the sub-blocks use the order it induces on them
    perm = _ordering.nd_permutation(M.tocsc())
    # the Laplacians are factorised in a thread beside the mass matrix: SuperLU runs
    # without the GIL, so the three use both cores where the caller leaves one idle
    # (each factorisation is the same as alone)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fpsolve-flux-lu") as ex:
        laplacians = ex.submit(lambda: (
            _spd_lu(K[I][:, I], _ordering.restrict(perm, I)),
            _spd_lu(K[keep][:, keep], _ordering.restrict(perm, keep))))
        lu_M = _spd_lu(M, perm)
        lu_dirichlet, lu_neumann = laplacians.result()
    return {"M": M, "K": K, "B": B, "I": I, "keep": keep, "lu_M": lu_M,
            "lu_dirichlet": lu_dirichlet, "lu_neumann": lu_neumann}


def _fill(fut, basis, before=None) -> None:
    try:
        if before is not None:
            before()
        fut.set_result(_build_operators(basis))
    except BaseException as exc:     # re-raised by the flux that needs the operators
        fut.set_exception(exc)


def _mesh_operators(basis) -> dict:
    """Mass and Laplace matrices of ``basis`` and their factorisations, cached on its mesh.

    They depend only on the mesh and the element.  Built here on first use, unless
    :func:`prefetch_operators` already started them in a background thread (then this
    waits for it); a failure of that build is raised here.
    """
    fut, created = _operator_slot(basis)
    if created:
        _fill(fut, basis)
    try:
        return fut.result()
    except Exception:
        with _OPS_LOCK:        # do not cache a failure: the next flux tries again
            cache = basis.mesh.__dict__["_fpsolve_flux_ops"]
            if cache.get(_operator_key(basis)) is fut:
                del cache[_operator_key(basis)]
        raise


def prefetch_operators(basis, before=None) -> bool:
    """Start building the flux operators of ``basis`` in a background thread.

    A study calls this right after the assembly, so that the mesh-only factorisations
    (the mass matrix and two Laplacians: together more than a solve) overlap the first
    solve: SuperLU releases the GIL while it factorises.  The operators are exactly
    those :func:`flux` would build itself (same matrices, same orderings), so the
    numbers do not depend on whether they were prefetched.

    ``before``, if given, is called first in the thread (a study waits there for the
    nested-dissection order of the mesh computed by its renderer process; METIS holds
    the GIL, so computed here it would stall the first solve).

    Returns
    -------
    bool
        True if a build was started, False if the operators exist or are being built.
    """
    fut, created = _operator_slot(basis)
    if created:
        threading.Thread(target=_fill, args=(fut, basis, before),
                         name="fpsolve-flux-operators", daemon=True).start()
    return created


def prefetch_pending(basis) -> bool:
    """Whether a build of ``basis``'s operators started by :func:`prefetch_operators` is
    still running (a study then solves its next case before the first flux)."""
    with _OPS_LOCK:
        fut = basis.mesh.__dict__.get("_fpsolve_flux_ops", {}).get(_operator_key(basis))
    return fut is not None and not fut.done()


def wait_prefetch(basis) -> None:
    """Wait until a build of ``basis``'s operators started by :func:`prefetch_operators`
    has finished (at once if none was started); a failure is left to the flux to raise.

    A study forks processes (``fpsolve.study.forked``) only when no thread of it is
    inside a factorisation: a forked child inherits a copy of that thread's state in the
    middle of SuperLU's bookkeeping.
    """
    with _OPS_LOCK:
        fut = basis.mesh.__dict__.get("_fpsolve_flux_ops", {}).get(_operator_key(basis))
    if fut is not None:
        try:
            fut.result()
        except Exception:
            pass
