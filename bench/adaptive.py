"""Uniform against adaptive refinement: error against dofs and time (docs/adaptivity.md).

    python bench/adaptive.py                 # all cases, P2 and P3 (~10 min at load 2)
    python bench/adaptive.py --quick         # P3, tol = 1e-6 only, reference h = 0.028 (~8 min)
    python bench/adaptive.py --cases fig3_cross_0.009 --orders 3
    python bench/adaptive.py --render        # page and figures from bench/results/
    python bench/adaptive.py --kinds adaptive   # re-run the adaptive runs only

For each case (paper landscape, disk R = 2, absorbing): uniform P2/P3 runs on
disk_mesh(2, h) for a ladder of h, and adaptive runs from disk_mesh(2, 0.16) with ``tol``
on ⟨x²⟩ (the case's goals, ["x2"]) for tol = 1e-4, 1e-5 and (P3) 1e-6.  The reference is
a uniform P3 run at h = 0.02 (327k dofs, 4× the dofs of h = 0.04; --quick: h = 0.028);
its own estimate is reported with it.  Every run is timed in the same process,
interleaved, with the load average recorded next to it: the machine may be shared, so
the ratios of runs measured side by side are what count.
Raw numbers: bench/results/adaptive.json.
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
from _report import machine_meta, replace_block, write_report   # noqa: E402

RAW = os.path.join(HERE, "results", "adaptive.json")
DOC = os.path.join(os.path.dirname(HERE), "docs", "adaptivity.md")
FIG = os.path.join(os.path.dirname(HERE), "docs", "figures")

#: name -> (Δ_S, cross-diffusion, goals of the adaptive runs)
CASES = {"fig3_cross_0.009": (0.009, True, ["x2"]),
         "fig3_cross_0.012": (0.012, True, ["x2"]),
         "fig3_nocross_0.009": (0.009, False, ["x2"]),
         "fig3_nocross_0.012": (0.012, False, ["x2"]),
         "paper_0.03": (0.03, True, ["x2"]),
         "paper_0.004": (0.004, True, ["x2"]),
         "paper_0.002": (0.002, True, ["x2"])}
UNIFORM_H = {2: (0.16, 0.08, 0.04, 0.028), 3: (0.16, 0.08, 0.056, 0.048, 0.04, 0.028)}
#: tolerances of the adaptive runs by order (P2 at 1e-6 would need ~0.3M dofs: minutes)
TOLS = {2: (1e-4, 1e-5), 3: (1e-4, 1e-5, 1e-6)}
H_REF, H_START = 0.02, 0.16
#: μ effectivities are shown only where the reference's own μ estimate is below this
MU_REF_TRUSTED = 0.1
#: the time compared: CPU seconds of the process (single-threaded solves; on the shared
#: machine its wall time was 1.5-4x that, depending on the load of the moment)
TIME = "cpu_s"
#: the density's extent: area fraction of the disk where P ≥ eps · max P
LOCAL_EPS = (1e-3, 1e-6, 1e-9)
#: a case is "localised" (the positive comparison asks ≥ 3× fewer dofs only there) when P ≥
#: 1e-6 max P on less than this fraction of the disk (finest uniform P3 run)
LOCALISED = 0.5
#: the kinds of run; ``--kinds`` measures some of them and keeps the others' saved rows
KINDS = ("uniform", "adaptive", "reference")
QUICK = {"orders": [3], "tols": {3: (1e-6,)}, "h_ref": 0.028,
         "uniform_h": {3: (0.16, 0.08, 0.056, 0.04)}}


def _run(ds, cross, order, h, tol=None, goals=None):
    L = fp.landscapes.paper()
    D = fp.diffusion.sgd(L, ds, cross_diffusion=cross)
    load = os.getloadavg()[0]
    t, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = fp.solve(L, D, fp.disk_mesh(2.0, h), order=order, tol=tol, goals=goals)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    d = sol.diagnostics
    Pq, dx = np.asarray(sol.basis.interpolate(sol.P)), np.asarray(sol.basis.dx)
    area = {f"{eps:g}": float(np.sum(dx * (Pq >= eps * Pq.max())) / np.sum(dx))
            for eps in LOCAL_EPS}
    return {"order": order, "h": h, "tol": tol, "dofs": int(d["dofs"]), "time_s": wall,
            "cpu_s": cpu, "load": load, "area": area, "x2": sol.expectation(lambda x, y: x * x),
            "mu": sol.escape_rate, "estimate": dict(sol.error_estimate),
            "correction": dict(d["error_correction"]),
            "negative_mass": d["negative_mass"], "converged": d.get("adapt_converged"),
            "weights": d.get("estimate_weights"), "levels": d.get("adapt", [])}


def _say(name, kind, r):
    print(f"{name:20s} {kind:8s} P{r['order']} h={r['h']:<6g} tol={r['tol'] or '-':<6} "
          f"dofs={r['dofs']:>8,} {r['time_s']:6.1f} s (CPU {r['cpu_s']:.1f} s)  est x2 {r['estimate']['x2']:.1e}  "
          f"load {r['load']:.1f}", flush=True)


def _save(data, kinds=KINDS) -> dict:
    """Merge ``data`` into the raw file (cases measured before with the same reference are
    kept, and of a case measured now the kinds of run not measured now); written after
    every case, so an interrupted run keeps what it measured."""
    old = {}
    if os.path.exists(RAW):
        with open(RAW) as f:
            old = json.load(f)
        if old.get("h_ref") != data["h_ref"]:
            old = {}                      # another reference: do not mix
    cases = dict(old.get("cases", {}))
    for name, rows in data["cases"].items():
        kept = {k: v for k, v in cases.get(name, {}).items() if k not in kinds}
        cases[name] = {**kept, **{k: v for k, v in rows.items() if k in kinds or k == "goals"}}
    merged = {**data, "cases": cases}
    os.makedirs(os.path.dirname(RAW), exist_ok=True)
    write_report(RAW, json.dumps(merged, indent=1, default=float))
    return merged


def measure(names, orders, tols, uniform_h, h_ref, kinds=KINDS) -> dict:
    data = {"meta": machine_meta(load=os.getloadavg()), "h_ref": h_ref, "cases": {}}
    for name in names:
        ds, cross, goals = CASES[name]
        rows = {"goals": goals, "uniform": [], "adaptive": []}
        for order in orders:
            for h in uniform_h[order] if "uniform" in kinds else ():
                rows["uniform"].append(_run(ds, cross, order, h))
                _say(name, "uniform", rows["uniform"][-1])
            for tol in tols[order] if "adaptive" in kinds else ():
                rows["adaptive"].append(_run(ds, cross, order, H_START, tol, goals))
                _say(name, "adaptive", rows["adaptive"][-1])
        if "reference" in kinds:
            rows["reference"] = _run(ds, cross, 3, h_ref)
            _say(name, "ref.", rows["reference"])
        data["cases"][name] = rows
        merged = _save(data, kinds)
    return merged


def _true(r, ref, key):
    return abs(r[key] - ref[key]) / abs(ref[key])


def _eff(r, ref, key, est_key):
    if key == "mu" and not ref["estimate"]["escape_rate"] <= MU_REF_TRUSTED:
        return float("nan")             # the reference μ itself is not known to a digit
    err = _true(r, ref, key)
    return r["estimate"][est_key] / err if err > 0 else float("inf")


def _crossing(n, v, target):
    """N where v(N) falls to ``target``, log-log between the bracketing runs (the error
    and the negative mass fall as powers of the dofs); beyond the last run the last two
    are extrapolated.  Returns (N, how)."""
    ok = np.flatnonzero(v <= target)
    if ok.size and ok[0] == 0:
        return n[0], "≤"
    i = ok[0] if ok.size else len(n) - 1
    s = np.log(v[i] / v[i - 1]) / np.log(n[i] / n[i - 1])
    return n[i - 1] * (target / v[i - 1]) ** (1 / s), "≈" if ok.size else "extrap."


def _uniform_match(rows, err, ref, positive=False):
    """Dofs and time of the cheapest uniform P3 run with true ⟨x²⟩ error ≤ err (and, with
    ``positive``, negative mass ≤ the adaptive loop's bound, as every adaptive result)."""
    from fpsolve.fe.adapt import NEGATIVE_MASS

    u = sorted((r for r in rows if r["order"] == 3), key=lambda r: r["dofs"])
    n = np.array([r["dofs"] for r in u], dtype=float)
    t = np.array([r[TIME] for r in u])
    nm, how = _crossing(n, np.array([_true(r, ref, "x2") for r in u]), err)
    if positive:
        neg = np.maximum([r["negative_mass"] for r in u], 1e-300)
        npos, how_pos = _crossing(n, neg, NEGATIVE_MASS)
        if npos > nm:
            nm, how = npos, how_pos
    j = int(np.clip(np.searchsorted(n, nm), 1, len(n) - 1))     # time: log-log in the dofs
    st = np.log(t[j] / t[j - 1]) / np.log(n[j] / n[j - 1])
    return nm, t[j - 1] * (nm / n[j - 1]) ** st, how


def figures(data) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(data["cases"])
    ncol = 4
    nrow = -(-len(names) // ncol)
    out = []
    for xk, xlabel, fname in (("dofs", "dofs", "adaptive_dofs.png"),
                              (TIME, "CPU time [s]", "adaptive_time.png")):
        fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.4 * nrow),
                                 constrained_layout=True, squeeze=False)
        for ax, name in zip(axes.flat, names):
            rows = data["cases"][name]
            ref = rows["reference"]
            for order, color in ((2, "tab:blue"), (3, "tab:red")):
                for kind, marker, ls in (("uniform", "o", "-"), ("adaptive", "s", "none")):
                    rs = sorted((r for r in rows.get(kind, []) if r["order"] == order),
                                key=lambda r: r["dofs"])
                    if not rs:
                        continue
                    e = [max(_true(r, ref, "x2"), 1e-12) for r in rs]
                    ax.loglog([r[xk] for r in rs], e, marker=marker, ls=ls, color=color,
                              mfc="none" if kind == "adaptive" else color,
                              label=f"P{order} {kind}")
                    if kind == "adaptive":
                        for r, ei in zip(rs, e):
                            ax.annotate(f"{r['tol']:g}", (r[xk], ei), fontsize=7,
                                        textcoords="offset points", xytext=(4, 2))
            ax.axhline(1e-6, color="0.6", lw=0.8, ls=":")
            ax.set_title(name, fontsize=10)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("rel. error of ⟨x²⟩")
            ax.grid(True, which="both", alpha=0.3)
        for ax in list(axes.flat)[len(names):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=8)
        fig.suptitle(f"⟨x²⟩ error against {xlabel.split(' (')[0]}: uniform lines, adaptive "
                     f"squares labelled by tol (reference: uniform P3, h = {data['h_ref']})")
        fig.savefig(os.path.join(FIG, fname), dpi=80)
        plt.close(fig)
        out.append(fname)
    return out


