"""Performance of the time-dependent solver (docs/dynamics.md, "Performance").

1. fpsolve's TR-BDF2 against fplanck's ``propagate`` (finite-volume master equation,
   ``expm_multiply``) and FiPy's transient solve (finite volume, implicit Euler) on one
   Ornstein–Uhlenbeck problem, measured side by side in one run: the wall time each
   needs to reach a given accuracy of the mean and covariance at t = 1.
2. One time step and a full relaxation of the paper landscape at P3 with ~82k dofs.

    pip install fplanck fipy         # for this benchmark only (not fpsolve dependencies)
    python bench/dynamics.py [--quick]

The OU problem: L = ½θᵀAθ, A = [[1, 0.3], [0.3, 2]], D = diag(0.1, 0.05) (diagonal so that
fplanck, which has no cross-diffusion, solves the same equation; AD ≠ DA), from
N((0.5, −0.3), 0.02 I).  fplanck and FiPy work on the square [−2, 2]² with reflecting
walls, fpsolve on the disk of radius 2 (reflecting): the Gaussian's mass beyond either is
~1e-9, below every error shown.  Error = max of the relative errors of mean and
covariance against the exact Gaussian (fpsolve.theory.exact.ou_transient).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

import fpsolve as fp
from fpsolve.fe.dynamics import evolve_problem
from fpsolve.theory.exact import ou_transient

sys.path.insert(0, os.path.dirname(__file__))
from _report import replace_block  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "dynamics.md")
A = np.array([[1.0, 0.3], [0.3, 2.0]])
DD = np.diag([0.1, 0.05])
M0, S0, T_END = np.array([0.5, -0.3]), 0.02 * np.eye(2), 1.0
MEAN, COV = ou_transient(A, DD, M0, S0, T_END)


def _error(mean, cov) -> float:
    return max(np.abs(mean - MEAN).max() / np.abs(MEAN).max(),
               np.abs(cov - COV).max() / np.abs(COV).max())


def _grid_moments(x, y, p):
    p = p / p.sum()
    m = np.array([(x * p).sum(), (y * p).sum()])
    cx, cy = x - m[0], y - m[1]
    return m, np.array([[(cx * cx * p).sum(), (cx * cy * p).sum()],
                        [(cx * cy * p).sum(), (cy * cy * p).sum()]])


def _g0(x, y):
    return fp.gaussian(M0, S0)(x, y)


def run_fpsolve(h, tol, order=3):
    t0 = time.perf_counter()
    prob = fp.Problem(fp.landscapes.quadratic(A), fp.diffusion.constant(DD),
                      fp.disk_mesh(2.0, h), boundary="reflecting", order=order)
    ev = evolve_problem(prob, fp.gaussian(M0, S0), [T_END], tol=tol)
    mo = ev[0].moments()
    wall = time.perf_counter() - t0
    return {"tool": "fpsolve", "setting": f"P{order} h={h} tol={tol:g}", "unknowns": prob.dofs,
            "error": _error(mo["mean"], mo["cov"]), "wall_s": wall,
            "detail": f"{ev.stats['steps']} steps, {ev.stats['factorisations']} LU"}


def run_fplanck(h):
    import fplanck
    from scipy import constants

    if not hasattr(np, "product"):     # fplanck 0.2.2 calls np.product (removed in NumPy 2)
        np.product = np.prod

    t0 = time.perf_counter()
    sim = fplanck.fokker_planck(temperature=np.diag(DD) / constants.k, drag=1.0,
                                extent=[4.0, 4.0], resolution=h,
                                potential=lambda x, y: 0.5 * (A[0, 0] * x * x + 2 * A[0, 1] * x * y
                                                              + A[1, 1] * y * y),
                                boundary=fplanck.boundary.reflecting)
    p = sim.propagate(_g0, T_END)
    x, y = sim.grid
    m, c = _grid_moments(x, y, p)
    return {"tool": "fplanck", "setting": f"h={h}", "unknowns": int(p.size),
            "error": _error(m, c), "wall_s": time.perf_counter() - t0,
            "detail": "expm_multiply (exact in t)"}


def run_fipy(h, dt):
    import fipy

    t0 = time.perf_counter()
    n = int(round(4.0 / h))
    mesh = fipy.Grid2D(dx=h, dy=h, nx=n, ny=n) + [[-2.0], [-2.0]]
    x, y = mesh.cellCenters
    P = fipy.CellVariable(mesh=mesh, value=_g0(np.asarray(x), np.asarray(y)))
    fx, fy = mesh.faceCenters
    u = fipy.FaceVariable(mesh=mesh, rank=1)
    u.setValue((-(A[0, 0] * fx + A[0, 1] * fy), -(A[1, 0] * fx + A[1, 1] * fy)))
    eq = (fipy.TransientTerm() + fipy.ExponentialConvectionTerm(coeff=u)
          == fipy.DiffusionTerm(coeff=[[[DD[0, 0], DD[0, 1]], [DD[1, 0], DD[1, 1]]]]))
    steps = int(round(T_END / dt))
    for _ in range(steps):
        eq.solve(var=P, dt=dt)
    m, c = _grid_moments(np.asarray(x), np.asarray(y), np.asarray(P.value))
    return {"tool": "FiPy", "setting": f"h={h} dt={dt:g}", "unknowns": int(n * n),
            "error": _error(m, c), "wall_s": time.perf_counter() - t0,
            "detail": f"implicit Euler, {steps} steps"}


# (tool, run, setting): fpsolve at P2 and P3 with the tolerance matched to the mesh, so
# that the table can pick the cheapest configuration for each accuracy from one run
LADDER = [("fpsolve", run_fpsolve, (0.6, 1e-2, 2)), ("fpsolve", run_fpsolve, (0.55, 1e-2, 2)),
          ("fpsolve", run_fpsolve, (0.5, 1e-2, 2)),
          ("fpsolve", run_fpsolve, (0.8, 1e-2, 3)), ("fpsolve", run_fpsolve, (0.7, 3e-3, 3)),
          ("fpsolve", run_fpsolve, (0.3, 1e-3, 2)), ("fpsolve", run_fpsolve, (0.5, 1e-3, 3)),
          ("fpsolve", run_fpsolve, (0.4, 1e-4, 3)), ("fpsolve", run_fpsolve, (0.3, 3e-5, 3)),
          ("fpsolve", run_fpsolve, (0.2, 3e-6, 3)),
          ("fplanck", run_fplanck, (0.1,)), ("fplanck", run_fplanck, (0.08,)),
          ("fplanck", run_fplanck, (0.075,)), ("fplanck", run_fplanck, (0.07,)),
          ("fplanck", run_fplanck, (0.05,)),
          ("fplanck", run_fplanck, (0.035,)), ("fplanck", run_fplanck, (0.024,)),
          ("fplanck", run_fplanck, (0.0125,)),
          ("FiPy", run_fipy, (0.1, 0.01)), ("FiPy", run_fipy, (0.07, 0.01)),
          ("FiPy", run_fipy, (0.05, 0.005)), ("FiPy", run_fipy, (0.05, 0.001))]
QUICK = [0, 2, 4, 6, 10, 11, 13, 18]


def _timed(run, args, budget=3.0, repeats=10):
    """The run's result with the minimum wall time of up to ``repeats`` repetitions
    (repeated only while the total stays under ``budget`` s): the same rule for every
    tool, so that sub-second runs are not timed on one noisy sample."""
    best, total, n = None, 0.0, 0
    while n < repeats and (n == 0 or total + best["wall_s"] < budget):
        res = run(*args)
        total += res["wall_s"]
        n += 1
        if best is None or res["wall_s"] < best["wall_s"]:
            best = res
    best["repeats"] = n
    return best


def comparison(quick=False):
    """All runs of the ladder, interleaved in one process (the same machine load)."""
    runs = [LADDER[i] for i in QUICK] if quick else LADDER
    for run, args in ((run_fpsolve, (0.8, 1e-2, 3)), (run_fplanck, (0.2,)),
                      (run_fipy, (0.2, 0.1))):
        run(*args)                                 # warm-up: imports and compilation
    out = []
    for _tool, run, args in runs:
        res = _timed(run, args)
        res["load"] = os.getloadavg()[0]
        print(res, flush=True)
        out.append(res)
    return out


def _cheapest(rows, tool, target):
    ok = [r for r in rows if r["tool"] == tool and r["error"] <= target]
    return min(ok, key=lambda r: r["wall_s"]) if ok else None


def relaxation_82k():
    L = fp.landscapes.paper()
    t0 = time.perf_counter()
    prob = fp.Problem(L, fp.diffusion.sgd(L, 0.012), fp.disk_mesh(2.0, 0.04), "absorbing", 3)
    t_asm = time.perf_counter() - t0
    from fpsolve.fe.timestep import TRBDF2
    I = prob.interior_dofs
    op = prob.operator
    st = TRBDF2(op.A()[I][:, I], op.M[I][:, I])
    P = np.ones(len(I))
    t0 = time.perf_counter()
    st.step(P, 0.01)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    st.step(P, 0.01)
    second = time.perf_counter() - t0
    times = [0.0] + np.geomspace(0.6, 600.0, 12).tolist()
    t0 = time.perf_counter()
    ev = evolve_problem(prob, fp.gaussian([0, 0], np.diag([0.01, 0.001])), times, tol=1e-6)
    full = time.perf_counter() - t0
    return {"dofs": prob.dofs, "assembly_s": t_asm, "first_step_s": first,
            "step_s": second, "relaxation_s": full, "steps": ev.stats["steps"],
            "rejected": ev.stats["rejected"], "lu": ev.stats["factorisations"],
            "lu_s": ev.stats["factorisation_s"], "survival": float(ev.mass[-1])}


def render(rows, rel) -> str:
    lines = ["| tool | setting | unknowns | error at t = 1 | wall s (min of n) | load | |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['tool']} | {r['setting']} | {r['unknowns']} | {r['error']:.1e} | "
                     f"{r['wall_s']:.3f} ({r['repeats']}) | {r['load']:.1f} | {r['detail']} |")
    lines += ["", "Cheapest run of each tool that reaches the accuracy:", "",
              "| accuracy | fpsolve | fplanck | FiPy | speed-up vs fplanck | vs FiPy |",
              "|---|---|---|---|---|---|"]
    for target in (1e-2, 1e-3, 1e-4):
        c = {t: _cheapest(rows, t, target) for t in ("fpsolve", "fplanck", "FiPy")}
        cell = {t: (f"{v['wall_s']:.3f} s ({v['setting']})" if v else "not reached")
                for t, v in c.items()}
        sp = {t: (f"{c[t]['wall_s'] / c['fpsolve']['wall_s']:.0f}×" if c[t] and c["fpsolve"]
                  else "—") for t in ("fplanck", "FiPy")}
        lines.append(f"| ≤ {target:g} | {cell['fpsolve']} | {cell['fplanck']} | {cell['FiPy']} | "
                     f"{sp['fplanck']} | {sp['FiPy']} |")
    loads = [r["load"] for r in rows]
    lines += ["", f"1-min load average during the comparison {min(loads):.1f}–{max(loads):.1f}."]
    if rel is not None:
        r = rel
        lines += ["", f"Paper landscape, Δ_S = 0.012, P3 h = 0.04 ({r['dofs']} dofs), absorbing: "
                  f"assembly {r['assembly_s']:.1f} s; one TR-BDF2 step {r['first_step_s']:.2f} s "
                  f"with its factorisation, {r['step_s']:.3f} s re-using it; the relaxation "
                  f"from N(0, diag(0.01, 0.001)) to t = 600 (13 log-spaced outputs, tol 1e-6): "
                  f"{r['relaxation_s']:.1f} s, {r['steps']} steps ({r['rejected']} rejected), "
                  f"{r['lu']} factorisations ({r['lu_s']:.1f} s), "
                  f"S(600) = {r['survival']:.6f}."]
    lines += ["", f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}; "
              f"{os.cpu_count()} cores"]
    return "\n".join(lines)


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    rows = comparison(quick)
    rel = None if quick else relaxation_82k()
    text = render(rows, rel)
    print(text)
    if not quick and not replace_block(DOC, "performance", text):
        print("docs/dynamics.md has no performance block; printed only")
