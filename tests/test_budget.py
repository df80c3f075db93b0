"""The resource guard (fpsolve.fe.budget): dof estimates, budgets, memory checks."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fpsolve as fp
from fpsolve.fe import budget
from fpsolve.fe.assembly import make_basis
from fpsolve.fe.budget import BudgetError


@pytest.mark.parametrize("radius, h, band, levels", [
    (2.0, 0.1, None, 1), (1.0, 0.05, None, 1), (2.0, 0.5, None, 1),
    (2.0, 0.1, 0.5, 1), (2.0, 0.1, 0.5, 2), (2.0, 0.2, 0.3, 3),
])
def test_dof_estimates_match_the_meshes(radius, h, band, levels):
    mesh = fp.disk_mesh(radius, h, band=band, band_levels=levels)
    for order in (1, 2, 3):
        exact = budget.mesh_dofs(mesh, order)
        if order > 1 or band is None:
            assert exact == make_basis(mesh, order).N
        est = budget.estimate_dofs(radius, h, order, band, levels)
        # uniform meshes within 6 %; the band estimate errs on the large side
        assert 0.97 * exact <= est <= (1.06 if band is None else 1.25) * exact


def test_typo_h_is_refused_before_meshing():
    with pytest.raises(BudgetError, match=r"disk_mesh\(radius=2, h=1e-05\).*max_dofs"):
        fp.disk_mesh(2.0, 1e-5)
    with pytest.raises(BudgetError, match="max_dofs = 1,000"):
        fp.disk_mesh(2.0, 0.05, max_dofs=1000)
    assert fp.disk_mesh(2.0, 0.5, max_dofs=100).nvertices <= 100


@pytest.mark.parametrize("bad", [10, 99, 2.5, "abc", True, -5])
def test_max_dofs_must_be_an_integer_of_at_least_100(bad):
    with pytest.raises(BudgetError, match="max_dofs: expected an integer >= 100"):
        budget.check_max_dofs(bad)
    assert budget.check_max_dofs(1e6) == 1_000_000 and budget.check_max_dofs(None) is None


def test_problem_and_solve_respect_max_dofs():
    L = fp.landscapes.quadratic(np.eye(2))
    D = fp.diffusion.isotropic(0.1)
    mesh = fp.disk_mesh(1.0, 0.2)
    n3 = budget.mesh_dofs(mesh, 3)
    with pytest.raises(BudgetError, match=rf"Problem\(order=3\).*{n3:,} P3 dofs exceed max_dofs"):
        fp.Problem(L, D, mesh, order=3, max_dofs=n3 - 1)
    prob = fp.Problem(L, D, mesh, order=3, max_dofs=n3)
    assert prob.dofs == n3 and prob.max_dofs == n3
    with pytest.raises(BudgetError):
        fp.solve(L, D, mesh, order=2, max_dofs=100)
    assert fp.solve(L, D, mesh, order=1, max_dofs=mesh.nvertices).diagnostics["dofs"] == \
        mesh.nvertices


def test_default_budget_follows_the_available_memory(monkeypatch):
    gib = 2 ** 30
    n = budget.default_max_dofs(2, available=gib)
    # the largest solve whose planned peak fits in MEMORY_FRACTION of the memory
    assert budget.peak_memory(n, 2) <= budget.MEMORY_FRACTION * gib < budget.peak_memory(n + 1, 2)
    assert budget.default_max_dofs(3, flux=True, available=gib) < budget.default_max_dofs(
        3, available=gib)
    assert budget.default_max_dofs(3, available=budget.BASE_BYTES) == 0
    monkeypatch.setattr(budget, "available_memory", lambda: 128 * 2 ** 20)   # 128 MiB left
    with pytest.raises(BudgetError, match=r"default for 0\.125 GiB"):
        budget.check(1e5, 2)
    # an explicit budget does not switch the memory check off
    with pytest.raises(BudgetError, match="only 0.125 GiB are available"):
        budget.check(1e5, 2, max_dofs=10 ** 7)
    assert budget.check(300, 2, max_dofs=10 ** 7) == 10 ** 7


def test_memory_model_adds_its_parts():
    n, s = 1e5, budget.SAFETY
    base = budget.peak_memory(n, 3)
    assert base == pytest.approx(s * (budget.BASE_BYTES + budget.BYTES_PER_DOF[3] * n))
    assert budget.peak_memory(n, 3, graded=True) - base == pytest.approx(
        s * budget.GRADED_BYTES_PER_DOF[3] * n)
    assert budget.peak_memory(n, 3, flux=True) - base == pytest.approx(
        s * budget.FLUX_BYTES_PER_DOF[3] * n)
    assert budget.peak_memory(n, 3, study=True) - base == pytest.approx(
        s * (budget.STUDY_BYTES + budget.STUDY_BYTES_PER_DOF * n))
    # a forked child's estimate needs less than the whole solve
    assert budget.estimate_memory(n, 3) < base
    assert budget.estimate_memory(n, 3, graded=True, flux=True) == pytest.approx(
        budget.estimate_memory(n, 3) + s * n * (budget.GRADED_BYTES_PER_DOF[3]
                                                + budget.FLUX_BYTES_PER_DOF[3]))
    assert budget.fits(0.8 * 2**30, 2**30) and not budget.fits(0.81 * 2**30, 2**30)
    with pytest.raises(ValueError, match="order"):
        budget.estimate_memory(n, 4)


def test_graded_meshes_plan_the_estimate_s_p_k_plus_1_duals(monkeypatch):
    # adaptive levels and banded disks solve the moment duals in P_{k+1}: one more
    # assembly and LU (banded P3: 1.7x the uniform solve's peak, docs/budget.md)
    gib = 2 ** 30
    assert budget.default_max_dofs(3, available=gib, graded=True) < budget.default_max_dofs(
        3, available=gib)
    monkeypatch.setattr(budget, "available_memory", lambda: gib)
    n = budget.default_max_dofs(3, available=gib, graded=True) + 1
    assert budget.check(n, 3) > n
    with pytest.raises(BudgetError, match="adaptive level 3"):
        budget.check(n, 3, what="adaptive level 3", graded=True)
    mesh = fp.disk_mesh(1.0, 0.2, band=0.2, band_levels=2)
    assert mesh.graded
    dofs = budget.mesh_dofs(mesh, 3)
    between = 0.5 * (budget.peak_memory(dofs, 3) + budget.peak_memory(dofs, 3, graded=True))
    monkeypatch.setattr(budget, "available_memory", lambda: int(between / budget.MEMORY_FRACTION))
    with pytest.raises(BudgetError, match="memory"):      # fits uniform, not graded
        fp.Problem(fp.landscapes.quadratic(np.eye(2)), fp.diffusion.isotropic(0.1), mesh,
                   order=3)


def test_adaptive_loop_refuses_a_level_beyond_the_memory(monkeypatch):
    """Level 0 fits; the refined level 1 (more dofs, graded) does not: the loop stops
    before assembling it and returns level 0 flagged, the reason named."""
    L, D = fp.landscapes.quadratic(np.eye(2)), fp.diffusion.isotropic(0.1)
    mesh = fp.disk_mesh(1.0, 0.3)
    n0 = budget.mesh_dofs(mesh, 2)
    avail = int(budget.peak_memory(n0, 2, graded=True) / budget.MEMORY_FRACTION) + 1
    monkeypatch.setattr(budget, "available_memory", lambda: avail)
    with pytest.warns(fp.FPSolveWarning, match=r"tol = 1e-08 not reached \(adaptive level 1: "):
        sol = fp.solve(L, D, mesh, order=2, tol=1e-8)
    d = sol.diagnostics
    assert d["untrusted"] and not d["adapt_converged"]
    assert [lv["dofs"] for lv in d["adapt"]] == [n0] and d["dofs"] == n0
    assert any("adaptive level 1: " in w and "P2 dofs" in w for w in d["warnings"])


def test_errors_are_on_the_facade():
    assert fp.BudgetError is BudgetError and issubclass(fp.ModelError, ValueError)
    with pytest.raises(fp.BudgetError):
        fp.disk_mesh(2.0, 1e-5)


def test_available_memory_is_plausible():
    avail = budget.available_memory()
    assert 0 < avail < 1 << 50


def test_peak_memory_is_monotone_in_flux_and_grading():
    assert budget.peak_memory(1e5, 3, flux=True) > budget.peak_memory(1e5, 3) > 0
    with pytest.raises(ValueError, match="order"):
        budget.check(1000, 4)


def test_parallel_workers_keep_the_largest_cases_within_memory():
    gib = 2 ** 30
    avail = 10 * gib                                      # 8 GiB usable (MEMORY_FRACTION)
    assert budget.parallel_workers([1 * gib] * 4, 2, avail) == 2
    assert budget.parallel_workers([5 * gib, 2 * gib, 2 * gib], 3, avail) == 2
    assert budget.parallel_workers([5 * gib, 4 * gib], 2, avail) == 1
    assert budget.parallel_workers([9 * gib], 4, avail) == 1   # never fewer than one


def test_adaptive_cases_run_one_at_a_time_under_the_default_budget(tmp_path, caplog):
    # each adaptive case may grow to the default max_dofs (most of the memory): two at
    # once could be killed by the OS, so the runner uses one worker and says why
    from fpsolve.study import load_study, run_study
    study = tmp_path / "two.toml"
    study.write_text(
        '[landscape]\nkind = "quadratic"\nA = [[1.0, 0.0], [0.0, 2.0]]\n'
        '[noise]\nkind = "isotropic"\ndelta = 0.2\n[mesh]\nradius = 1.5\nh = 0.5\n'
        '[solver]\norder = 2\ntol = 1e-2\n'
        '[output]\nvtk = false\nfigures = false\npanel = false\nflux = false\n'
        '[[case]]\nname = "a"\n[[case]]\nname = "b"\nnoise.delta = 0.3\n')
    def workers(out):
        with caplog.at_level("WARNING"):
            run_study(load_study(str(study)), str(tmp_path / out), workers=2)
        with open(tmp_path / out / "provenance.json") as fh:
            return json.load(fh)["execution"]["workers"]

    assert workers("out") == 1
    assert "running 1 case at a time instead of 2" in caplog.text
    study.write_text(study.read_text().replace("tol = 1e-2\n", "tol = 1e-2\nmax_dofs = 5000\n"))
    assert workers("out2") == 2


#: a fresh interpreter: warm up (imports, compiled kernels), then the peak resident memory
#: of the request above the resident size before it (VmHWM reset by /proc/self/clear_refs)
_MEASURE = r"""
import json, sys, warnings
import fpsolve as fp
from fpsolve.fe import budget
warnings.simplefilter("ignore")
kind, order, h, band = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
band = None if band == "None" else float(band)
if kind == "ou":         # radial OU at small noise: the μ weight's own LU
    L, D, R = fp.landscapes.quadratic([[1.0, 0.0], [0.0, 1.0]]), fp.diffusion.isotropic(0.01), 1.0