def _fmt_eff(x):
    if np.isnan(x):
        return "n/a"
    return "–" if not np.isfinite(x) else f"{x:.2f}"


def _fmt_err(r, ref):
    if not ref["estimate"]["escape_rate"] <= MU_REF_TRUSTED:
        return "n/a"
    if r["mu"] is None or not np.isfinite(r["mu"]):
        return "μ ≤ 0"            # a μ ≤ 0 is reported as NaN (saved as null)
    return f"{_true(r, ref, 'mu'):.1e}"


def table(data) -> str:
    lines = ["| case | P | tol | levels | dofs | CPU [s] | true err ⟨x²⟩ | eff. ⟨x²⟩ | "
             "eff. μ | uniform P3, same error: dofs / CPU [s] | ratio dofs / CPU | "
             "… and negative mass ≤ 1e-8: dofs / CPU [s] | ratio dofs / CPU | load |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---|---:|"]
    for name, rows in data["cases"].items():
        ref = rows["reference"]
        for r in rows.get("adaptive", []):
            err = _true(r, ref, "x2")
            conv = "" if r["converged"] else " (not conv.)"
            cells = []
            finest = max((u for u in rows["uniform"] if u["order"] == 3),
                         key=lambda u: u["dofs"])
            for positive in (False, True):
                nu, tu, how = _uniform_match(rows["uniform"], err, ref, positive)
                if nu > 4 * finest["dofs"]:       # no trustworthy extrapolation that far
                    cells.append(f"> {4 * finest['dofs']:,} (h = {finest['h']:g}: "
                                 f"neg. mass {finest['negative_mass']:.0e}) | –")
                    continue
                cells.append(f"{how} {nu:,.0f} / {tu:.1f} | "
                             f"{nu / r['dofs']:.1f} / {tu / r[TIME]:.2f}")
            lines.append(
                f"| {name} | {r['order']} | {r['tol']:g}{conv} | {len(r['levels'])} | "
                f"{r['dofs']:,} | {r[TIME]:.1f} | {err:.1e} | "
                f"{_fmt_eff(_eff(r, ref, 'x2', 'x2'))} | "
                f"{_fmt_eff(_eff(r, ref, 'mu', 'escape_rate'))} | {' | '.join(cells)} | "
                f"{r['load']:.1f} |")
    return "\n".join(lines)


