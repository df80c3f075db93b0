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


def test_renderer_order_is_the_flux_operators(config):
    """The renderer orders the FE sparsity pattern: the key and the permutation are those
    of the flux operators' mass matrix, ordered here."""
    from fpsolve.fe import ordering
    from fpsolve.fe.assembly import mass_matrix
    from fpsolve.study.render import _basis, _orders
    M = mass_matrix(_basis(config)[1]).tocsc()
    assert M.shape[0] >= ordering.MIN_SIZE      # big enough to get a METIS order
    orders = _orders(config)
    key = ordering._pattern_key(M)
    assert list(orders) == [key]
    assert np.array_equal(orders[key], ordering.metis_order(M))


@linux
def test_started_renderer_delivers_the_flux_order(config, monkeypatch):
    """A forked renderer computes the flux operators' order while this process
    assembles; the prefetch thread caches it (tasks._orders_from) before factorising."""
    from fpsolve.fe import ordering
    from fpsolve.fe.assembly import mass_matrix
    from fpsolve.study import render, tasks
    from fpsolve.study.render import Renderer, _basis
    monkeypatch.setattr(render, "_context", lambda: render.multiprocessing.get_context("fork"))
    M = mass_matrix(_basis(config)[1]).tocsc()
    key = ordering._pattern_key(M)
    with ordering._LOCK:
        ordering._CACHE.pop(key, None)
    r = Renderer(min_dofs=0)
    try:
        r.start(config)
        tasks._orders_from(r)()
        with ordering._LOCK:
            cached = ordering._CACHE[key]
        assert np.array_equal(cached, ordering.metis_order(M))
    finally:
        r.close()
