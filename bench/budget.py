"""Calibration of the resource guard (fpsolve.fe.budget): predicted against measured peak memory.

Every configuration runs in a fresh subprocess that first solves a tiny problem of the
same kind (so every module is loaded and compiled), then measures the peak resident set
size above its resident size at that point: the kernel's high-water mark ``VmHWM`` of
``/proc/self/status``, reset per phase through ``/proc/self/clear_refs`` (value 5).
That increment is what the guard plans for: it compares its estimate with the memory
available *while* the process already holds its baseline.

Configurations
--------------
fixed
    Fig. 3 problem (paper landscape, Δ_S = 0.012, disk of radius 2, absorbing), P1–P3
    at several h: mesh, assembly, solve with its error estimate, flux post-processing.
    The estimate is also measured on its own (the memory a forked child allocates).
adaptive
    Adaptive P3 runs, each level measured separately (its assembly, solve and estimate,
    from the resident size after the previous level), with the P_{k+1} moment duals of
    graded meshes (the default) and without them (recovered weights).
smallnoise
    Fixed meshes where the μ weight needs its own factorisation and double-double
    refinement: radial OU (L = |x|²/2, D = δI, unit disk) at δ = 0.01, paper landscape at
    Δ_S = 0.004; and at Δ_S = 0.002, where the solver re-solves the boundary layer (its own
    factorisation and refinement, fe/layer.py).
study
    ``fpsolve run studies/fig3.toml``: the sum of the proportional set sizes (Pss) of the
    study process, its forked estimate children and its renderer, sampled every 20 ms, above
    the peak of ``fpsolve validate`` on the same file (sampled: a peak shorter than that may
    be missed).  ``studies/sweep.toml`` (13 P2 cases, two local workers) against the sum the
    runner plans for its workers.

Writes ``bench/results/budget.json`` and ``docs/budget.md``.

Usage::

    python bench/budget.py                 # all configurations (~10 min on a quiet machine)
    python bench/budget.py --only fixed    # one group (fixed, adaptive, smallnoise, study)
    python bench/budget.py --render        # re-render docs/budget.md from the JSON
    python bench/budget.py --config '{"kind": "fixed", "order": 3, "h": 0.05}'   # internal
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from _report import machine_meta, write_report  # noqa: E402  (bench/_report.py)

DOC = os.path.join(ROOT, "docs", "budget.md")
RAW = os.path.join(HERE, "results", "budget.json")
RADIUS = 2.0
CONFIGS = {
    "fixed": [dict(kind="fixed", order=o, h=h) for o, h in
              [(1, 0.025), (1, 0.0125), (2, 0.05), (2, 0.025), (3, 0.1), (3, 0.05), (3, 0.035)]]
    # banded disks are graded: the error estimate solves its moment duals in P_{k+1}
    + [dict(kind="fixed", order=o, h=h, band=0.5) for o, h in [(1, 0.025), (2, 0.035), (3, 0.05)]],
    "adaptive": [dict(kind="adaptive", enriched=e, problem=p, tol=t, h0=h0, goals=g,
                      max_dofs=200_000)
                 for p, t, h0, g in [("fig3", 1e-8, 0.16, ["x2", "escape_rate"]),
                                     ("ou0.01", 1e-4, 0.1, ["escape_rate"])]
                 for e in (True, False)],
    "smallnoise": [dict(kind="smallnoise", problem=p, order=o, h=h) for p, o, h in
                   [("ou0.01", 3, 0.025), ("ou0.01", 3, 0.0177), ("paper0.004", 3, 0.04),
                    ("paper0.004", 2, 0.025), ("ou0.01", 2, 0.0125), ("paper0.004", 1, 0.0125),
                    ("paper0.002", 3, 0.04), ("paper0.002", 3, 0.028)]],
    "study": [dict(kind="study", study="studies/fig3.toml", h=h) for h in (0.04, 0.056)]
    + [dict(kind="study", study="studies/sweep.toml")],
}


def _status() -> dict:
    """VmRSS and VmHWM of this process, bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line[:5]] = int(line.split()[1]) * 1024
    return out


class Peak:
    """Peak resident memory above the resident size at :meth:`reset`."""

    def reset(self) -> None:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")            # VmHWM := VmRSS
        self.base = _status()["VmRSS"]

    def __call__(self) -> int:
        return _status()["VmHWM"] - self.base


def _model(name: str):
    import fpsolve as fp
    if name.startswith("ou"):
        return fp.landscapes.quadratic([[1.0, 0.0], [0.0, 1.0]]), float(name[2:]), 1.0
    L = fp.landscapes.paper()
    return L, float(name[5:]) if name.startswith("paper") else 0.012, RADIUS