def _verdict_cells(rows, r, ref, positive):
    """'dofs / CPU' of the matching uniform P3 mesh, the two ratios and the ratios as
    numbers (lower bounds where no uniform run in reach matches)."""
    finest = max((u for u in rows["uniform"] if u["order"] == 3), key=lambda u: u["dofs"])
    nu, tu, how = _uniform_match(rows["uniform"], _true(r, ref, "x2"), ref, positive)
    if nu > 4 * finest["dofs"]:          # beyond the finest run: bounded by it
        rd, rt = finest["dofs"] / r["dofs"], finest[TIME] / r[TIME]
        return (f"> {finest['dofs']:,} / > {finest[TIME]:.1f} (h = {finest['h']:g}: neg. "
                f"mass {finest['negative_mass']:.0e})", f"> {rd:.1f} / > {rt:.2f}", rd, rt)
    rd, rt = nu / r["dofs"], tu / r[TIME]
    return f"{how} {nu:,.0f} / {tu:.1f}", f"{rd:.1f} / {rt:.2f}", rd, rt


def verdict_table(data, tol=1e-6) -> str:
    """Adaptive against uniform P3 at ``tol``: against the cheapest uniform mesh with the
    same true error, and against the cheapest one that is also positive (negative mass
    ≤ 1e-8; ≥ 3× fewer dofs asked only where the density is localised)."""
    lines = ["| case | P ≥ 1e-6 max P on | true err ⟨x²⟩ ≤ tol | eff. ⟨x²⟩ / μ in [0.5, 10] | "
             "adaptive dofs / CPU [s] | same error: uniform | ratios | ≥ 3× / ≥ 1× | … and "
             "positive: uniform | ratios | ≥ 3× (localised) / ≥ 1× |",
             "|---|---:|---|---|---|---|---|---|---|---|---|"]
    for name, rows in data["cases"].items():
        ref = rows["reference"]
        finest = max((u for u in rows["uniform"] if u["order"] == 3), key=lambda u: u["dofs"])
        frac = finest["area"]["1e-06"]
        local = frac < LOCALISED
        for r in (r for r in rows.get("adaptive", []) if r["order"] == 3 and r["tol"] == tol):
            err = _true(r, ref, "x2")
            effs = [_eff(r, ref, "x2", "x2"), _eff(r, ref, "mu", "escape_rate")]
            ok_eff = all(np.isnan(e) or 0.5 <= e <= 10 for e in effs)
            a, b, rd, rt = _verdict_cells(rows, r, ref, False)
            c, d, pd, pt = _verdict_cells(rows, r, ref, True)
            met = "yes" if rd >= 3 and rt >= 1 else "no"
            need = 3 if local else 1
            pmet = "yes" if pd >= need and pt >= 1 else "no"
            lines.append(
                f"| {name} | {frac:.0%}{'' if local else ' (not localised)'} | "
                f"{'yes' if err <= tol else 'NO'} ({err:.1e}) | "
                f"{'yes' if ok_eff else 'NO'} ({' / '.join(_fmt_eff(e) for e in effs)}) | "
                f"{r['dofs']:,} / {r[TIME]:.1f} | {a} | {b} | {met} | {c} | {d} | "
                f"{pmet}{'' if local else ' (≥ 1× dofs)'} |")
    return "\n".join(lines)