else:                    # "fig3" or "paper<Δ_S>" (Δ_S = 0.004: the weight's refinement too)
    L = fp.landscapes.paper(); R = 2.0
    D = fp.diffusion.sgd(L, 0.012 if kind == "fig3" else float(kind[5:]))
fp.flux(fp.solve(L, D, fp.disk_mesh(R, 0.5), order=order))
from fpsolve.fe import estimate
weights, weight = [], estimate._escape_rate_weight
estimate._escape_rate_weight = lambda *a, **k: weights.append(1) or weight(*a, **k)

def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key))

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status("VmRSS:")
mesh = fp.disk_mesh(R, h, band=band)
sol = fp.solve(L, D, mesh, order=order)
solve = status("VmHWM:") - base
fp.flux(sol)
print(json.dumps(dict(dofs=sol.diagnostics["dofs"], graded=mesh.graded, solve=solve,
                      flux=status("VmHWM:") - base, weight=len(weights))))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
@pytest.mark.parametrize("kind, order, h, band, weight", [
    ("fig3", 3, 0.1, None, False), ("fig3", 2, 0.07, 0.5, True),     # graded + μ weight
    pytest.param("fig3", 3, 0.1, 0.5, False, marks=pytest.mark.slow),
    pytest.param("ou", 3, 0.025, None, True, marks=pytest.mark.slow),
    pytest.param("fig3", 1, 0.05, None, False, marks=pytest.mark.slow),
    pytest.param("fig3", 2, 0.07, None, False, marks=pytest.mark.slow),
    pytest.param("paper0.004", 3, 0.04, None, True, marks=pytest.mark.slow),
])
def test_planned_peak_covers_the_measured_peak(kind, order, h, band, weight):
    """Solve (+ error estimate) and flux in a fresh process: the measured peak resident
    memory stays below the plan (a memory measurement, no timing).  ``weight``: the
    configuration takes the small-noise path (the μ weight's own factorisation)."""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fp.__file__)))
    out = subprocess.run([sys.executable, "-c", _MEASURE, kind, str(order), str(h), str(band)],
                         capture_output=True, text=True, env=env, check=True)
    m = json.loads(out.stdout.strip().splitlines()[-1])
    assert m["graded"] == (band is not None) and bool(m["weight"]) == weight
    assert m["solve"] > 0.25 * budget.peak_memory(m["dofs"], order, graded=m["graded"])
    assert m["solve"] <= budget.peak_memory(m["dofs"], order, graded=m["graded"])
    assert m["flux"] <= budget.peak_memory(m["dofs"], order, flux=True, graded=m["graded"])
