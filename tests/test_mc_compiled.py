"""Compiled user models in the Monte Carlo kernel: expression landscapes and noise.

Expression landscapes (∇L, H) and expression tensors are printed by sympy into a
specialised numba kernel.  Checked here: the OU expression landscape against the exact
(discrete-time Lyapunov) covariance, compiled vs numpy paths, the code generator's
safety checks and caches, the fallback for Python callables, reproducibility across
workers."""
import logging

import numpy as np
import pytest
import scipy.linalg as sla

pytest.importorskip("numba")

import fpsolve as fp
from fpsolve.stochastic import montecarlo as mcm
from fpsolve.stochastic import _mc_codegen as cg
from fpsolve.stochastic import _mc_models as models

A = np.array([[1.0, 0.3], [0.3, 2.0]])
OU = fp.landscapes.expression("0.5*(a*x**2 + 2*b*x*y + c*y**2)", a=1.0, b=0.3, c=2.0)


def em_covariance(A, D, dt):
    """Stationary covariance of θ' = (I − dt A) θ + √(2 dt) B z, B Bᵀ = D (exact for EM)."""
    M = np.eye(2) - dt * A
    return sla.solve_discrete_lyapunov(M, 2 * dt * np.asarray(D))


def test_ou_expression_landscape_matches_lyapunov():
    D = np.array([[0.2, 0.05], [0.05, 0.1]])
    dt = 0.02
    mc = mcm.langevin(OU, D, dt=dt, n_walkers=4096, n_steps=3000, n_burn=600, radius=None,
                      seed=11)
    assert mc.backend == "numba"
    m = mc.moments()
    exact = em_covariance(A, D, dt)
    z = (m["cov"] - exact) / m["cov_se"]
    assert np.all(np.abs(z) < 4), z
    # the continuous-time Lyapunov solution A Σ + Σ A = 2D differs by O(dt)
    cont = sla.solve_continuous_lyapunov(-A, -2 * D)
    assert np.allclose(exact, cont, rtol=0.05)
    assert np.all(np.abs(m["mean"]) < 4 * m["mean_se"])


def test_compiled_ou_expression_equals_the_builtin_quadratic_in_law():
    kw = dict(dt=0.02, n_walkers=1024, n_steps=500, radius=None, seed=3)
    a = mcm.langevin(OU, 0.1, **kw)
    b = mcm.langevin(fp.landscapes.quadratic(A), 0.1, **kw)
    assert (a.backend, b.backend) == ("numba", "numba")
    # same normals, same step up to rounding of the printed expressions
    assert np.max(np.abs(a.positions - b.positions)) < 1e-9


@pytest.mark.parametrize("simulator", ["langevin", "sgd"])
def test_compiled_and_numpy_expression_paths_agree(simulator):
    L = fp.landscapes.expression("0.5*(x**2 + 2*y**2) + 0.1*x**4 + 0.2*sin(x)*y")
    D = fp.diffusion.expression("0.1 + 0.05*x**2", "0.2 + 0.02*sin(y)", "0.01*x")
    kw = dict(n_walkers=1024, n_steps=600, seed=5)
    run = ((lambda b: mcm.langevin(L, D, dt=0.01, backend=b, **kw)) if simulator == "langevin"
           else (lambda b: mcm.sgd(L, 0.02, 1.0, backend=b, **kw)))
    c, n = run("numba"), run("numpy")
    assert (c.backend, n.backend) == ("numba", "numpy")
    mc_, mn = c.moments(), n.moments()
    z = (mc_["cov"] - mn["cov"]) / np.hypot(mc_["cov_se"], mn["cov_se"])
    assert np.all(np.abs(z) < 4), z
    # same normals: the walks agree up to rounding (different but equivalent formulas)
    assert np.nanmax(np.abs(c.positions - n.positions)) < 1e-8
    assert np.array_equal(c.status, n.status)


@pytest.mark.parametrize("D12, D22, root", [
    ("0", "0.2 + 0.02*sin(y)", "math.sqrt(max(d22, 0.0))"),     # diagonal: two roots
    ("0", "0.1 + 0.05*x**2", "rq = math.sqrt(max(d11, 0.0))"),  # isotropic: one root
    ("0.01*x", "0.2 + 0.02*sin(y)", "rt = math.sqrt")])         # full: closed-form 2x2 root
def test_diagonal_expression_noise_takes_the_direct_roots(D12, D22, root):
    L = fp.landscapes.expression("0.5*(x**2 + 2*y**2) + 0.1*x**4")
    D = fp.diffusion.expression("0.1 + 0.05*x**2", D22, D12)
    fast, _, why = models.langevin_model(L, D, None)
    assert why is None and any(root in ln for ln in fast.step)
    assert ("rt = math.sqrt" in "\n".join(fast.step)) == (D12 != "0")
    kw = dict(n_walkers=512, n_steps=400, seed=6, dt=0.01)
    c, n = mcm.langevin(L, D, **kw), mcm.langevin(L, D, backend="numpy", **kw)
    assert (c.backend, n.backend) == ("numba", "numpy")
    # same normals, B = √D by another formula: equal up to rounding
    assert np.nanmax(np.abs(c.positions - n.positions)) < 1e-9
    assert np.array_equal(c.status, n.status)