def uniform_table(data) -> str:
    lines = ["| case | P | h | dofs | CPU [s] | true err ⟨x²⟩ | eff. ⟨x²⟩ | true err μ | "
             "eff. μ | negative mass |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, rows in data["cases"].items():
        ref = rows["reference"]
        for r in sorted(rows["uniform"], key=lambda r: (r["order"], r["dofs"])):
            lines.append(
                f"| {name} | {r['order']} | {r['h']:g} | {r['dofs']:,} | {r[TIME]:.1f} | "
                f"{_true(r, ref, 'x2'):.1e} | {_fmt_eff(_eff(r, ref, 'x2', 'x2'))} | "
                f"{_fmt_err(r, ref)} | {_fmt_eff(_eff(r, ref, 'mu', 'escape_rate'))} | "
                f"{r['negative_mass']:.0e} |")
        lines.append(f"| {name} | ref. 3 | {ref['h']:g} | {ref['dofs']:,} | "
                     f"{ref[TIME]:.1f} | (est. {ref['estimate']['x2']:.0e}) | | "
                     f"(est. {ref['estimate']['escape_rate']:.0e}) | | "
                     f"{ref['negative_mass']:.0e} |")
    return "\n".join(lines)


def render(data) -> None:
    figs = figures(data)
    meta = data["meta"]
    block = (f"Measured {meta['date']} on {meta['machine']}; load average at the start "
             f"{', '.join(f'{x:.1f}' for x in meta['load'])} (the load column is per run). "
             "Times are CPU seconds of the process, all its threads (OpenBLAS runs two): "
             "the machine was shared, and wall times depended on the load of the moment "
             "(raw wall times: bench/results/adaptive.json)."
             "\n\n"
             "Adaptive against uniform P3 (tol = 1e-6 on ⟨x²⟩): ratios are uniform ÷ "
             "adaptive, dofs / CPU seconds; \"positive\": the uniform mesh must also "
             "have negative mass ≤ 1e-8, as every adaptive result has; the last column asks "
             f"≥ 3× fewer dofs only where P ≥ 1e-6 max P on less than {LOCALISED:.0%} "
             "of the disk (finest uniform P3 run), else no more dofs:\n\n" + verdict_table(data) + "\n\n"
             "All adaptive runs (from h = 0.16, goals ⟨x²⟩) against the cheapest uniform P3 "
             "mesh with the same true error (dof and CPU ratio > 1: adaptive is cheaper):\n\n"
             + table(data) + "\n\nUniform runs (effectivity of the reported estimates; the "
             "reference row gives its own estimate):\n\n" + uniform_table(data) + "\n\n"
             + "\n\n".join(f"![{f}](figures/{f})" for f in figs))
    if not replace_block(DOC, "adaptive", block):
        raise SystemExit(f"{DOC}: no bench:adaptive block")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--orders", nargs="*", type=int, default=[2, 3], choices=[2, 3])
    ap.add_argument("--quick", action="store_true",
                    help="P3, tol = 1e-6, reference h = 0.028 (a third of the time)")
    ap.add_argument("--render", action="store_true", help="only re-render from the raw JSON")
    ap.add_argument("--kinds", nargs="*", default=list(KINDS), choices=list(KINDS),
                    help="measure only these kinds of run (the saved rows of the others "
                         "are kept: e.g. re-run the adaptive runs after a change of the loop)")
    args = ap.parse_args(argv)
    if args.render:
        with open(RAW) as f:
            data = json.load(f)
    else:
        print(f"load average {os.getloadavg()}", flush=True)
        if args.quick:
            data = measure(args.cases, QUICK["orders"], QUICK["tols"], QUICK["uniform_h"],
                           QUICK["h_ref"], args.kinds)
        else:
            data = measure(args.cases, args.orders, TOLS, UNIFORM_H, H_REF, args.kinds)
    render(data)


if __name__ == "__main__":
    main()
