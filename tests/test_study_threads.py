"""A study solves with one BLAS thread (fpsolve/_blas.py) and gives the caller's
limits back; the limit is re-entrant and set from the main thread only."""
import threading

import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

from fpsolve.study import load_study, run_study, tasks  # noqa: E402
from fpsolve._blas import single_blas_thread  # noqa: E402
from study_helpers import FAST, four_cases, write  # noqa: E402


def _blas_threads():
    info = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    if not info:
        pytest.skip("numpy has no BLAS that threadpoolctl can see")
    return {p["num_threads"] for p in info}


def test_single_blas_thread_is_reentrant_and_restores_the_callers_limit():
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        assert _blas_threads() == {2}
        with single_blas_thread():
            assert _blas_threads() == {1}
            with single_blas_thread():
                assert _blas_threads() == {1}
            assert _blas_threads() == {1}          # the outer block still runs
        assert _blas_threads() == {2}


def test_a_block_in_another_thread_leaves_the_limits_alone():
    seen = []

    def other():
        with single_blas_thread():
            seen.append(_blas_threads())

    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert seen == [{2}] and _blas_threads() == {2}


def test_a_study_solves_with_one_blas_thread(tmp_path, monkeypatch):
    seen = []
    real = tasks._solve_case

    def spy(*args, **kwargs):
        seen.append(_blas_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(tasks, "_solve_case", spy)
    study = load_study(write(tmp_path, four_cases(h=0.3, output=FAST)))
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        run_study(study, str(tmp_path / "out"), background=False)
        assert _blas_threads() == {2}
    assert seen and all(s == {1} for s in seen)


def test_blas_threads_limits_inside_the_block_and_none_is_a_no_op():
    from fpsolve._blas import blas_threads
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        with blas_threads(1):
            assert _blas_threads() == {1}
        with blas_threads(None):
            assert _blas_threads() == {2}
        assert _blas_threads() == {2}
