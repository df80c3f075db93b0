"""fpsolve.study.forked: work done in a forked child, and a study's error estimates there."""
import json
import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest

from fpsolve.fe.solver import FPSolveWarning
from fpsolve.study import forked
from fpsolve.study.forked import Forked
from study_helpers import PANEL_ROWS, strip_times

linux = pytest.mark.skipif(not forked.available(), reason="no fork (not Linux)")


@linux
def test_the_value_comes_from_the_child_and_uses_the_parents_memory():
    big = np.arange(1_000_000, dtype=float)      # seen copy-on-write, not pickled
    parent = os.getpid()
    job = Forked(lambda: (os.getpid(), float(big.sum()), big[::100_000].copy()))
    child = job.pid
    assert child is not None and child != parent
    (pid, total, sample), seconds = job.result()
    assert pid == child
    assert total == float(big.sum()) and np.array_equal(sample, big[::100_000])
    assert seconds >= 0 and job.cpu_s > 0 and job.pid is None


@linux
def test_warnings_of_the_child_are_issued_again_in_order():
    def fn():
        warnings.warn("first", FPSolveWarning)
        warnings.warn("second", RuntimeWarning)
        return 1

    job = Forked(fn)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        assert job.result()[0] == 1
    assert [(w.category, str(w.message)) for w in rec] == [(FPSolveWarning, "first"),
                                                          (RuntimeWarning, "second")]


def test_an_exception_is_raised_by_result_as_in_process():
    calls = []

    def fn():
        calls.append(os.getpid())
        raise ValueError("bad input x")

    job = Forked(fn)
    with pytest.raises(ValueError, match="bad input x"):
        job.result()
    assert calls == [os.getpid()]       # raised here (the child's attempt is not seen)


@linux
def test_a_killed_child_is_replaced_by_an_in_process_call():
    import time

    def fn():
        if os.getpid() != parent:
            time.sleep(60)              # the child: killed below
        return "here"

    parent = os.getpid()
    job = Forked(fn)
    os.kill(job.pid, signal.SIGKILL)
    assert job.result()[0] == "here" and job.cpu_s == 0.0