def _problem(name: str, strength=None):
    import fpsolve as fp
    L, s, radius = _model(name)
    D = fp.diffusion.isotropic(s) if name.startswith("ou") else fp.diffusion.sgd(L, s)
    return L, D, radius


def run_fixed(order: int, h: float, problem: str = "fig3", band: float | None = None) -> dict:
    """Mesh, assembly, solve (estimate deferred and measured on its own), flux."""
    import fpsolve as fp
    from fpsolve.fe import budget, estimate
    L, D, radius = _problem(problem)
    calls = {"weight": 0, "weight_refined": 0}
    _count_weight_calls(estimate, calls)
    fp.flux(fp.solve(L, D, fp.disk_mesh(radius, 0.5), order=order))      # warm-up
    calls.update(weight=0, weight_refined=0, layer=0)
    peak = Peak()
    peak.reset()
    t0 = time.perf_counter()
    mesh = fp.disk_mesh(radius, h, band=band)
    r_mesh = peak()
    prob = fp.Problem(L, D, mesh, order=order)
    r_asm = peak()
    deferred = {}
    prob.defer_estimate = lambda s, compute, finish: deferred.update(c=compute, f=finish)
    sol = prob.solve()
    r_solve = peak()
    est_peak = Peak()
    est_peak.reset()                    # the forked child's share: the estimate alone
    deferred["f"](deferred["c"](), 0.0)
    r_est, r_total = est_peak(), peak()
    fp.flux(sol)
    r_flux = peak()
    n = int(prob.dofs)
    return dict(kind="fixed", problem=problem, order=order, h=h, band=band, dofs=n,
                graded=bool(mesh.graded), nvertices=int(mesh.nvertices),
                est_dofs=budget.estimate_dofs(radius, h, order, band),
                mesh=r_mesh, assembly=r_asm, solve_only=r_solve, estimate=r_est,
                solve=r_total, flux=r_flux, **calls,
                seconds=time.perf_counter() - t0, loadavg=os.getloadavg()[0])


def _count_weight_calls(estimate, calls: dict) -> None:
    """Count the μ weight's own factorisations and double-double refinements, and the
    solver's boundary-layer re-solves (fe/layer.py)."""
    from fpsolve.fe import layer
    f, g, h = estimate._escape_rate_weight, estimate._refine_escape_rate_weight, layer.resolve_layer

    def resolved(*a, **k):
        calls["layer"] = calls.get("layer", 0) + 1
        return h(*a, **k)
    layer.resolve_layer = resolved

    def weight(*a, **k):
        calls["weight"] += 1
        return f(*a, **k)

    def refined(*a, **k):
        calls["weight_refined"] += 1
        return g(*a, **k)
    estimate._escape_rate_weight, estimate._refine_escape_rate_weight = weight, refined


def run_adaptive(problem: str, tol: float, h0: float, goals, enriched: bool,
                 max_dofs: int) -> dict:
    """Per level: peak above the resident size after the previous level."""
    import fpsolve as fp
    from fpsolve.fe import adapt, estimate, solver
    L, D, radius = _problem(problem)
    calls = {"weight": 0, "weight_refined": 0}
    _count_weight_calls(estimate, calls)
    if not enriched:
        inner = solver.estimate_errors

        def recovered(*a, **k):
            k["enriched_duals"] = False
            return inner(*a, **k)
        solver.estimate_errors = recovered
    fp.solve(L, D, fp.disk_mesh(radius, 0.5), order=3, tol=1e-2, goals=goals)     # warm-up
    levels, peak = [], Peak()
    solve_level = adapt._solve_level

    def measured(problem_, *args, **kwargs):
        calls.update(weight=0, weight_refined=0, layer=0)
        out = solve_level(problem_, *args, **kwargs)
        levels.append(dict(dofs=int(problem_.dofs), peak=peak(), **calls,
                           graded=bool(problem_.mesh.graded or "+refine" in problem_.mesh.source),
                           loadavg=os.getloadavg()[0]))
        peak.reset()        # the next level's assembly, solve and estimate
        return out
    adapt._solve_level = measured
    t0 = time.perf_counter()
    peak.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = fp.solve(L, D, fp.disk_mesh(radius, h0), order=3, tol=tol, goals=goals,
                       max_dofs=max_dofs)
    return dict(kind="adaptive", problem=problem, order=3, tol=tol, h0=h0, goals=goals,
                max_dofs=max_dofs,
                enriched=enriched, levels=levels, converged=sol.diagnostics["adapt_converged"],
                seconds=time.perf_counter() - t0, loadavg=os.getloadavg()[0])


