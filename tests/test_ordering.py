"""Nested-dissection orderings for the sparse LU (fpsolve.fe.ordering)."""
import sys

import numpy as np
import pytest
import scipy.sparse.linalg as spla

import fpsolve as fp
from fpsolve.fe import ordering as _ordering
from fpsolve.fe.flux import _spd_lu, _laplace
from fpsolve.fe.solver import _splu


@pytest.fixture(scope="module")
def fp_block():
    """Interior block of the Fig. 3 operator, P2 on h = 0.05 (22.8k unknowns)."""
    L = fp.landscapes.paper()
    prob = fp.Problem(L, fp.diffusion.sgd(L, 0.012), fp.disk_mesh(2.0, 0.05), order=2)
    I = prob.interior_dofs
    A = prob.operator.A(0.012)[I][:, I].tocsc()
    b = np.asarray(prob.operator.M[I][:, I].sum(axis=1)).ravel()
    K = _laplace.assemble(prob.basis).tocsr()[I][:, I].tocsc()
    return A, b, K, prob.basis.doflocs[:, I]


def _mmd(A, **kw):
    return spla.splu(A, permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True}, **kw)


def _fill(lu):
    return lu.L.nnz + lu.U.nnz


def _is_permutation(p, n):
    return p.shape == (n,) and np.array_equal(np.sort(p), np.arange(n))


def test_metis_order_is_a_permutation_and_cached(fp_block, monkeypatch):
    pytest.importorskip("pymetis")
    A = fp_block[0]
    p = _ordering.metis_order(A)
    assert _is_permutation(p, A.shape[0])
    assert np.array_equal(_ordering.metis_order(A), p)          # deterministic
    # policy: a P2 stencil (~11 nonzeros per row) keeps MMD ...
    assert A.shape[0] >= _ordering.MIN_SIZE
    assert A.nnz < _ordering.MIN_ROW_NNZ * A.shape[0]
    assert _ordering.nd_permutation(A) is None
    # ... which the size/density thresholds decide
    monkeypatch.setattr(_ordering, "MIN_ROW_NNZ", 0.0)
    q = _ordering.nd_permutation(A)
    assert np.array_equal(q, p)
    assert _ordering.nd_permutation(A.copy()) is q              # cached by pattern
    # a sub-block (pinned system) is a different pattern: its own permutation
    keep = np.arange(1, A.shape[0])
    r = _ordering.nd_permutation(A[keep][:, keep].tocsc())
    assert _is_permutation(r, A.shape[0] - 1)
    # the order induced on a sub-block
    s = _ordering.restrict(p, keep)
    assert _is_permutation(s, len(keep))
    assert np.array_equal(keep[s], p[p != 0])


def test_nested_dissection_reproduces_direct_solve_with_less_fill(fp_block):
    pytest.importorskip("pymetis")
    A, b, K, _ = fp_block
    ref = _mmd(A)
    x_ref = ref.solve(b)
    lu = _ordering.splu(A, perm=_ordering.metis_order(A))
    assert isinstance(lu, _ordering.PermutedLU)
    x = lu.solve(b)
    # A is nearly singular (μ ≈ 1e-8): orderings agree to its conditioning, and
    # both solve the system to round-off
    assert np.linalg.norm(x - x_ref) / np.linalg.norm(x_ref) < 1e-5
    scale = spla.norm(A, np.inf) * np.max(np.abs(x))
    assert np.max(np.abs(A @ x - b)) / scale < 1e-14
    assert _fill(lu) < 0.95 * _fill(ref)
    # transposed and several right-hand sides
    B = np.column_stack([b, np.arange(len(b), dtype=float)])
    X = lu.solve(B)
    assert np.max(np.abs(A @ X - B)) / (spla.norm(A, np.inf) * np.max(np.abs(X))) < 1e-14
    y = lu.solve(b, trans="T")
    assert np.max(np.abs(A.T @ y - b)) / (spla.norm(A, np.inf) * np.max(np.abs(y))) < 1e-14
    # SPD (flux operators, no pivoting)
    lk = _spd_lu(K, _ordering.metis_order(K))
    z = lk.solve(b)
    mk = _mmd(K, diag_pivot_thresh=0.0)
    z_ref = mk.solve(b)
    assert np.linalg.norm(z - z_ref) / np.linalg.norm(z_ref) < 1e-10
    assert _fill(lk) < _fill(mk)


def test_geometric_nested_dissection(fp_block):
    A, b, _, X = fp_block
    p = _ordering.geometric_nd_order(A, X, leaf=16)
    assert _is_permutation(p, A.shape[0])
    lu = spla.splu(A[p][:, p].tocsc(), permc_spec="NATURAL", options={"SymmetricMode": True})
    x = np.empty_like(b)
    x[p] = lu.solve(b[p])
    x_ref = _mmd(A).solve(b)
    assert np.linalg.norm(x - x_ref) / np.linalg.norm(x_ref) < 1e-5


def test_fallback_without_pymetis(fp_block, monkeypatch):
    A, b = fp_block[:2]
    monkeypatch.setitem(sys.modules, "pymetis", None)        # import pymetis -> ImportError
    monkeypatch.setattr(_ordering, "_CACHE", type(_ordering._CACHE)())
    lu = _splu(A)
    assert not isinstance(lu, _ordering.PermutedLU)
    assert np.array_equal(lu.solve(b), _mmd(A).solve(b))      # exactly the old behaviour


