"""Uniform against adaptive refinement: error against dofs and time (docs/adaptivity.md).

    python bench/adaptive.py                 # all cases (long: a quiet machine, ~1 h)
    python bench/adaptive.py --cases fig3_cross_0.009 --orders 3
    python bench/adaptive.py --render        # page and figures from bench/results/

For each case: uniform P2/P3 runs on disk_mesh(2, h) for a ladder of h, and adaptive runs
from disk_mesh(2, 0.16) with ``tol`` on ⟨x²⟩ (goals=["x2"]) for tol = 1e-4, 1e-5, 1e-6.
The reference is a uniform P3 run at h = 0.02 (4× the dofs of the shipped Fig. 3 mesh,
h = 0.04).  Every run is timed in the same process, interleaved, and the load average is
recorded with it (the machine may be shared).  Raw numbers: bench/results/adaptive.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import fpsolve as fp                                     # noqa: E402
from _report import machine_meta, write_report          # noqa: E402

RAW = os.path.join(HERE, "results", "adaptive.json")
DOC = os.path.join(os.path.dirname(HERE), "docs", "adaptivity.md")
FIG = os.path.join(os.path.dirname(HERE), "docs", "figures")

#: name -> (Δ_S, cross-diffusion)
CASES = {"fig3_cross_0.009": (0.009, True), "fig3_cross_0.012": (0.012, True),
         "fig3_nocross_0.009": (0.009, False), "fig3_nocross_0.012": (0.012, False),
         "paper_0.03": (0.03, True), "paper_0.004": (0.004, True), "paper_0.002": (0.002, True)}
UNIFORM_H = {2: (0.16, 0.08, 0.04, 0.028), 3: (0.16, 0.08, 0.056, 0.04)}
TOLS = (1e-4, 1e-5, 1e-6)
H_REF, H_START = 0.02, 0.16


def _run(ds, cross, order, h, tol=None):
    L = fp.landscapes.paper()
    D = fp.diffusion.sgd(L, ds, cross_diffusion=cross)
    load = os.getloadavg()[0]
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = fp.solve(L, D, fp.disk_mesh(2.0, h), order=order, tol=tol,
                       goals=None if tol is None else ["x2"])
    wall = time.perf_counter() - t
    d = sol.diagnostics
    return {"order": order, "h": h, "tol": tol, "dofs": int(d["dofs"]), "time_s": wall,
            "load": load, "x2": sol.expectation(lambda x, y: x * x),
            "mu": sol.escape_rate, "estimate": dict(sol.error_estimate),
            "correction": dict(d["error_correction"]),
            "negative_mass": d["negative_mass"], "converged": d.get("adapt_converged"),
            "levels": d.get("adapt", [])}


def measure(names, orders) -> dict:
    data = {"meta": machine_meta(load=os.getloadavg()), "cases": {}}
    for name in names:
        ds, cross = CASES[name]
        rows = {"uniform": [], "adaptive": []}
        for order in orders:
            for h in UNIFORM_H[order]:
                rows["uniform"].append(_run(ds, cross, order, h))
                print(name, "uniform", order, h, rows["uniform"][-1]["dofs"], flush=True)
            for tol in TOLS:
                rows["adaptive"].append(_run(ds, cross, order, H_START, tol))
                print(name, "adaptive", order, tol, rows["adaptive"][-1]["dofs"], flush=True)
        rows["reference"] = _run(ds, cross, 3, H_REF)
        data["cases"][name] = rows
    return data


def _true(r, ref, key):
    return abs(r[key] - ref[key]) / abs(ref[key])


def _uniform_match(rows, err, ref):
    """Dofs and time of the cheapest uniform P3 run with true ⟨x²⟩ error ≤ err (log-interp)."""
    u = sorted((r for r in rows if r["order"] == 3), key=lambda r: r["dofs"])
    e = np.array([_true(r, ref, "x2") for r in u])
    n = np.array([r["dofs"] for r in u], dtype=float)
    t = np.array([r["time_s"] for r in u])
    ok = np.flatnonzero(e <= err)
    if ok.size and ok[0] == 0:
        return n[0], t[0], "≤"
    if not ok.size:      # extrapolate with the last two points (errors fall as a power of N)
        i = len(u) - 1
    else:
        i = ok[0]
    s = np.log(e[i] / e[i - 1]) / np.log(n[i] / n[i - 1])
    nm = n[i - 1] * (err / e[i - 1]) ** (1 / s)
    st = np.log(t[i] / t[i - 1]) / np.log(n[i] / n[i - 1])
    return nm, t[i - 1] * (nm / n[i - 1]) ** st, "≈" if ok.size else "extrapolated"


def figures(data) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out = []
    for name, rows in data["cases"].items():
        ref = rows["reference"]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
        for order, color in ((2, "tab:blue"), (3, "tab:red")):
            for kind, marker, ls in (("uniform", "o", "-"), ("adaptive", "s", "--")):
                rs = sorted((r for r in rows[kind] if r["order"] == order), key=lambda r: r["dofs"])
                if not rs:
                    continue
                e = [max(_true(r, ref, "x2"), 1e-16) for r in rs]
                for ax, xk in zip(axes, ("dofs", "time_s")):
                    ax.loglog([r[xk] for r in rs], e, marker=marker, ls=ls, color=color,
                              label=f"P{order} {kind}")
        for ax, lab in zip(axes, ("dofs", "wall time [s]")):
            ax.set_xlabel(lab)
            ax.set_ylabel("relative error of ⟨x²⟩ (vs uniform P3, h = 0.02)")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].legend()
        fig.suptitle(f"{name}: uniform vs adaptive (tol = {', '.join(f'{t:g}' for t in TOLS)})")
        path = os.path.join(FIG, f"adaptive_{name}.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        out.append(os.path.basename(path))
    return out


def table(data) -> str:
    lines = ["| case | tol | P | dofs | time [s] | true err ⟨x²⟩ | eff. ⟨x²⟩ | eff. μ | "
             "uniform P3 same error: dofs / time [s] | dof ratio | load |",
             "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for name, rows in data["cases"].items():
        ref = rows["reference"]
        for r in rows["adaptive"]:
            err = _true(r, ref, "x2")
            eff_x2 = r["estimate"]["x2"] / err if err > 0 else float("inf")
            mu_err = _true(r, ref, "mu")
            eff_mu = r["estimate"]["escape_rate"] / mu_err if mu_err > 0 else float("inf")
            nu, tu, how = _uniform_match(rows["uniform"], err, ref)
            lines.append(f"| {name} | {r['tol']:g} | {r['order']} | {r['dofs']:,} | "
                         f"{r['time_s']:.1f} | {err:.1e} | {eff_x2:.2f} | {eff_mu:.2f} | "
                         f"{how} {nu:,.0f} / {tu:.1f} | {nu / r['dofs']:.1f} | {r['load']:.1f} |")
    return "\n".join(lines)


def render(data) -> None:
    figs = figures(data)
    with open(DOC, encoding="utf-8") as f:
        page = f.read()
    begin, end = "<!-- bench:adaptive:begin -->", "<!-- bench:adaptive:end -->"
    meta = data["meta"]
    block = (f"Measured {meta['date']} on {meta['machine']} (load average at start "
             f"{', '.join(f'{x:.1f}' for x in meta['load'])}; the load column is per run).\n\n"
             + table(data) + "\n\n" + "\n".join(f"![{f}](figures/{f})" for f in figs))
    i, j = page.index(begin), page.index(end)
    write_report(DOC, page[:i + len(begin)] + "\n" + block + "\n" + page[j:], None, None)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--orders", nargs="*", type=int, default=[2, 3], choices=[2, 3])
    ap.add_argument("--render", action="store_true", help="only re-render from the raw JSON")
    args = ap.parse_args(argv)
    if args.render:
        with open(RAW) as f:
            data = json.load(f)
    else:
        data = measure(args.cases, args.orders)
        old = {}
        if os.path.exists(RAW):               # keep the cases not re-measured now
            with open(RAW) as f:
                old = json.load(f).get("cases", {})
        data["cases"] = {**old, **data["cases"]}
        os.makedirs(os.path.dirname(RAW), exist_ok=True)
        write_report(RAW, json.dumps(data, indent=1, default=float))
    render(data)


if __name__ == "__main__":
    main()