def _tree_pss(root: int) -> int:
    """Sum of Pss (bytes) of ``root`` and its descendants."""
    children: dict = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", "rb") as f:
                    stat = f.read()
                ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError):
                pass
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def run_study(study: str, h: float | None = None) -> dict:
    """Peak Pss of the study's process tree above ``fpsolve validate``'s (the baseline).

    ``h`` replaces the study's ``[mesh] h`` (a copy of the file is run).
    """
    from fpsolve.fe import budget
    from fpsolve.study import load_study
    from fpsolve.study.build import case_dofs
    out = tempfile.mkdtemp(prefix="budget_study_")
    path = os.path.join(ROOT, study)
    if h is not None:
        with open(path) as f:
            text = f.read()
        path = os.path.join(out, os.path.basename(study))
        with open(path, "w") as f:
            f.write(re.sub(r"(?m)^h = .*$", f"h = {h}", text, count=1))
    cfg = load_study(path).cases[0].config
    # the baseline: `fpsolve validate` (imports, reads and checks the study: where the
    # guard runs) -- the run's memory above it is what the guard must plan for
    base, _, _ = _sampled(["validate", path])
    t0 = time.perf_counter()
    peak, samples, rc = _sampled(["run", path, "--out", os.path.join(out, "out"), "--force"])
    with open(os.path.join(out, "out", "provenance.json")) as f:
        workers = json.load(f)["execution"]["workers"]
    return dict(kind="study", study=study, h=cfg["mesh"]["h"], order=cfg["solver"]["order"],
                dofs=int(case_dofs(cfg)), ncases=len(load_study(path).cases), workers=workers,
                peak=peak - base, baseline=base, samples=samples, rc=rc,
                seconds=time.perf_counter() - t0, loadavg=os.getloadavg()[0])