def test_small_matrices_keep_mmd():
    L = fp.landscapes.paper()
    prob = fp.Problem(L, fp.diffusion.sgd(L, 0.012), fp.disk_mesh(2.0, 0.2), order=3)
    I = prob.interior_dofs
    A = prob.operator.A()[I][:, I].tocsc()
    assert A.shape[0] < _ordering.MIN_SIZE <= 20 * A.shape[0]
    assert A.nnz >= _ordering.MIN_ROW_NNZ * A.shape[0]        # a P3 stencil, but small
    assert _ordering.nd_permutation(A) is None
    assert not isinstance(_splu(A), _ordering.PermutedLU)


@pytest.mark.filterwarnings("ignore::fpsolve.FPSolveWarning")
@pytest.mark.parametrize("boundary", ["absorbing", "reflecting"])
def test_solve_with_nested_dissection_matches_mmd(boundary, monkeypatch):
    """The whole solve (interior block or pinned system) agrees to round-off, P3."""
    pytest.importorskip("pymetis")
    L = fp.landscapes.paper()
    D = fp.diffusion.sgd(L, 0.012)
    mesh = fp.disk_mesh(2.0, 0.1)
    ref = fp.Problem(L, D, mesh, order=3, boundary=boundary).solve()
    monkeypatch.setattr(_ordering, "MIN_SIZE", 0)
    prob = fp.Problem(L, D, mesh, order=3, boundary=boundary)
    assert isinstance(_splu(prob.operator.A()[1:, 1:].tocsc()), _ordering.PermutedLU)
    sol = prob.solve()
    assert np.max(np.abs(sol.P - ref.P)) / np.max(np.abs(ref.P)) < 1e-8
    if boundary == "absorbing":
        assert sol.escape_rate == pytest.approx(ref.escape_rate, rel=1e-6)


def test_flux_operators_with_nested_dissection(monkeypatch):
    """M, the Dirichlet and the pinned Laplacian share one order; all solve exactly."""
    pytest.importorskip("pymetis")
    from fpsolve.fe.flux import _mesh_operators

    monkeypatch.setattr(_ordering, "MIN_SIZE", 0)
    basis = fp.fe.assembly.make_basis(fp.disk_mesh(2.0, 0.15), order=3)
    ops = _mesh_operators(basis)
    rng = np.random.default_rng(0)
    for A, lu in [(ops["M"], ops["lu_M"]),
                  (ops["K"][ops["I"]][:, ops["I"]], ops["lu_dirichlet"]),
                  (ops["K"][ops["keep"]][:, ops["keep"]], ops["lu_neumann"])]:
        assert isinstance(lu, _ordering.PermutedLU)
        b = rng.standard_normal(A.shape[0])
        x = lu.solve(b)
        assert np.allclose(x, spla.spsolve(A.tocsc(), b), rtol=1e-9, atol=1e-12 * np.abs(x).max())


def test_sweeps_use_nested_dissection_for_p2(fp_block, monkeypatch):
    """P2 keeps MMD for one solve; a sweep of ≥ 4 values (or reuse_ordering=True)
    factorises in the cached METIS order, with the same results as single solves."""
    pytest.importorskip("pymetis")
    A = fp_block[0]
    assert _ordering.nd_permutation(A) is None                 # P2: ~11 nonzeros per row
    assert _ordering.nd_permutation(A, reuse=True) is not None
    calls = []
    real = _ordering.nd_permutation
    monkeypatch.setattr(_ordering, "nd_permutation",
                        lambda M, reuse=False, min_size=None:
                        calls.append(reuse) or real(M, reuse, min_size))
    L = fp.landscapes.paper()
    prob = fp.Problem(L, fp.diffusion.sgd(L, 0.012), fp.disk_mesh(2.0, 0.05), order=2)
    values = [0.009, 0.010, 0.011, 0.012]
    with pytest.warns(fp.FPSolveWarning):           # coarse mesh: negative mass
        swept = prob.sweep(values)
    assert calls[:4] == [True] * 4 and not prob.reuse_ordering
    with pytest.warns(fp.FPSolveWarning):
        single = [fp.Problem(L, fp.diffusion.sgd(L, s), fp.disk_mesh(2.0, 0.05),
                             order=2).solve() for s in values]
    for a, b in zip(swept, single):
        assert a.escape_rate == pytest.approx(b.escape_rate, rel=1e-8)
        np.testing.assert_allclose(a.P, b.P, rtol=0, atol=1e-9 * b.P.max())


def test_orders_computed_elsewhere_are_the_orders_computed_here(monkeypatch):
    """pattern_orders in one process, remember in another (a study's renderer computes the
    flux's mesh order): nd_permutation then returns METIS's own order without calling it."""
    pytest.importorskip("pymetis")
    from fpsolve.fe.assembly import make_basis, mass_matrix

    M = mass_matrix(make_basis(fp.disk_mesh(2.0, 0.08), 3)).tocsc()
    assert M.shape[0] >= _ordering.MIN_SIZE
    own = _ordering.metis_order(M)
    orders = _ordering.pattern_orders(M)
    assert len(orders) == 1 and np.array_equal(next(iter(orders.values())), own)
    monkeypatch.setattr(_ordering, "_CACHE", type(_ordering._CACHE)())      # another process

    def no_metis(A):
        raise AssertionError("METIS called although the order was remembered")

    monkeypatch.setattr(_ordering, "metis_order", no_metis)
    _ordering.remember(orders)
    assert np.array_equal(_ordering.nd_permutation(M.copy()), own)
