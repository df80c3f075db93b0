"""Refinement study of the paper's Fig. 3 problem (benchmark, not a test).

Landscape L = ½ελ0x² + ½λ(x)y² (ε=0.02, λ0=8, λ1=−2, λ2=1), disk of radius 2,
absorbing boundary, D = Δ_S H² with and without cross-diffusion,
Δ_S ∈ {0.009, 0.012}.  For each mesh family and level it solves the four cases
(two assemblies, ``Problem.solve`` for the two Δ_S) and records ⟨x²⟩, ⟨y²⟩, |x|
of the density maximum (``Solution.mode``), the x-marginal mode, μ from the
boundary outflow and from the eigen-iteration, negative mass and timings.  It
prints the tables and writes them to ``docs/fig3_refinement.md`` (raw numbers to
``bench/results/fig3_refinement.json``).

Families (each level has ~2x the dofs of the previous one, so level l+2 is the
"4x finer" run, h/2):

* ``P2``       uniform ``disk_mesh(h)``, P2 (fpsolve's default order)
* ``P2-band``  ``disk_mesh(h, band=0.75, band_levels=1)``, P2 (h/2 in |y| < 0.75)
* ``P3``       uniform ``disk_mesh(h)``, cubic Lagrange (``order=3``, on the same
               curved quadratic disk geometry as P2).  The finest P3 level is the
               reference ("best") of every table.

Usage::

    python bench/fig3_refinement.py                  # all families, ~15 min, ~7 GB peak
    python bench/fig3_refinement.py --quick          # drop the finest level of each family
    python bench/fig3_refinement.py --families P2,P3 --no-write
    python bench/fig3_refinement.py --render         # re-render the Markdown from the JSON
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
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import fpsolve as fp  # noqa: E402
from _report import machine_meta, write_report  # noqa: E402  (bench/_report.py)

DOC = os.path.join(ROOT, "docs", "fig3_refinement.md")
RAW = os.path.join(HERE, "results", "fig3_refinement.json")

CASES = [(True, 0.009), (True, 0.012), (False, 0.009), (False, 0.012)]
CASE_NAMES = {(True, 0.009): "withD12, Δ_S = 0.009", (True, 0.012): "withD12, Δ_S = 0.012",
              (False, 0.009): "noD12, Δ_S = 0.009", (False, 0.012): "noD12, Δ_S = 0.012"}
S2 = np.sqrt(2.0)
FAMILIES = {
    "P2": dict(order=2, meshes=[dict(h=round(0.05 / S2 ** k, 5)) for k in range(6)]),
    "P2-band": dict(order=2, meshes=[dict(h=round(0.1 / S2 ** k, 5), band=0.75, band_levels=1)
                                     for k in range(1, 5)]),
    "P3": dict(order=3, meshes=[dict(h=round(0.08 / S2 ** k, 5)) for k in range(5)]),
}
# recommended default (marked in the tables) and the supported-element alternative
DEFAULTS = {"P3": 0.04, "P2": 0.01768}
TIME_BUDGET = 20.0    # s, the whole four-case study at the default resolution
TOL = 1e-4            # relative agreement with the 4x finer run ("4 significant digits")


def curvature_at(sol, m, d=0.01):
    """P, ∂²P/∂x², ∂²P/∂y² at m by central differences of the FE function (step d)."""
    pts = np.array([[m[0], m[1]], [m[0] + d, m[1]], [m[0] - d, m[1]],
                    [m[0], m[1] + d], [m[0], m[1] - d]])
    v = sol(pts)
    return float(v[0]), float((v[1] - 2 * v[0] + v[2]) / d ** 2), float((v[3] - 2 * v[0] + v[4]) / d ** 2)


def run_level(family, order, mesh_kw, landscape):
    t0 = time.perf_counter()
    mesh = fp.disk_mesh(2.0, **mesh_kw)
    t_mesh = time.perf_counter() - t0
    rows = []
    for cd in (True, False):
        D = fp.diffusion.sgd(landscape, delta_s=0.009, cross_diffusion=cd)
        t0, c0 = time.perf_counter(), time.process_time()
        prob = fp.Problem(landscape, D, mesh, boundary="absorbing", order=order)
        t_asm, c_asm = time.perf_counter() - t0, time.process_time() - c0
        for ds in (0.009, 0.012):
            t0, c0 = time.perf_counter(), time.process_time()
            with warnings.catch_warnings(record=True) as wlist:
                warnings.simplefilter("always")
                sol = prob.solve(ds)
            t_solve, c_solve = time.perf_counter() - t0, time.process_time() - c0
            t0 = time.perf_counter()
            d = sol.diagnostics
            cov = sol.moments()["cov"]
            mode = sol.mode()
            marg = sol.marginal_mode("x")
            Pm, Pxx, Pyy = curvature_at(sol, mode)
            P00 = float(sol(np.array([0.0, 0.0])))
            t_obs = time.perf_counter() - t0
            rows.append(dict(
                family=family, order=order, mesh=mesh_kw, h=mesh_kw["h"], hmean=mesh.h,
                cd=cd, ds=ds, dofs=int(d["dofs"]),
                x2=float(cov[0, 0]), y2=float(cov[1, 1]),
                mode_x=float(abs(mode[0])), mode_y=float(mode[1]), marg_mode=float(abs(marg)),
                mu_flux=float(sol.escape_rate), mu_eig=float(d["escape_rate_eig"]),
                mismatch=float(d["escape_rate_mismatch"]), neg=float(d["negative_mass"]),
                min_P=float(d["min_P"]), P_mode=Pm, Pxx=Pxx, Pyy=Pyy, P00=P00,
                t_mesh=t_mesh, t_asm=t_asm, t_solve=t_solve, t_obs=t_obs,
                cpu_asm=c_asm, cpu_solve=c_solve, load=os.getloadavg()[0],
                t_fact=float(d["timings"]["factorisation_s"]),
                warnings=[str(w.message)[:60] for w in wlist]))
            r = rows[-1]
            print(f"{family:8s} h={r['h']:<8g} {CASE_NAMES[(cd, ds)]:22s} dofs={r['dofs']:>7d} "
                  f"<x2>={r['x2']:.7f} |x|max={r['mode_x']:.5f} marg={r['marg_mode']:.5f} "
                  f"mu={r['mu_flux']:.6e} neg={r['neg']:.1e} solve={t_solve:.2f}s", flush=True)
    return rows


# ---------------------------------------------------------------------------- analysis

def _fmt(v, f):
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, f)


def _rel(a, b):
    return abs(a - b) / abs(b) if b != 0 else float("nan")


def by_case(rows, fam):
    out = {}
    for c in CASES:
        rs = [r for r in rows if r["family"] == fam and (r["cd"], r["ds"]) == c]
        out[c] = sorted(rs, key=lambda r: r["dofs"])
    return out


def study_time(rows, fam, h, cpu=False):
    """Assembly (twice) + four solves at one level (wall or CPU seconds)."""
    rs = [r for r in rows if r["family"] == fam and r["h"] == h]
    if len(rs) != 4:
        return None
    a, s = ("cpu_asm", "cpu_solve") if cpu else ("t_asm", "t_solve")
    asm = sum({r["cd"]: r.get(a, np.nan) for r in rs}.values())
    return asm + sum(r.get(s, np.nan) for r in rs)


def reference(rows):
    """Best values per case: the finest P3 level if present, else the finest level overall."""
    ref = {}
    for c in CASES:
        rs = [r for r in rows if (r["cd"], r["ds"]) == c]
        p3 = [r for r in rs if r["family"] == "P3"]
        pool = p3 if p3 else rs
        ref[c] = max(pool, key=lambda r: (r["order"], r["dofs"]))
    return ref


def candidate_table(rows, ref):
    """One line per level: the targets evaluated against the 4x finer level of the family."""
    cd12, nd12 = (True, 0.012), (False, 0.012)
    lines = ["| family | h | dofs | 4-case time (s) | 4-case CPU (s) | load | max neg. mass | "
             "max rel. Δ⟨x²⟩ vs h/2 | max rel. Δμ vs h/2 | max rel. err μ vs best | "
             "rel. Δ\\|x\\|max vs h/2, withD12 0.012 | rel. Δ\\|x\\|max vs h/2, noD12 0.012 | "
             "max \\|x\\|max at Δ_S = 0.009 (exact: 0) | max rel. Δ x-marg. mode vs h/2 (Δ_S = 0.012) | "
             "meets neg., ⟨x²⟩, μ, withD12 mode, time |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"]
    for fam in FAMILIES:
        cases = by_case(rows, fam)
        if not cases[CASES[0]]:
            continue
        levels = [r["h"] for r in cases[CASES[0]]]
        for i, h in enumerate(levels):
            tt = study_time(rows, fam, h)
            tc = study_time(rows, fam, h, cpu=True)
            load = max(cases[c][i].get("load", np.nan) for c in CASES)
            neg = max(cases[c][i]["neg"] for c in CASES)
            errmu = max(_rel(cases[c][i]["mu_flux"], ref[c]["mu_flux"]) for c in CASES)
            mode0 = max(cases[c][i]["mode_x"] for c in CASES if c[1] == 0.009)
            if i + 2 < len(levels):
                dx2 = max(_rel(cases[c][i]["x2"], cases[c][i + 2]["x2"]) for c in CASES)
                dmu = max(_rel(cases[c][i]["mu_flux"], cases[c][i + 2]["mu_flux"]) for c in CASES)
                dm_cd = _rel(cases[cd12][i]["mode_x"], cases[cd12][i + 2]["mode_x"])
                dm_nd = _rel(cases[nd12][i]["mode_x"], cases[nd12][i + 2]["mode_x"])
                dmarg = max(_rel(cases[c][i]["marg_mode"], cases[c][i + 2]["marg_mode"])
                            for c in (cd12, nd12))
                ok = (neg <= 1e-6 and dx2 <= TOL and dmu <= TOL and errmu <= TOL
                      and dm_cd <= TOL and tt is not None and min(tt, np.nan_to_num(tc, nan=np.inf)) <= TIME_BUDGET)
                okc = "**yes**" if ok else "no"
            else:
                dx2 = dmu = dm_cd = dm_nd = dmarg = None
                okc = "(no h/2 run)"
            mark = " **(default)**" if DEFAULTS.get(fam) == h else ""
            lines.append(f"| {fam} | {h:g}{mark} | {cases[CASES[0]][i]['dofs']} | {_fmt(tt, '.1f')} | "
                         f"{_fmt(tc, '.1f')} | {load:.1f} | {neg:.1e} | {_fmt(dx2, '.1e')} | "
                         f"{_fmt(dmu, '.1e')} | {errmu:.1e} | {_fmt(dm_cd, '.1e')} | {_fmt(dm_nd, '.1e')} | "
                         f"{mode0:.1e} | {_fmt(dmarg, '.1e')} | {okc} |")
    return lines


def case_tables(rows, ref):
    lines = []
    for c in CASES:
        rc = ref[c]
        lines += [f"### {CASE_NAMES[c]}", "",
                  f"Best values (finest {rc['family']} level, {rc['dofs']} dofs): ⟨x²⟩ = {rc['x2']:.7f}, "
                  f"⟨y²⟩ = {rc['y2']:.6f}, |x|max = {rc['mode_x']:.5f}, x-marginal mode = "
                  f"{rc['marg_mode']:.5f}, μ = {rc['mu_flux']:.6e}.", "",
                  "| family | lvl | h | dofs | ⟨x²⟩ | ⟨y²⟩ | \\|x\\| of max | x-marg. mode | μ (flux) | μ (eig) | "
                  "eig/flux | neg. mass | solve s | CPU s |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        conv = ["", "Convergence: differences to the next level (×2 dofs) and agreement with the 4× finer "
                "level (h/2) as significant digits, −log10(rel. difference); \\|x\\| of max and the "
                "marginal mode as absolute differences (their exact value is 0 at Δ_S = 0.009). "
                "p = observed order in h from three successive levels.", "",
                "| family | h | Δ⟨x²⟩ (rel) | digits ⟨x²⟩ | p(⟨x²⟩) | Δ\\|x\\|max | Δ marg. mode | Δμ (rel) | "
                "digits μ | p(μ) |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for fam in FAMILIES:
            rs = by_case(rows, fam)[c]
            for i, r in enumerate(rs):
                mark = "*" if DEFAULTS.get(fam) == r["h"] else ""
                lines.append(
                    f"| {fam} | {i} | {r['h']:g}{mark} | {r['dofs']} | {r['x2']:.7f} | {r['y2']:.6f} | "
                    f"{r['mode_x']:.5f} | {r['marg_mode']:.5f} | {r['mu_flux']:.6e} | {r['mu_eig']:.6e} | "
                    f"{r['mismatch']:.0e} | {r['neg']:.1e} | {r['t_solve']:.2f} | {r.get('cpu_solve', np.nan):.2f} |")
                nxt = rs[i + 1] if i + 1 < len(rs) else None
                fin = rs[i + 2] if i + 2 < len(rs) else None
                prv = rs[i - 1] if i >= 1 else None

                def order(key):
                    if prv is None or nxt is None:
                        return None
                    a, b = abs(r[key] - prv[key]), abs(nxt[key] - r[key])
                    return np.log(a / b) / np.log(S2) if a > 0 and b > 0 else None

                def digits(key):
                    if fin is None:
                        return None
                    rel = _rel(r[key], fin[key])
                    return -np.log10(rel) if rel > 0 else 16.0
                conv.append(
                    f"| {fam} | {r['h']:g}{mark} | "
                    f"{_fmt(_rel(r['x2'], nxt['x2']) if nxt else None, '.1e')} | {_fmt(digits('x2'), '.1f')} | "
                    f"{_fmt(order('x2'), '.1f')} | "
                    f"{_fmt(abs(r['mode_x'] - nxt['mode_x']) if nxt else None, '.1e')} | "
                    f"{_fmt(abs(r['marg_mode'] - nxt['marg_mode']) if nxt else None, '.1e')} | "
                    f"{_fmt(_rel(r['mu_flux'], nxt['mu_flux']) if nxt else None, '.1e')} | "
                    f"{_fmt(digits('mu_flux'), '.1f')} | {_fmt(order('mu_flux'), '.1f')} |")
        lines += conv + [""]
    return lines


def mode_conditioning(ref):
    lines = ["| case | \\|x\\| of max | P(max) | ∂²P/∂x² | ∂²P/∂y² | (∂²P/∂x²)/P | "
             "shift for a 1e-4 rel. change of P | P(0,0)/P(max) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in CASES:
        r = ref[c]
        shift = np.sqrt(2e-4 * r["P_mode"] / abs(r["Pxx"]))
        lines.append(f"| {CASE_NAMES[c]} | {r['mode_x']:.5f} | {r['P_mode']:.4f} | {r['Pxx']:.1f} | "
                     f"{r['Pyy']:.1f} | {r['Pxx'] / r['P_mode']:.1f} | {shift:.1e} | "
                     f"{r['P00'] / r['P_mode']:.3f} |")
    return lines


# ---------------------------------------------------------------------------- extras

def _refined_where(mesh, pred):
    """One red-green-blue refinement of the elements whose centroid satisfies pred(x, y)."""
    from fpsolve.fe.mesh import Mesh, _snap
    m = mesh.skfem
    mid = m.p[:, m.t].mean(axis=1)
    m = _snap(m.refined(np.flatnonzero(pred(mid[0], mid[1]))), mesh.radius, mesh.center)
    m = _snap(m.smoothed(), mesh.radius, mesh.center)
    return Mesh(m, mesh.radius, mesh.center, "refined")


def run_extras(landscape):
    """Side studies: P1 and SUPG, where negative mass and outflow sit, which region sets μ."""
    ex = {"variants": [], "negative": [], "outflow": [], "regions": []}
    # P1 and SUPG at comparable dofs
    for label, order, stab, h in (("P1", 1, None, 0.0125), ("P1", 1, None, 0.00884),
                                  ("P1+SUPG", 1, "supg", 0.0125), ("P2+SUPG", 2, "supg", 0.025)):
        mesh = fp.disk_mesh(2.0, h)
        for cd, ds in CASES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sol = fp.solve(landscape, fp.diffusion.sgd(landscape, ds, cross_diffusion=cd), mesh,
                               order=order, stabilisation=stab)
            ex["variants"].append(dict(label=label, h=h, cd=cd, ds=ds, dofs=int(sol.P.size),
                                       x2=float(sol.moments()["cov"][0, 0]),
                                       mu=float(sol.escape_rate),
                                       neg=float(sol.diagnostics["negative_mass"])))
            print("extras", ex["variants"][-1], flush=True)
    # where the negative mass (coarse P2) and the boundary outflow (fine P2) are
    for h, key in ((0.035, "negative"), (0.025, "outflow")):
        mesh = fp.disk_mesh(2.0, h)
        for cd, ds in CASES:
            D = fp.diffusion.sgd(landscape, ds, cross_diffusion=cd)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prob = fp.Problem(landscape, D, mesh, order=2)
                sol = prob.solve()
            if key == "negative":
                x, y, Pq, dx = sol._quadrature()
                neg = np.maximum(-Pq, 0.0) * dx
                tot = neg.sum()
                i = np.argmax(neg)
                band = (np.abs(y) < 0.15)
                H = landscape.hessian(x, y)
                det = H[0, 0] * H[1, 1] - H[0, 1] ** 2
                ax = np.abs(x).ravel()
                order_ = np.argsort(ax)
                cum = np.cumsum(neg.ravel()[order_]) / tot if tot > 0 else None
                x05, x95 = ((float(ax[order_][np.searchsorted(cum, 0.05)]),
                             float(ax[order_][np.searchsorted(cum, 0.95)])) if tot > 0 else (np.nan, np.nan))
                ex["negative"].append(dict(cd=cd, ds=ds, neg=float(tot / np.sum(np.abs(Pq) * dx)),
                                           frac_y015=float(neg[band].sum() / tot) if tot > 0 else np.nan,
                                           frac_detneg=float(neg[det < 0].sum() / tot) if tot > 0 else np.nan,
                                           mass_detneg=float(np.sum(np.maximum(Pq, 0) * dx * (det < 0))),
                                           x05=x05, x95=x95,
                                           x_at_max=float(abs(x.ravel()[i])) if tot > 0 else np.nan,
                                           y_at_max=float(abs(y.ravel()[i])) if tot > 0 else np.nan))
            else:
                AP = prob.operator.A(ds) @ sol.P
                B = prob.boundary_dofs
                bx, by = prob.basis.doflocs[:, B]
                th = np.degrees(np.arctan2(np.abs(by), np.abs(bx)))
                f = -AP[B]
                ex["outflow"].append(dict(cd=cd, ds=ds, **{f"{a}-{a + 30}": float(f[(th >= a) & (th < a + 30)].sum() / f.sum())
                                                          for a in (0, 30, 60)}))
    # which region sets μ: one extra refinement of part of the h = 0.025 mesh
    base = fp.disk_mesh(2.0, 0.025)
    regions = {"none": None, "band \\|y\\| < 0.75": lambda x, y: np.abs(y) < 0.75,
               "strip \\|x\\| < 0.6": lambda x, y: np.abs(x) < 0.6,
               "outside the band, \\|y\\| > 0.75": lambda x, y: np.abs(y) > 0.75,
               "annulus r > 1.2": lambda x, y: np.hypot(x, y) > 1.2}
    for name, pred in regions.items():
        mesh = base if pred is None else _refined_where(base, pred)
        for cd in (True, False):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prob = fp.Problem(landscape, fp.diffusion.sgd(landscape, 0.009, cross_diffusion=cd), mesh, order=2)
                for ds in (0.009, 0.012):
                    sol = prob.solve(ds)
                    ex["regions"].append(dict(region=name, cd=cd, ds=ds, dofs=int(prob.dofs),
                                              x2=float(sol.moments()["cov"][0, 0]),
                                              mu=float(sol.escape_rate)))
        print("extras region", name, flush=True)
    return ex


def render_extras(ex, ref):
    out = ["## Side studies", "",
           "### P1 and SUPG", "",
           "Relative errors against the best values above.", "",
           "| variant | h | dofs | case | ⟨x²⟩ rel. err | μ rel. err | neg. mass |",
           "|---|---:|---:|---|---:|---:|---:|"]
    for v in ex["variants"]:
        r = ref[(v["cd"], v["ds"])]
        out.append(f"| {v['label']} | {v['h']:g} | {v['dofs']} | {CASE_NAMES[(v['cd'], v['ds'])]} | "
                   f"{_rel(v['x2'], r['x2']):.1e} | {_rel(v['mu'], r['mu_flux']):.1e} | {v['neg']:.1e} |")
    out += ["", "### Where the negative mass sits (P2, h = 0.035)", "",
            "| case | neg. mass | share within \\|y\\| < 0.15 | \\|x\\| range of 90 % of it | "
            "share where det H < 0 | probability in det H < 0 | \\|x\\|, \\|y\\| of the most negative cell |",
            "|---|---:|---:|---|---:|---:|---|"]
    for v in ex["negative"]:
        xr = (_fmt(v["x05"], ".2f") + "–" + _fmt(v["x95"], ".2f")) if np.isfinite(v["x05"]) else "–"
        out.append(f"| {CASE_NAMES[(v['cd'], v['ds'])]} | {v['neg']:.1e} | {_fmt(v['frac_y015'], '.0%')} | "
                   f"{xr} | {_fmt(v['frac_detneg'], '.0%')} | "
                   f"{v['mass_detneg']:.2f} | {_fmt(v['x_at_max'], '.2f')}, {_fmt(v['y_at_max'], '.2f')} |")
    out += ["", "### Where the probability leaves (P2, h = 0.025)", "",
            "Share of the boundary outflow by polar angle θ, folded into the first quadrant "
            "(θ = 90°: top and bottom of the disk).", "",
            "| case | θ 0–30° | θ 30–60° | θ 60–90° |", "|---|---:|---:|---:|"]
    for v in ex["outflow"]:
        out.append(f"| {CASE_NAMES[(v['cd'], v['ds'])]} | {v['0-30']:.3f} | {v['30-60']:.3f} | {v['60-90']:.3f} |")
    out += ["", "### Which region sets ⟨x²⟩ and μ (P2, h = 0.025 plus one refinement of a region)", "",
            "| refined region | dofs | case | ⟨x²⟩ rel. err | μ rel. err |", "|---|---:|---|---:|---:|"]
    for v in ex["regions"]:
        r = ref[(v["cd"], v["ds"])]
        out.append(f"| {v['region']} | {v['dofs']} | {CASE_NAMES[(v['cd'], v['ds'])]} | "
                   f"{_rel(v['x2'], r['x2']):.1e} | {_rel(v['mu'], r['mu_flux']):.1e} |")
    return out + [""]


def level_summary(rows, ref, fam, h):
    """Target quantities of one level (None where the h/2 level is missing)."""
    cases = by_case(rows, fam)
    levels = [r["h"] for r in cases[CASES[0]]]
    if h not in levels:
        return None
    i = levels.index(h)
    out = dict(fam=fam, h=h, dofs=cases[CASES[0]][i]["dofs"], time=study_time(rows, fam, h),
               cpu=study_time(rows, fam, h, cpu=True),
               neg=max(cases[c][i]["neg"] for c in CASES),
               errmu=max(_rel(cases[c][i]["mu_flux"], ref[c]["mu_flux"]) for c in CASES),
               errx2=max(_rel(cases[c][i]["x2"], ref[c]["x2"]) for c in CASES),
               mode0=max(cases[c][i]["mode_x"] for c in CASES if c[1] == 0.009))
    if i + 2 < len(levels):
        out.update(dx2=max(_rel(cases[c][i]["x2"], cases[c][i + 2]["x2"]) for c in CASES),
                   dmu=max(_rel(cases[c][i]["mu_flux"], cases[c][i + 2]["mu_flux"]) for c in CASES),
                   dm_cd=_rel(cases[(True, 0.012)][i]["mode_x"], cases[(True, 0.012)][i + 2]["mode_x"]),
                   dm_nd=_rel(cases[(False, 0.012)][i]["mode_x"], cases[(False, 0.012)][i + 2]["mode_x"]),
                   dmarg=max(_rel(cases[c][i]["marg_mode"], cases[c][i + 2]["marg_mode"])
                             for c in ((True, 0.012), (False, 0.012))))
    return out


def findings(rows, ref):
    out = ["## Findings", ""]
    p3 = level_summary(rows, ref, "P3", DEFAULTS["P3"])
    p2 = level_summary(rows, ref, "P2", DEFAULTS["P2"])
    if p3 and "dx2" in p3:
        out.append(
            f"* **Recommended default: P3 on `disk_mesh(2.0, h={p3['h']:g})`** ({p3['dofs']} dofs): the four "
            f"cases take {p3['time']:.1f} s wall ({p3['cpu']:.1f} s CPU); negative mass ≤ {p3['neg']:.0e}; "
            f"against the h/2 run ⟨x²⟩ agrees to {p3['dx2']:.0e}, μ to {p3['dmu']:.0e} (against the best "
            f"values: {p3['errmu']:.0e}), \\|x\\| of the maximum at Δ_S = 0.012 with D12 to "
            f"{p3['dm_cd']:.0e} (relative).")
    if p2 and "dx2" in p2:
        out.append(
            f"* **With P2 (fpsolve's default order), `disk_mesh(2.0, h={p2['h']:g})`** ({p2['dofs']} "
            f"dofs) is the best choice within the time budget: {p2['time']:.1f} s wall "
            f"({p2['cpu']:.1f} s CPU), negative mass ≤ {p2['neg']:.0e}, ⟨x²⟩ agrees with h/2 to "
            f"{p2['dx2']:.0e}, but μ only to {p2['dmu']:.0e} ({p2['errmu']:.0e} from the best values, "
            f"3 significant digits) and \\|x\\| of the maximum to {p2['dm_cd']:.0e} (withD12) / "
            f"{p2['dm_nd']:.0e} (noD12).")
    p3rows = by_case(rows, "P3")[CASES[0]]
    if len(p3rows) > 3:
        out.append("* P3 cost per level (four cases: "
                   + ", ".join(f"{r['dofs'] // 1000}k dofs {study_time(rows, 'P3', r['h']):.0f} s"
                               for r in p3rows)
                   + "). With SuperLU's minimum-degree ordering P3 factorisations grew much "
                   "faster than N^1.5 (127 s for the four cases at 326k dofs in an earlier run); "
                   "the solver now orders P3 matrices by METIS nested dissection when `pymetis` "
                   "is installed (docs/ordering.md), which is what these times show.")
    ok = [level_summary(rows, ref, "P2", r["h"]) for r in by_case(rows, "P2")[CASES[0]]]
    ok = [o for o in ok if o and o["errmu"] <= TOL]
    if ok:
        o = ok[0]
        out.append(f"* P2 reaches μ within {TOL:g} of the best values only at h = {o['h']:g} "
                   f"({o['dofs']} dofs, {o['time']:.0f} s wall / {o['cpu']:.0f} s CPU for the four cases).")
    out += [
        "* Band grading (`band=0.75`) resolves what lives in the band — ⟨x²⟩, the modes and the "
        "negative mass converge as on the uniform mesh with the band's h — but not μ, which is set "
        "by the resolution along the escape path outside the band (side study below: refining the "
        "strip \\|x\\| < 0.6 fixes μ with D12, refining the band does not).",
        "* The hard part is not the degenerate curves det H = 0 but a steep front in x: along the "
        "valley the density falls by ~1e-8 between \\|x\\| ≈ 0.4 and 0.9, and the front is much "
        "steeper with D12 than without (which is why the withD12 cases need the resolution). The "
        "coarse-mesh negative mass sits in a narrow \\|x\\| stripe just outside the front, spread over "
        "\\|y\\| < 0.6 and concentrated at small \\|y\\|, with only a small share in det H < 0 although "
        "that region holds ~0.3 of the probability (side study). μ needs the Gaussian tails in y up "
        "to the boundary (θ ≈ 60–90° carries the outflow with D12).",
        "* SUPG does not help: P1+SUPG keeps the P1 negative mass (the undershoots are where "
        "β = ∇L + ∇·D nearly cancels, so τ is small), P2+SUPG has the Galerkin negative mass but "
        "⟨x²⟩ and μ far off (the dropped second-order residual is an O(h) inconsistency). P1 is "
        "orders of magnitude worse than P2 at equal dofs.",
        "* μ from the eigen-iteration drowns in round-off on fine meshes (eig/flux mismatch up to "
        "~1e-3 relative for μ ≈ 6e-11, i.e. an absolute difference of 1e-14–4e-14, below the "
        "eigenvalue's round-off floor 10·ε·‖A‖ ≈ 1e-13–4e-13 that the solver applies before it "
        "warns, so it does not warn; re-checked at P2 h = 0.0177 and P3 h = 0.04, 0.028); μ from the boundary "
        "outflow converges smoothly at the expected rates (p ≈ 4 for P2, ≈ 6 for P3).",
        "* The density maximum is the least well-conditioned observable: the argmax of the FE "
        "function moves by |∇(P_h − P)| / |∂²P/∂x²|, i.e. with the pointwise gradient error, and "
        "with P2 it scatters by ~1e-4 between levels up to 372k dofs. At Δ_S = 0.009 it is x = 0 by symmetry; the "
        "search returns up to ~3e-4 because P_h has gradient kinks at the mesh vertex at the "
        "origin (P varies by < 1e-5 relative over that distance). Without D12 at Δ_S = 0.012 the "
        "maximum is intrinsically flat (dip P(0,0)/P(max) = 0.97, see the conditioning table): a "
        "1e-4 relative change of P can move it by ~6e-3, so 4 significant digits would need P to "
        "~1e-8. The x-marginal mode (an integral of P) is better conditioned"
        + (f": against h/2 it moves by ≤ {p2['dmarg']:.0e} (P2 default) and ≤ {p3['dmarg']:.0e} "
           "(P3 default), relative." if p2 and p3 and "dmarg" in p2 and "dmarg" in p3 else "."),
        ""]
    return out


def render(data):
    rows, meta = data["rows"], data["meta"]
    ref = reference(rows)
    out = ["# Fig. 3 refinement study", "",
           f"Generated by `python bench/fig3_refinement.py{meta.get('args', '')}` on {meta['date']} "
           f"({meta['machine']}; Python {meta['python']}, scikit-fem {meta['skfem']}, "
           f"SciPy {meta['scipy']}); raw numbers in `bench/results/fig3_refinement.json` (git-ignored; `--render` re-renders this page from it).", "",
           "Problem: the paper's landscape (ε = 0.02, λ0 = 8, λ1 = −2, λ2 = 1), disk of radius 2, "
           "absorbing boundary, D = Δ_S H² with (withD12) and without (noD12) cross-diffusion. "
           "Every level solves the four cases with two assemblies (`Problem`, one per noise model) and "
           "`Problem.solve(Δ_S)`; *solve s* is the wall time of `solve` (LU factorisation, inverse "
           "iteration, diagnostics), the *4-case time* adds the two assemblies. Observables (mode, "
           "marginal mode) are not included. Families: `P2` uniform `disk_mesh(h)`; `P2-band` "
           "`disk_mesh(h, band=0.75, band_levels=1)` (h/2 inside |y| < 0.75); `P3` uniform "
           "`disk_mesh(h)` with cubic elements (`order=3`). Successive levels differ by √2 in h (2× dofs), so level l+2 "
           "is the 4× finer (h/2) run. `*` marks the default resolution of each family.", "",
           "## Targets per level", "",
           f"Targets: negative mass ≤ 1e-6; ⟨x²⟩, μ and \\|x\\| of the maximum agree with the h/2 run to "
           f"{TOL:g} relative (for \\|x\\|max: {TOL:g}·0.37 absolute); μ within {TOL:g} of the best value; "
           f"4-case time ≤ {TIME_BUDGET:g} s. Maxima over the four cases. The machine is shared: *load* is "
           "the 1-minute load average during the level (2 cores); when it exceeds 2 the wall times are "
           "inflated and the CPU times (process time; assembly runs 2 threads, the LU one) are the "
           "better measure; the time target counts as met if either is within the budget.", ""]
    out += candidate_table(rows, ref)
    out += [""] + findings(rows, ref)
    out += ["", "## Conditioning of the density maximum", "",
            "At the best level: curvature of P at its maximum (central differences, step 0.01) and the "
            "distance ``sqrt(2e-4 P/|∂²P/∂x²|)`` over which P stays within 1e-4 (relative) of its "
            "maximum along x, i.e. how far a 1e-4 relative perturbation of P can move the "
            "maximum. P(0,0)/P(max) < 1 measures the depth of the dip between the two maxima.", ""]
    out += mode_conditioning(ref)
    out += ["", "## Refinement tables per case", ""]
    out += case_tables(rows, ref)
    if data.get("extras"):
        out += render_extras(data["extras"], ref)
    if meta.get("notes"):
        out += ["## Notes", ""] + meta["notes"]
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated: " + ",".join(FAMILIES))
    ap.add_argument("--quick", action="store_true", help="drop the finest level of each family")
    ap.add_argument("--levels", type=int, default=None, help="only the first N levels (smoke test)")
    ap.add_argument("--no-extras", action="store_true", help="skip the side studies (P1, SUPG, regions)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--render", action="store_true", help="re-render docs from the JSON, no solves")
    args = ap.parse_args(argv)
    if args.render:
        with open(RAW) as f:
            data = json.load(f)
        text = render(data)
        print(text)
        write_report(DOC, text)
        return
    L = fp.landscapes.paper(eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)
    rows = []
    for fam in args.families.split(","):
        spec = FAMILIES[fam]
        meshes = spec["meshes"][:-1] if args.quick else spec["meshes"]
        meshes = meshes[:args.levels] if args.levels else meshes
        for mk in meshes:
            rows += run_level(fam, spec["order"], mk, L)
    flags = "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    meta = machine_meta(args=flags)
    data = dict(meta=meta, rows=rows)
    if not args.no_extras:
        data["extras"] = run_extras(L)
    text = render(data)
    print(text)
    if not args.no_write:
        write_report(DOC, text, RAW, data)

if __name__ == "__main__":
    main()