def _sampled(args) -> tuple[int, int, int]:
    """Peak Pss of ``python -m fpsolve *args`` and its children, samples, exit code."""
    proc = subprocess.Popen([sys.executable, "-m", "fpsolve", *args],
                            env=dict(os.environ, PYTHONPATH=ROOT),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak, samples = 0, 0
    while proc.poll() is None:
        peak, samples = max(peak, _tree_pss(proc.pid)), samples + 1
        time.sleep(0.02)
    return peak, samples, proc.returncode


def run_config(cfg: dict) -> dict:
    kind = cfg["kind"]
    warnings.simplefilter("ignore")
    if kind == "fixed":
        return run_fixed(cfg["order"], cfg["h"], band=cfg.get("band"))
    if kind == "smallnoise":
        res = run_fixed(cfg["order"], cfg["h"], cfg["problem"])
        res["kind"] = "smallnoise"
        return res
    if kind == "adaptive":
        return run_adaptive(cfg["problem"], cfg["tol"], cfg["h0"], cfg["goals"], cfg["enriched"],
                            cfg["max_dofs"])
    if kind == "study":
        return run_study(cfg["study"], cfg.get("h"))
    raise ValueError(f"kind: {kind!r}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--render", action="store_true")
    ap.add_argument("--only", choices=sorted(CONFIGS), action="append")
    ap.add_argument("--config")
    args = ap.parse_args(argv)
    if args.config:
        print(json.dumps(run_config(json.loads(args.config))))
        return
    if args.render:
        with open(RAW) as f:
            data = json.load(f)
        write_report(DOC, render(data))
        print(f"wrote {DOC}")
        return
    data = {"meta": machine_meta(), "runs": []}
    if args.only and os.path.exists(RAW):        # keep the other groups' numbers
        with open(RAW) as f:
            old = json.load(f)
        data["runs"] = [r for r in old["runs"] if r["kind"] not in _kinds(args.only)]
    for group in args.only or CONFIGS:
        for cfg in CONFIGS[group]:
            res = subprocess.run([sys.executable, __file__, "--config", json.dumps(cfg)],
                                 check=True, capture_output=True, text=True)
            run = json.loads(res.stdout.strip().splitlines()[-1])
            data["runs"].append(run)
            print(_line(run), flush=True)
    write_report(DOC, render(data), RAW, data)
    print(f"wrote {DOC}")


MB = 1e6
PAGE = """# Resource guard: dofs and peak memory before a solve

`fpsolve.fe.budget` estimates, before meshing or assembling, how many unknowns a
request has and how much memory its solve will take, and refuses it with a
`BudgetError` (exit 2 from the CLI, the key `mesh.h` named, nothing written) when it
exceeds `max_dofs` (`fp.solve(..., max_dofs=)`, `Problem(..., max_dofs=)`,
`fp.disk_mesh(..., max_dofs=)`, study key `[solver] max_dofs`) or the available memory
(`MemAvailable` of `/proc/meminfo`, capped by a cgroup limit).  The default `max_dofs`
is the largest solve whose planned peak fits in {fraction} % of the available memory.

* **Where it is checked.** `disk_mesh` before its lattice; `Problem` before assembling
  (graded meshes: with the P_{{k+1}} duals); the adaptive solver before assembling each
  level (graded), and a level that does not fit ends the loop with the previous level,
  flagged `untrusted`, the reason in its warning; a study at validation, each case with
  its flux and the study's own processes; a study's runner, which runs fewer local workers
  when the largest cases would not fit together (`budget.parallel_workers`: an adaptive
  case may grow to its whole `max_dofs` budget, so adaptive cases under the default budget
  run one at a time; set `[solver] max_dofs` to run them side by side); and a study's
  forked error estimate: before forking, the child's need (`budget.estimate_memory`, with
  the flux the parent computes meanwhile) is compared with the available memory, and an
  estimate that would not fit is computed in the study's process instead (logged at debug
  level; the numbers are the same).
* **Dofs** of `disk_mesh(radius, h)`: the hexagonal lattice has 2/(√3 h²) vertices per
  unit area, plus half the ⌈2πR/h⌉ boundary vertices; edges 3V − B − 3 and triangles
  2V − B − 2 give P2 (V + E) and P3 (V + 2E + T).  A band multiplies the density in
  |y| < band + h/2 by 4 per level.
* **Memory.** The plan is {safety:g} × (fixed part + dofs × bytes per dof), above the
  process's resident size before the request.  The fixed part is {base:g} MiB (plus
  {study:g} MiB for a study: its renderer process).  The bytes per dof add up the parts
  that are alive together, each the largest per-dof peak measured below (table).

| order | solve + estimate | + graded mesh | + flux | estimate alone (forked child) |
| --- | --- | --- | --- | --- |
{constants}

A study case adds {study_per_dof:,.0f} B/dof (the forked estimate child beside the flux, the
results kept for the panel).  Small noise: where 1 − φ is round-off the μ weight is
solved directly, with a second LU of the interior block and a double-double refinement;
the solve's bytes per dof include it (paper landscape Δ_S = 0.004: 10.5 kB per P3 dof
against 7.9 at Fig. 3's Δ_S); the solver's boundary-layer re-solve at Δ_S = 0.002 (its
own factorisation and refinement where P is below 1e-6 of its maximum) stays within it
(9.2 kB per P3 dof; on the finest meshes it was measured on, uniform P3 h = 0.014 and
0.01, 667k and 1.31M dofs, the solve with its layer re-solve peaked at 4.1 and 8.3 GB
against a plan of 8.2 and 16 GiB).  Graded meshes solve the moment duals in P_{{k+1}}, one more
assembly and LU on 4×, 2.25×, 1.8× the dofs for P1, P2, P3: 2.2×, 1.9×, 1.7× the uniform
peak (banded disks); this replaces the former blanket factor 2.5 (which over-planned P3
and under-planned P1).  The safety factor {safety:g} covers sizes between and beyond the
measured ones (the nested-dissection fill grows like N log N) and allocator slack.

A study's process grows over its cases: Fig. 3 from 1.1 to 1.4 GB over its 4 cases,
`studies/sweep.toml` from 1.1 to 1.6 GB per worker over 6–7 cases (Pss).  The solver and
the flux do not leak (12 solves with flux in one process: constant resident size), so the
growth is what the study keeps or fragments between cases; the per-case plan covers the
runs measured here, a much longer run in one worker has not been measured.

Generated by `python bench/budget.py` on {date} ({machine}, Python {python}, SciPy
{scipy}); raw numbers in `bench/results/budget.json` (git-ignored; `--render`
re-renders this page with the current constants).  Each configuration runs in a fresh
process that first solves a tiny problem of the same kind (imports, compiled kernels);
"measured" is the peak resident size (`VmHWM`, reset through `/proc/self/clear_refs`)
above the resident size before the request.  Adaptive levels: each level from the
resident size after the previous one (levels below 20k dofs reuse freed memory and are
not shown).  Studies: the sum of the proportional set sizes of the study's processes
(the study, its renderer, its forked estimate children), sampled every 20 ms, above that
of `fpsolve validate` on the same file.  "load" is the 1-minute load average (the machine
was shared).  MB = 10⁶ bytes.  Lowest predicted / measured: **{lowest:.2f}**.

{table}
"""




def rows(data: dict) -> list[dict]:
    """Prediction against measurement, one row per measured peak (current constants)."""
    from fpsolve.fe import budget
    out = []

    def row(config, part, order, dofs, measured, predicted, load):
        out.append(dict(config=config, part=part, order=order, dofs=dofs, measured=measured,
                        predicted=predicted, ratio=predicted / max(measured, 1), load=load))
    for r in data["runs"]:
        n, k, load = r.get("dofs"), r.get("order"), r.get("loadavg", float("nan"))
        if r["kind"] in ("fixed", "smallnoise"):
            g = bool(r.get("graded"))
            name = (f"{r['problem']} P{k} h={r['h']:g}" + (f" band {r['band']:g}" if r.get("band")
                                                            else ""))
            if r["weight_refined"]:
                name += " (μ weight refined)"
            if r.get("layer"):
                name += " (layer re-solved)"
            row(name, "solve + estimate", k, n, r["solve"], budget.peak_memory(n, k, graded=g),
                load)
            row(name, "+ flux", k, n, r["flux"], budget.peak_memory(n, k, flux=True, graded=g),
                load)
            row(name, "estimate alone (forked child)", k, n, r["estimate"],
                budget.estimate_memory(n, k, graded=g), load)
        elif r["kind"] == "adaptive":
            for i, lv in enumerate(r["levels"]):
                if lv["dofs"] < 20_000:       # below: freed memory of the warm-up is reused
                    continue
                name = (f"adaptive {r['problem']} {'+'.join(r['goals'])} tol {r['tol']:g}, "
                        f"level {i}" + (" (μ weight)" if lv["weight"] else ""))
                part = "level, P_{k+1} duals" if r["enriched"] else "level, recovered weights"
                row(name, part, 3, lv["dofs"], lv["peak"],
                    budget.peak_memory(lv["dofs"], 3, graded=lv["graded"]), lv["loadavg"])
        elif r["kind"] == "study":
            # local workers run side by side: the runner plans their sum (parallel_workers)
            w = r.get("workers", 1)
            row(f"study {os.path.basename(r['study'])} h={r['h']:g}, {r['ncases']} cases"
                + (f", {w} workers" if w > 1 else ""), "process tree (Pss)", k, n, r["peak"],
                w * budget.peak_memory(n, k, flux=True, study=True), load)
    return out


def render(data: dict) -> str:
    from fpsolve.fe import budget
    meta = data["meta"]
    table = ["| configuration | part | dofs | measured MB | predicted MB | predicted / measured "
             "| load |", "| --- | --- | --- | --- | --- | --- | --- |"]
    rs = rows(data)
    for r in rs:
        table.append(f"| {r['config']} | {r['part']} | {r['dofs']:,} | {r['measured'] / MB:,.0f} "
                     f"| {r['predicted'] / MB:,.0f} | {r['ratio']:.2f} | {r['load']:.1f} |")
    lo = min(r["ratio"] for r in rs)
    consts = "\n".join(
        f"| P{k} | {budget.BYTES_PER_DOF[k]:,.0f} | {budget.GRADED_BYTES_PER_DOF[k]:,.0f} "
        f"| {budget.FLUX_BYTES_PER_DOF[k]:,.0f} | {budget.ESTIMATE_BYTES_PER_DOF[k]:,.0f} |"
        for k in (1, 2, 3))
    return PAGE.format(safety=budget.SAFETY, fraction=int(budget.MEMORY_FRACTION * 100),
                           base=budget.BASE_BYTES / 2**20, study=budget.STUDY_BYTES / 2**20,
                           study_per_dof=budget.STUDY_BYTES_PER_DOF, constants=consts,
                           table="\n".join(table), lowest=lo, date=meta["date"],
                           machine=meta["machine"], python=meta["python"], scipy=meta["scipy"])


def _line(run: dict) -> str:
    """One line of progress: the configuration, its largest peak, seconds, load."""
    peak = max([run.get("flux", 0), run.get("peak", 0)]
               + [lv["peak"] for lv in run.get("levels", [])])
    what = {k: run[k] for k in ("problem", "study", "order", "h", "band", "tol", "enriched")
            if run.get(k) is not None}
    return (f"{run['kind']} {what}: peak {peak / MB:,.0f} MB, {run['seconds']:.0f} s, "
            f"load {run['loadavg']:.1f}")


def _kinds(groups) -> set:
    return {cfg["kind"] for g in groups for cfg in CONFIGS[g]}


if __name__ == "__main__":
    main()