def test_compiled_expression_is_bit_identical_across_workers():
    kw = dict(n_walkers=700, n_steps=300, seed=2, block_size=64)
    D = fp.diffusion.expression("0.1 + 0.05*x**2", "0.2")
    a = mcm.langevin(OU, D, dt=0.01, workers=1, **kw)
    b = mcm.langevin(OU, D, dt=0.01, workers=2, blocks_per_task=3, **kw)
    assert a.backend == b.backend == "numba"
    assert np.array_equal(a.positions, b.positions, equal_nan=True)
    assert np.array_equal(a.density[0], b.density[0])
    assert np.array_equal(a.moments()["cov"], b.moments()["cov"])


def test_generated_code_holds_no_user_text_and_is_shared_across_numbers():
    L1 = fp.landscapes.expression("0.5*(k*x**2 + y**2) + exp(-x**2)", k=1.5)
    L2 = fp.landscapes.expression("0.5*(k*x**2 + y**2) + exp(-x**2)", k=2.5)
    f1, why1 = models.sgd_model(L1, True)
    f2, _ = models.sgd_model(L2, True)
    assert why1 is None
    assert f1.source == f2.source                 # numbers live in lp: one compilation
    assert not np.array_equal(f1.lp, f2.lp)
    assert "k*x" not in f1.source and "1.5" not in f1.source and "2.5" not in f1.source
    assert "math.exp" in f1.source


@pytest.mark.parametrize("code", ["__import__('os').system('true')", "open('f')",
                                  "x.__class__", "(lambda: 1)()", "os.path"])
def test_code_check_rejects_anything_but_arithmetic(code):
    with pytest.raises(cg.CodegenError):
        cg._check(f"t = {code}")


@pytest.mark.parametrize("seed", [0, 12345])
def test_inlined_pcg64_ziggurat_reproduces_numpy_bit_for_bit(seed):
    from fpsolve.stochastic._mc_blocks import pcg_state, set_pcg_state
    f, _ = models.sgd_model(fp.landscapes.paper(), True)
    fill = cg.module(f.source).fill_normal
    ref = np.random.Generator(np.random.PCG64(seed))
    g = np.random.Generator(np.random.PCG64(seed))
    st = pcg_state(g)
    out = np.empty(400_000)
    fill(st, out)
    expected = ref.standard_normal(out.size)
    assert np.sum(np.abs(expected) > 3.6541528853610088) > 20     # the tail branch ran
    assert np.array_equal(out, expected)
    set_pcg_state(g, st)                  # the generator continues where the kernel stopped
    assert np.array_equal(g.random(7), ref.random(7))
    with pytest.raises(TypeError, match="PCG64"):
        pcg_state(np.random.Generator(np.random.MT19937(1)))


def test_kernel_cache_writes_one_module_per_source(tmp_path, monkeypatch):
    monkeypatch.setenv("FPSOLVE_CACHE_DIR", str(tmp_path))
    f, _, _ = models.langevin_model(OU, fp.diffusion.isotropic(0.1), None)
    src = f.source.replace("# counters layout", "# counters layout (test copy)")
    k1 = cg.kernel(src)
    assert cg.kernel(src) is k1                              # memory cache
    files = list((tmp_path / "mc-kernels").glob("mc_*.py"))
    assert len(files) == 1 and files[0].read_text() == src   # disk cache


def test_python_callables_keep_the_numpy_path_with_a_log_line(caplog):
    L = fp.landscapes.quadratic(np.eye(2))
    D = fp.diffusion.custom(lambda x, y: np.broadcast_to(
        (0.1 * np.eye(2)).reshape(2, 2, *([1] * np.ndim(x))), (2, 2, *np.shape(x))), name="c")
    with caplog.at_level(logging.INFO, logger="fpsolve.stochastic.montecarlo"):
        mc = mcm.langevin(L, D, dt=0.01, n_walkers=64, n_steps=20, seed=1)
    assert mc.backend == "numpy"
    assert any("numpy path" in r.message and "Custom" in r.message for r in caplog.records)
    with pytest.raises(ValueError, match="cannot compile this model: .*Custom"):
        mcm.langevin(L, D, dt=0.01, n_walkers=64, n_steps=20, seed=1, backend="numba")


def test_abs_landscape_compiles_for_langevin():
    # ∇|x| = sign(x): printed as a conditional expression
    L = fp.landscapes.expression("abs(x) + y**2")
    kw = dict(dt=0.01, n_walkers=256, n_steps=200, seed=1)
    c, n = mcm.langevin(L, 0.1, **kw), mcm.langevin(L, 0.1, backend="numpy", **kw)
    assert c.backend == "numba"
    assert np.nanmax(np.abs(c.positions - n.positions)) < 1e-9
