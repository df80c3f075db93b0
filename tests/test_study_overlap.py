"""What a study overlaps with its solves: the estimate caches, cases solved ahead."""
import json
import sys

import pytest
from study_helpers import strip_times

import fpsolve as fp


def test_estimate_caches_are_tracked_per_order_and_boundary():
    """The estimate caches live on the mesh per element and boundary: a P2 problem's
    filled caches do not let a P3 or reflecting problem on the same mesh fork its
    estimates as if they were there (each child would rebuild them)."""
    from fpsolve.study.tasks import _caches_filled
    L = fp.landscapes.paper()
    D = fp.diffusion.sgd(L, 0.012)
    mesh = fp.disk_mesh(2.0, 0.5)
    p2, p3 = fp.Problem(L, D, mesh, order=2), fp.Problem(L, D, mesh, order=3)
    refl = fp.Problem(L, D, mesh, order=2, boundary="reflecting")
    assert not _caches_filled(p2)
    assert _caches_filled(p2, True)
    other = fp.diffusion.sgd(L, 0.009, cross_diffusion=False)
    assert _caches_filled(fp.Problem(L, other, mesh, order=2))   # another model, same caches
    assert not _caches_filled(p3) and not _caches_filled(refl)


linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork: Linux only")


def _run(path, out, background):
    from fpsolve.study import load_study, run_study
    return run_study(load_study(path), str(out), background=background)


@linux
def test_cases_solved_ahead_give_the_same_summary(four_study, tmp_path, monkeypatch):
    """While the flux operators are still being built after a group's first solve, the
    study solves the group's next case before the first flux (tasks._Ahead): the same
    solves in the same order, so summary.json is the same, warnings included and in
    their cases' order."""
    from fpsolve.fe import flux_operators
    from fpsolve.study import tasks
    path = four_study(h=0.3)
    plain = _run(path, tmp_path / "plain", False)
    ran = []
    original = tasks._Ahead.run
    monkeypatch.setattr(flux_operators, "prefetch_pending", lambda basis: True)
    monkeypatch.setattr(tasks._Ahead, "run",
                        lambda self: (ran.append(self.case["name"]), original(self)))
    res = _run(path, tmp_path / "ahead", True)
    assert ran == ["b", "d"]           # each group's second case, once
    assert json.dumps(strip_times(res.summary)) == json.dumps(strip_times(plain.summary))
    assert any(c["warnings"] for c in plain.summary["cases"])


@linux
def test_a_case_failing_ahead_fails_in_its_own_turn(four_study, tmp_path, monkeypatch):
    """An error of a case solved ahead is that case's error; the case whose turn it was
    and the other cases are written as usual."""
    from fpsolve.fe import flux_operators
    from fpsolve.fe.solver import Problem
    from fpsolve.study.runner import StudyRunError
    path = four_study(h=0.3, delta_s={"b": 0.0123})
    solve = Problem.solve

    def failing(self, strength=None):
        if strength == 0.0123:
            raise FloatingPointError("b diverged")
        return solve(self, strength)
    monkeypatch.setattr(flux_operators, "prefetch_pending", lambda basis: True)
    monkeypatch.setattr(Problem, "solve", failing)
    with pytest.raises(StudyRunError):
        _run(path, tmp_path / "out", True)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    cases = {c["name"]: c for c in summary["cases"]}
    assert summary["failed"] == ["b"] and "b diverged" in cases["b"]["error"]
    assert all(cases[n].get("x2") for n in "acd")


def test_only_the_panels_cases_are_kept_alive(four_study):
    """In-process results keep (Solution, Flux) only for the cases the panel shows: a
    long sweep would otherwise hold every solution and flux until the run ends."""
    from fpsolve.study import load_study
    from fpsolve.study.runner import _payload, plan_tasks
    from fpsolve.study.tasks import run_task
    study = load_study(four_study(h=0.4))
    outputs = {"vtk": False, "figures": False, "flux": True, "panel": ["a", "d"]}
    kept = {}
    for task in plan_tasks(study.cases, 1):
        for res in run_task(_payload(task, outputs), keep=True):
            kept[res["name"]] = "live" in res
    assert kept == {"a": True, "b": False, "c": False, "d": True}