@linux
def test_an_import_in_the_child_makes_the_parent_do_the_work(tmp_path, monkeypatch):
    """Modules are not imported in a child (a thread of the parent may hold their
    import lock): the child fails, and the function runs here."""
    import sys

    (tmp_path / "fpsolve_forked_probe.py").write_text("VALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pids = []

    def fn():
        pids.append(os.getpid())
        import fpsolve_forked_probe
        return fpsolve_forked_probe.VALUE

    job = Forked(fn)
    assert job.result()[0] == 7 and job.cpu_s == 0.0
    assert pids == [os.getpid()] and "fpsolve_forked_probe" in sys.modules
    sys.modules.pop("fpsolve_forked_probe")


@linux
def test_discard_ends_the_child_without_waiting_for_its_result():
    job = Forked(lambda: np.zeros(10_000_000))     # 80 MB: more than a pipe holds
    job.discard()
    assert job.pid is None
    job.discard()                                  # twice is harmless


@linux
def test_a_failing_child_is_reported_and_its_work_done_here(caplog):
    parent = os.getpid()

    def fn():
        if os.getpid() != parent:
            raise ValueError("only in the child")
        return "here"

    job = Forked(fn)
    with caplog.at_level("WARNING", logger="fpsolve.study.forked"):
        assert job.result()[0] == "here"
    assert job.failure == "ValueError: only in the child" and job.exitcode == 1
    assert "only in the child" in caplog.text


@linux
def test_an_import_in_the_child_is_not_an_import_error(tmp_path, monkeypatch):
    """Code falling back on a missing optional module must not run a different algorithm
    in the child: the import fails with ImportInChild, which no `except ImportError` takes."""
    (tmp_path / "fpsolve_forked_probe2.py").write_text("VALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def fn():
        try:
            import fpsolve_forked_probe2   # noqa: F401
        except ImportError:
            return "fallback"
        return "imported"

    job = Forked(fn)
    assert job.result()[0] == "imported"
    assert job.failure.startswith("ImportInChild")
    import sys
    sys.modules.pop("fpsolve_forked_probe2")


@linux
def test_without_proc_a_deadline_ends_a_stuck_child(monkeypatch):
    monkeypatch.setattr(forked, "_cpu_ticks", lambda pid: None)
    monkeypatch.setattr(forked, "DEADLINE_S", 0.5)
    parent = os.getpid()
    job = Forked(lambda: time.sleep(60) if os.getpid() != parent else "here")
    assert job.result()[0] == "here" and job.exitcode == -signal.SIGKILL


@linux
def test_discard_kills_a_child_that_is_still_working():
    job = Forked(lambda: time.sleep(60))
    job.discard()
    assert job.exitcode == -signal.SIGKILL           # ended, not waited for


@linux
def test_a_child_blocked_on_a_lock_held_at_the_fork_is_replaced(monkeypatch):
    """Another thread holds a lock when the child is forked: in the child nobody will ever
    release it.  The child, making no progress, is killed and the parent does the work."""
    monkeypatch.setattr(forked, "STALL_S", 0.5)
    lock, held, release = threading.Lock(), threading.Event(), threading.Event()

    def holder():
        with lock:
            held.set()
            release.wait(30)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(30)
    parent = os.getpid()
    try:
        job = Forked(lambda: lock.acquire() if os.getpid() != parent else "parent")
        value, _ = job.result()
    finally:
        release.set()
        t.join()
    assert value == "parent" and job.exitcode == -signal.SIGKILL


def test_without_fork_the_function_runs_here(monkeypatch):
    monkeypatch.setattr(forked, "available", lambda: False)
    job = Forked(lambda: os.getpid())
    assert job.pid is None and job.result()[0] == os.getpid()


@linux
def test_a_child_that_would_not_fit_in_memory_is_not_forked(monkeypatch, caplog):
    from fpsolve.fe import budget
    parent = os.getpid()
    monkeypatch.setattr(budget, "available_memory", lambda: 1 << 30)
    fits = Forked(lambda: os.getpid(), need=0.5 * (1 << 30))
    child = fits.pid
    assert child is not None and fits.result()[0] == child
    with caplog.at_level("DEBUG", logger="fpsolve.study.forked"):
        job = Forked(lambda: os.getpid(), need=0.9 * (1 << 30))     # > 80 % of 1 GiB
    assert job.pid is None
    assert "not forked: its child needs an estimated 0.9 GiB, 1 GiB are available" in caplog.text
    value, seconds = job.result()
    assert value == parent and job.failure is None and job.cpu_s == 0.0
    assert "failed" not in caplog.text          # not a failure: no warning


# -- a study: the error estimates of all but the first case of a mesh in forked children ----

def _counting(started: list, delivered: list):
    """A Forked that records the pids of the children it starts and whether each result
    came from its child (cpu_s > 0) or was computed here."""
    class Counting(Forked):
        def __init__(self, fn, fork=True, need=None):
            super().__init__(fn, fork, need)
            if fork:
                started.append(self.pid)

        def result(self):
            out = super().result()
            delivered.append(self.cpu_s > 0)      # 0: the child failed, done here
            return out
    return Counting


@linux
def test_study_estimates_in_children_give_the_same_summary(tmp_path, monkeypatch, four_study):
    """With a background renderer every case's estimate is computed in a forked child
    (the caches filled by a thread during the first solve of each group):
    summary.json is the same as without the renderer, warnings included and in the
    same order."""
    from fpsolve.study import build, load_study, run_study, tasks

    path = four_study(h=0.3, output=PANEL_ROWS)
    plain = run_study(load_study(path), str(tmp_path / "plain"), background=False)
    started, delivered = [], []
    monkeypatch.setattr(tasks, "Forked", _counting(started, delivered))
    monkeypatch.setattr(build, "_MESHES", {})     # a mesh no estimate has run on yet
    res = run_study(load_study(path), str(tmp_path / "forked"), background=True)
    assert len(started) == 4 and all(p is not None for p in started)
    assert delivered == [True] * 4
    assert strip_times(res.summary) == strip_times(plain.summary)
    # the same keys in the same order (summary.json is read by people and diffs)
    assert json.dumps(strip_times(res.summary)) == json.dumps(strip_times(plain.summary))
    assert any(c["warnings"] for c in plain.summary["cases"])
    for c in res.summary["cases"]:
        assert c["error_estimate"] and c["diagnostics"]["estimate_weights"] == "recovered"


@linux
def test_study_estimates_that_would_not_fit_are_computed_here(tmp_path, monkeypatch,
                                                            four_study):
    """The memory check before each fork fails: no child, the same summary."""
    from fpsolve.fe import budget
    from fpsolve.study import build, load_study, run_study, tasks

    path = four_study(h=0.3, output=PANEL_ROWS)
    plain = run_study(load_study(path), str(tmp_path / "plain"), background=False)
    started, delivered, needs = [], [], []
    monkeypatch.setattr(tasks, "Forked", _counting(started, delivered))
    monkeypatch.setattr(build, "_MESHES", {})
    monkeypatch.setattr(budget, "fits", lambda need, available=None: needs.append(need) or False)
    res = run_study(load_study(path), str(tmp_path / "inplace"), background=True)
    assert started and all(p is None for p in started) and delivered == [False] * len(started)
    # each need is the child's estimate plus the flux computed beside it
    assert needs and all(n > budget.estimate_memory(100, 3) for n in needs)
    assert strip_times(res.summary) == strip_times(plain.summary)


@linux
def test_without_prepared_caches_the_first_estimate_of_a_mesh_runs_here(tmp_path, monkeypatch,
                                                                        four_study):
    """If the cache-filling thread fails, the first case estimates in process (and
    fills the caches), the others in children; the numbers are the same."""
    from fpsolve.fe import estimate
    from fpsolve.study import build, load_study, run_study, tasks

    path = four_study(h=0.3, output=PANEL_ROWS)
    plain = run_study(load_study(path), str(tmp_path / "plain"), background=False)
    started = []

    def broken(problem):
        raise MemoryError("no room for the caches")

    monkeypatch.setattr(tasks, "Forked", _counting(started, []))
    monkeypatch.setattr(estimate, "prepare", broken)
    monkeypatch.setattr(build, "_MESHES", {})
    res = run_study(load_study(path), str(tmp_path / "forked"), background=True)
    assert len(started) == 3
    assert json.dumps(strip_times(res.summary)) == json.dumps(strip_times(plain.summary))


def test_prepared_caches_give_the_same_estimates():
    """estimate.prepare fills what the first estimate would: the numbers are the same."""
    import fpsolve as fp
    from fpsolve.fe import estimate

    L = fp.landscapes.paper()
    out = []
    for prepared in (False, True):
        prob = fp.Problem(L, fp.diffusion.sgd(L, 0.012), fp.disk_mesh(2.0, 0.3), order=2)
        if prepared:
            estimate.prepare(prob)
            assert ("enriched", 2) in prob.mesh._cache
        sol = prob.solve()
        out.append((sol.error_estimate, sol.diagnostics["error_correction"]))
    assert out[0] == out[1]


def test_wait_prefetch_returns_when_the_operators_are_built():
    """A study forks only after the flux operators' background build has finished."""
    import fpsolve as fp
    from fpsolve.fe import flux_operators

    mesh = fp.disk_mesh(2.0, 0.3)
    L = fp.landscapes.paper()
    basis = fp.Problem(L, fp.diffusion.sgd(L, 0.012), mesh, order=2).basis
    flux_operators.wait_prefetch(basis)                 # nothing started: returns
    assert flux_operators.prefetch_operators(basis)
    flux_operators.wait_prefetch(basis)
    fut = basis.mesh.__dict__["_fpsolve_flux_ops"][flux_operators._operator_key(basis)]
    assert fut.done() and fut.exception() is None
