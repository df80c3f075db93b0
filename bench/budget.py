"""Calibration of the resource guard (fpsolve.fe.budget): measured peak memory per dof.

Problem: the Fig. 3 problem (paper landscape, SGD noise Δ_S = 0.012, disk of radius 2,
absorbing), P1–P3 at several h.  Each level runs in a fresh subprocess that first
solves a tiny problem (so every module is loaded), then records the peak resident
set size (``ru_maxrss``) above that baseline after meshing, after ``Problem`` (the
assembly), after ``solve`` (sparse LU: MMD for P1/P2, METIS for P3 from 20k dofs) and
after ``fp.flux`` (the study's flux post-processing).  Next to it: the dofs that
``budget.estimate_dofs`` predicts from (radius, h) alone, and the peak that
``budget.peak_memory`` plans for (measured constants × the safety factor).

Writes ``bench/results/budget.json`` and ``docs/budget.md``.

Usage::

    python bench/budget.py             # all levels, ~15 min on a loaded 2-core machine
    python bench/budget.py --render    # re-render docs/budget.md from the JSON
    python bench/budget.py --level 3 0.05   # one level, JSON on stdout (internal)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from _report import machine_meta, write_report  # noqa: E402  (bench/_report.py)

DOC = os.path.join(ROOT, "docs", "budget.md")
RAW = os.path.join(HERE, "results", "budget.json")
RADIUS = 2.0
LEVELS = [(1, 0.025), (1, 0.0125), (2, 0.05), (2, 0.025), (2, 0.0125),
          (3, 0.1), (3, 0.05), (3, 0.025)]


def _rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_level(order: int, h: float) -> dict:
    """Peak memory (bytes above the warm baseline) of mesh, assembly, solve, flux."""
    import fpsolve as fp
    from fpsolve.fe import budget
    warnings.simplefilter("ignore")
    L = fp.landscapes.paper()
    D = fp.diffusion.sgd(L, 0.012)
    fp.flux(fp.solve(L, D, fp.disk_mesh(RADIUS, 0.5), order=order))      # warm-up
    base = _rss()
    t0 = time.perf_counter()
    mesh = fp.disk_mesh(RADIUS, h)
    r_mesh = _rss()
    prob = fp.Problem(L, D, mesh, order=order)
    r_asm = _rss()
    sol = prob.solve()
    r_solve = _rss()
    fp.flux(sol)
    r_flux = _rss()
    return dict(order=order, h=h, dofs=int(prob.dofs), nvertices=int(mesh.nvertices),
                est_dofs=budget.estimate_dofs(RADIUS, h, order),
                mesh=r_mesh - base, assembly=r_asm - base, solve=r_solve - base,
                flux=r_flux - base, planned=budget.peak_memory(prob.dofs, order),
                planned_flux=budget.peak_memory(prob.dofs, order, flux=True),
                seconds=time.perf_counter() - t0, loadavg=os.getloadavg()[0])


def render(data: dict) -> str:
    meta = data["meta"]
    rows = ["| order | h | dofs | estimated dofs | mesh B/vertex | assembly B/dof "
            "| solve B/dof | solve + flux B/dof | planned solve / measured | planned flux / measured "
            "| load |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    from fpsolve.fe import budget
    for lv in data["levels"]:
        n = lv["dofs"]
        # what the guard plans with its current constants (re-rendering follows them)
        lv["planned"] = budget.peak_memory(n, lv["order"])
        lv["planned_flux"] = budget.peak_memory(n, lv["order"], flux=True)
        rows.append(
            f"| P{lv['order']} | {lv['h']:g} | {n:,} | {lv['est_dofs']:,.0f} "
            f"({lv['est_dofs'] / n - 1:+.1%}) | {lv['mesh'] / lv['nvertices']:,.0f} "
            f"| {lv['assembly'] / n:,.0f} | {lv['solve'] / n:,.0f} | {lv['flux'] / n:,.0f} "
            f"| {lv['planned'] / lv['solve']:.2f} | {lv['planned_flux'] / lv['flux']:.2f} "
            f"| {lv['loadavg']:.1f} |")
    return f"""# Resource guard: dofs and peak memory before a solve

`fpsolve.fe.budget` estimates, before meshing or assembling, how many unknowns a
request has and how much memory its solve will take, and refuses it with a
`BudgetError` (exit 2 from the CLI, the key `mesh.h` named, nothing written) when it
exceeds `max_dofs` (`fp.solve(..., max_dofs=)`, `Problem(..., max_dofs=)`,
`fp.disk_mesh(..., max_dofs=)`, study key `[solver] max_dofs`) or the available memory
(`MemAvailable` of `/proc/meminfo`, capped by a cgroup limit).  The default `max_dofs`
is the largest solve whose planned peak fits in {int(data['fraction'] * 100)} % of the
available memory.  The adaptive solver calls `budget.check` before each level.

* **Dofs** of `disk_mesh(radius, h)`: the hexagonal lattice has 2/(√3 h²) vertices per
  unit area, plus half the ⌈2πR/h⌉ boundary vertices; edges 3V − B − 3 and triangles
  2V − B − 2 give P2 (V + E) and P3 (V + 2E + T).  A band multiplies the density in
  |y| < band + h/2 by 4 per level.
* **Memory**: the peaks below are roughly linear in the dofs at these sizes (the
  nested-dissection LU fill grows like N log N, slowly); the guard plans
  BYTES_PER_DOF × dofs (+ FLUX_BYTES_PER_DOF for a study case with flux output) × a
  safety factor of {data['safety']:g}.  "planned / measured" > 1 means the guard errs on
  the safe side.

Generated by `python bench/budget.py` on {meta['date']} ({meta['machine']}, Python
{meta['python']}, SciPy {meta['scipy']}); raw numbers in `bench/results/budget.json`
(git-ignored; `--render` re-renders this page).  Peak resident memory above a warm
baseline (`ru_maxrss`), one fresh subprocess per level, Fig. 3 problem (paper landscape,
Δ_S = 0.012, radius {RADIUS:g}, absorbing); "load" is the 1-minute load average.

{chr(10).join(rows)}
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--render", action="store_true")
    ap.add_argument("--level", nargs=2, metavar=("ORDER", "H"))
    args = ap.parse_args(argv)
    if args.level:
        print(json.dumps(run_level(int(args.level[0]), float(args.level[1]))))
        return
    if args.render:
        with open(RAW) as f:
            data = json.load(f)
        write_report(DOC, render(data))
        print(f"wrote {DOC}")
        return
    from fpsolve.fe import budget
    levels = []
    for order, h in LEVELS:
        res = subprocess.run([sys.executable, __file__, "--level", str(order), str(h)],
                             check=True, capture_output=True, text=True)
        lv = json.loads(res.stdout.strip().splitlines()[-1])
        levels.append(lv)
        print(f"P{order} h={h}: {lv['dofs']} dofs, solve {lv['solve'] / lv['dofs']:.0f} B/dof, "
              f"flux {lv['flux'] / lv['dofs']:.0f} B/dof, {lv['seconds']:.0f} s, "
              f"load {lv['loadavg']:.1f}", flush=True)
    data = {"meta": machine_meta(), "safety": budget.SAFETY,
            "fraction": budget.MEMORY_FRACTION, "levels": levels}
    write_report(DOC, render(data), RAW, data)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
