"""Accuracy of the shipped Fig. 3 study against finer runs (benchmark, not a test).

Reads ``studies/fig3.toml`` (landscape, noise, mesh.h, solver.order of its four cases),
solves each case at h, h/2 and h/4 with the same element, and prints a Markdown table
of ⟨x²⟩ and μ (the x-marginal maximum is kept in the JSON) with the relative differences of the study's
resolution against the h/4 run (the issue's "4× finer run").  Each level runs in a
fresh subprocess (memory of the finest level is returned to the system).

Usage::

    python bench/fig3_study_accuracy.py              # levels 1, 2, 4 (h/4 P3: ~1.3M dofs)
    python bench/fig3_study_accuracy.py --levels 1 2 # quicker
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import fpsolve as fp  # noqa: E402
from fpsolve.study.build import build_landscape, build_noise  # noqa: E402
from fpsolve.study.schema import load_study  # noqa: E402

STUDY = os.path.join(ROOT, "studies", "fig3.toml")
RAW = os.path.join(HERE, "results", "fig3_study_accuracy.json")


def one_level(factor: int) -> list[dict]:
    """Solve the study's cases with mesh.h / factor; one assembly per noise model."""
    warnings.simplefilter("ignore")
    study = load_study(STUDY)
    out, problems = [], {}
    for case in study.cases:
        cfg = case.config
        L = build_landscape(cfg["landscape"])
        D = build_noise(cfg["noise"], L)
        h = cfg["mesh"]["h"] / factor
        key = (cfg["noise"]["cross_diffusion"], h)
        t0 = time.perf_counter()
        if key not in problems:
            mesh = fp.disk_mesh(cfg["mesh"]["radius"], h)
            problems[key] = fp.Problem(L, D, mesh, boundary=cfg["solver"]["boundary"],
                                       order=cfg["solver"]["order"])
        sol = problems[key].solve(cfg["noise"]["delta_s"])
        out.append(dict(case=case.name, factor=factor, h=h, order=cfg["solver"]["order"],
                        dofs=int(sol.diagnostics["dofs"]), x2=float(sol.moments()["cov"][0, 0]),
                        mu=float(sol.escape_rate), x_marginal_max=sol.marginal_mode("x"),
                        neg=float(sol.diagnostics["negative_mass"]),
                        seconds=time.perf_counter() - t0))
    return out


def render(rows: list[dict], factors: list[int]) -> str:
    by = {(r["case"], r["factor"]): r for r in rows}
    cases = list(dict.fromkeys(r["case"] for r in rows))
    f_ref = max(factors)
    r0 = by[(cases[0], 1)]
    head = " | ".join(f"⟨x²⟩, h/{f}" if f > 1 else f"⟨x²⟩, h = {r0['h']:g}" for f in factors)
    L = [f"P{r0['order']}; dofs per case: "
         + ", ".join(f"{by[(cases[0], f)]['dofs']} (h/{f})" if f > 1 else f"{r0['dofs']} (h)"
                     for f in factors), "",
         f"| case | {head} | rel. diff ⟨x²⟩ | μ, h | rel. diff μ | neg. mass, h |",
         "| --- | " + " | ".join("---" for _ in factors) + " | --- | --- | --- | --- |"]
    for c in cases:
        ref, r = by[(c, f_ref)], by[(c, 1)]
        vals = " | ".join(f"{by[(c, f)]['x2']:.8f}" for f in factors)
        L.append(f"| {c} | {vals} | {abs(r['x2'] - ref['x2']) / ref['x2']:.1e} | "
                 f"{r['mu']:.5e} | {abs(r['mu'] - ref['mu']) / ref['mu']:.1e} | {r['neg']:.1e} |")
    L.append("")
    L.append(f"(relative differences: study resolution h against h/{f_ref}, same element)")
    return "\n".join(L)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--level":
        print(json.dumps(one_level(int(argv[1]))))
        return
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4])
    args = ap.parse_args(argv)
    rows = []
    for f in args.levels:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--level", str(f)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"level h/{f} failed:\n{proc.stderr[-2000:]}")
        rows += json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"h/{f}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    os.makedirs(os.path.dirname(RAW), exist_ok=True)
    with open(RAW, "w") as fh:
        json.dump(rows, fh, indent=1)
    print(render(rows, args.levels))


if __name__ == "__main__":
    main()
