"""How a study's renderer process starts, and the orders it computes for this process."""
import sys
import textwrap
import threading

import numpy as np
import pytest

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork: Linux only")

STUDY = """
[study]
name = "orders"
[noise]
delta_s = 0.012
[mesh]
radius = 2.0
h = 0.07
[solver]
order = 3
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from fpsolve.study import load_study
    path = tmp_path_factory.mktemp("orders") / "orders.toml"
    path.write_text(textwrap.dedent(STUDY))
    return load_study(str(path)).cases[0].config


@linux
def test_renderer_forks_only_without_other_threads(monkeypatch):
    """Forked, the renderer starts with the modules imported; with a thread of this
    process alive (it could hold a lock or half-built caches at the fork) it is spawned."""
    from fpsolve.study import render
    from fpsolve.study.render import _context
    with monkeypatch.context() as m:     # earlier tests may have left daemon threads
        m.setattr(render.threading, "active_count", lambda: 1)
        assert _context().get_start_method() == "fork"
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert _context().get_start_method() == "spawn"
    finally:
        stop.set()
        t.join()


def _solve_pattern(config):
    from fpsolve.study.tasks import _setup
    prob, _ = _setup(config)
    A = prob.operator.A(prob.diffusion.strength)
    return prob._interior_blocks().stiffness(A)[0]


def test_renderer_orders_are_the_solves_and_the_fluxs(config):
    """The interior-block order is keyed by the absorbing solve's own pattern (the
    operator's: same stencil as the mass matrix) and is the permutation METIS gives it
    here; the whole-mass order is the flux operators'."""
    from fpsolve.fe import ordering
    from fpsolve.fe.assembly import mass_matrix
    from fpsolve.study.render import _basis, _orders
    AII = _solve_pattern(config)
    assert AII.shape[0] >= ordering.MIN_SIZE      # big enough to get a METIS order
    inner = _orders(config, interior=True)
    assert list(inner) == [ordering._pattern_key(AII)]
    assert np.array_equal(inner[ordering._pattern_key(AII)], ordering.metis_order(AII))
    M = mass_matrix(_basis(config)[1]).tocsc()
    assert list(_orders(config)) == [ordering._pattern_key(M)]


@linux
def test_started_renderer_delivers_the_solve_order(config, monkeypatch):
    """A forked renderer computes the first solve's order while this process
    assembles; a study caches it (tasks._take_solve_orders) before solving."""
    from fpsolve.fe import ordering
    from fpsolve.study import tasks
    from fpsolve.study import render
    from fpsolve.study.render import Renderer
    monkeypatch.setattr(render, "_context", lambda: render.multiprocessing.get_context("fork"))
    AII = _solve_pattern(config)
    key = ordering._pattern_key(AII)
    with ordering._LOCK:
        ordering._CACHE.pop(key, None)
    r = Renderer(min_dofs=0)
    try:
        r.start(config)
        fut = r.solve_orders
        monkeypatch.setattr(tasks, "SOLVE_ORDER_WAIT", 600.0)
        tasks._take_solve_orders(r)
        assert fut.done() and r.solve_orders is None
        with ordering._LOCK:
            cached = ordering._CACHE[key]
        assert np.array_equal(cached, ordering.metis_order(AII))
        assert r.orders.result(timeout=600)          # the flux operators' order too
    finally:
        r.close()


def test_a_spawned_renderer_is_not_waited_for():
    """A spawned renderer is still importing when the first solve starts: the solve
    computes its own order instead of waiting; a forked one is waited for."""
    from concurrent.futures import Future
    from types import SimpleNamespace

    from fpsolve.study import tasks

    class Watched(Future):
        waited = False

        def result(self, timeout=None):
            Watched.waited = True
            return {}

    spawned = SimpleNamespace(solve_orders=Watched(), forked=False)
    tasks._take_solve_orders(spawned)
    assert not Watched.waited and spawned.solve_orders is None
    forked = SimpleNamespace(solve_orders=Watched(), forked=True)
    tasks._take_solve_orders(forked)
    assert Watched.waited
