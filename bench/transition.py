"""Phase I → II transition of the Fig. 3 landscape: FE Δ_S* under refinement vs theory.

Writes the tables between the ``bench:transition`` markers of docs/transition.md and
the figures docs/figures/transition_xss.png and docs/figures/transition_lsgd.png.

Usage::

    python bench/transition.py              # ≈ 3 min on 2 cores
    python bench/transition.py --quick      # two coarse levels, a few points (≈ 40 s)
    python bench/transition.py --eps-study  # adds Δ_S* at ε = 0.01 (band-refined mesh, +2 min)
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

import fpsolve as fp
from _report import replace_block  # noqa: E402  (bench/_report.py)
from fpsolve.fe import transition as tr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "transition.md")
FIG = os.path.join(ROOT, "docs", "figures")
FIG3 = dict(eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)


def levels_study(L, hs, bracket, xtol):
    """Δ_S* on each mesh, with and without cross-diffusion; keeps the finest problems."""
    rows, finest = [], {}
    for cross in (True, False):
        for h in hs:
            mesh = fp.disk_mesh(2.0, h)
            t0 = time.perf_counter()
            prob = fp.Problem(L, fp.diffusion.sgd(L, bracket[0], cross_diffusion=cross), mesh)
            lv = tr.locate_transition(prob, bracket, xtol=xtol)
            rows.append({"cross": cross, "h_target": h, "level": lv,
                         "seconds": time.perf_counter() - t0})
            print(f"  cross={cross!s:5} h={lv.h:.4f} dofs={lv.dofs:6d} Δ_S*={lv.value:.7f} "
                  f"solves={lv.nsolves:2d} neg.mass={lv.negative_mass:.1e} "
                  f"d-sens={lv.d_sensitivity:.1e} {rows[-1]['seconds']:.0f}s", flush=True)
            finest[cross] = prob
    return rows, finest


def summarise(rows, cross):
    """Finest value, uncertainty |fine − previous| + d-sensitivity, observed order, Richardson."""
    lv = [r["level"] for r in rows if r["cross"] is cross]
    v = np.array([x.value for x in lv])
    h = np.array([x.h for x in lv])
    out = {"value": v[-1], "uncertainty": abs(v[-1] - v[-2]) + lv[-1].d_sensitivity,
           "order": np.nan, "richardson": np.nan}
    if len(v) >= 3 and (v[-3] - v[-2]) * (v[-2] - v[-1]) > 0:
        r1, r2 = h[-3] / h[-2], h[-2] / h[-1]
        p = np.log(abs(v[-3] - v[-2]) / abs(v[-2] - v[-1])) / np.log(np.sqrt(r1 * r2))
        out["order"] = p
        out["richardson"] = v[-1] + (v[-1] - v[-2]) / (r2 ** p - 1)
    return out


def plot_xss(curves, rows, L, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dstar = fp.theory.critical_delta_s(L)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.3))
    ds = curves[True]["delta_s"]
    fine = np.linspace(ds.min(), ds.max(), 61)
    s42 = [fp.theory.adiabatic(L, s).x_ss_s42() for s in fine]
    ax.plot(fine, s42, ":", color="0.4", label="S42 (Landau expansion)")
    for form, style, what in (("paper", "-", "S30 marginal (paper)"),
                              ("fpe", "--", "S29 zero-flux marginal")):
        ax.plot(fine, [fp.theory.adiabatic(L, s, form=form).x_ss for s in fine], style,
                color="C0", label=f"theory, {what}")
    ax.plot(ds, curves[True]["fe"], "o-", color="C3", label="FE, cross-diffusion")
    ax.plot(ds, curves[False]["fe"], "s-", color="C2", label="FE, no cross-diffusion")
    ax.axvline(dstar, color="C0", lw=0.8)
    ax.set_xlabel(r"$\Delta_S$")
    ax.set_ylabel(r"$|x_{ss}|$ (mode of the $x$-marginal)")
    ax.set_title(r"Steady-state solution, $\varepsilon=0.02,\ \lambda=(8,-2,1)$")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    for cross, color, mark in ((True, "C3", "o"), (False, "C2", "s")):
        lv = [r["level"] for r in rows if r["cross"] is cross][-1]
        hist = np.array(sorted(lv.history))
        bx.plot(hist[:, 0], hist[:, 1], mark + "-", color=color, ms=4,
                label=f"FE {'with' if cross else 'without'} cross-diffusion, "
                      f"$\\Delta_S^*$ = {lv.value:.5f}")
        bx.axvline(lv.value, color=color, lw=0.8)
    th = [fp.theory.adiabatic(L, s).curvature() for s in fine]
    bx.plot(fine, -np.array(th), "-", color="C0", label=r"theory (S30): $-\Phi''(0)$")
    bx.axhline(0, color="k", lw=0.6)
    bx.axvline(dstar, color="C0", lw=0.8)
    bx.set_xlabel(r"$\Delta_S$")
    bx.set_ylabel(r"$P''(0)/P(0)$ of the $x$-marginal")
    bx.set_title("Curvature at x = 0 (root = transition)")
    bx.set_ylim(-60, 40)
    bx.legend(fontsize=8, loc="lower right")
    bx.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_lsgd(profiles, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(profiles), figsize=(11, 4.3), sharey=True)
    for ax, (ds, prof) in zip(np.atleast_1d(axes), profiles.items()):
        x = prof[True]["x"]
        ax.plot(x, prof[True]["eq10"], "-", color="C0", lw=2, label="Eq. 10 (exact integral)")
        ax.plot(x, prof[True]["eq11"], ":", color="C1", lw=2, label="Eq. 11 (constant κ, Δ)")
        ax.plot(x, prof[True]["fe"], "-", color="C3", label="FE, cross-diffusion")
        ax.plot(x, prof[False]["fe"], "--", color="C2", label="FE, no cross-diffusion")
        ax.set_title(rf"$\Delta_S = {ds}$")
        ax.set_xlabel("x")
        ax.set_ylim(-1.5, 8)
        ax.axhline(0, color="k", lw=0.5)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel(r"$L_{SGD}(x) - L_{SGD}(0)$")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=9)
    fig.suptitle(r"$L_{SGD}$ from the FE marginal vs the adiabatic theory "
                 r"($-\Delta(x)\ln P(x)$ convention of Eq. 10; FE masked where "
                 r"$P < 10^{-4}\max P$)", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_block(name, text):
    """Replace the text between the ``bench:<name>`` markers of docs/transition.md."""
    if not replace_block(DOC, name, text.rstrip()):
        raise SystemExit(f"{DOC}: marker <!-- bench:{name}:begin --> not found")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="two coarse levels, fewer points")
    ap.add_argument("--eps-study", action="store_true", help="also Δ_S* at ε = 0.01")
    ap.add_argument("--no-write", action="store_true", help="print only, leave docs/ alone")
    args = ap.parse_args()
    warnings.simplefilter("ignore", fp.FPSolveWarning)    # negative mass is tabulated instead
    t_start = time.perf_counter()
    L = fp.landscapes.paper(**FIG3)
    hs = (0.08, 0.057) if args.quick else (0.05, 0.035, 0.025)
    print(f"Δ_S* on {len(hs)} mesh levels (P2, disk R = 2, absorbing)")
    rows, finest = levels_study(L, hs, (0.009, 0.013), 1e-7)
    th_paper = fp.theory.critical_delta_s(L)
    th_fpe = fp.theory.critical_delta_s(L, form="fpe")
    s = {c: summarise(rows, c) for c in (True, False)}

    lines = ["| method | Δ_S* | uncertainty | (Δ_S* − 0.01)/0.01 |", "| --- | --- | --- | --- |",
             f"| adiabatic theory, S30 marginal (paper; = −ε/λ1) | {th_paper:.6f} | exact | 0 |",
             f"| adiabatic theory, S29 zero-flux marginal (`form=\"fpe\"`) | {th_fpe:.6f} | "
             f"exact | {th_fpe / th_paper - 1:+.1%} |"]
    for cross in (True, False):
        v = s[cross]
        lines.append(f"| FE P2, {'with' if cross else 'without'} cross-diffusion "
                     f"(h = {hs[-1]:g}) | {v['value']:.6f} | ± {v['uncertainty']:.1e} | "
                     f"{v['value'] / th_paper - 1:+.1%} |")
    lines += ["", "Mesh levels (each: one assembly, Brent on c(Δ_S) = P''(0)/P(0), "
              "xtol = 1e-7):", "",
              "| cross-diffusion | h (mean edge) | dofs | Δ_S* | solves | d-sensitivity | "
              "max negative mass | time |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lv = r["level"]
        lines.append(f"| {'yes' if r['cross'] else 'no'} | {lv.h:.4f} | {lv.dofs} | "
                     f"{lv.value:.7f} | {lv.nsolves} | {lv.d_sensitivity:.1e} | "
                     f"{lv.negative_mass:.1e} | {r['seconds']:.0f} s |")
    if not args.quick:
        lines += ["", "Observed order p of Δ_S* in h and the Richardson extrapolation "
                  "Δ_S*(h→0) = v3 + (v3 − v2)/(r^p − 1):", ""]
        for cross in (True, False):
            v = s[cross]
            lines.append(f"* {'with' if cross else 'without'} cross-diffusion: p = "
                         f"{v['order']:.2f}, extrapolated Δ_S* = {v['richardson']:.7f}")

    # x_ss(Δ_S) curves
    grid = np.linspace(0.008, 0.014, 7 if args.quick else 13)
    xmesh = fp.disk_mesh(2.0, hs[0] if args.quick else 0.035)
    print(f"x_ss curves on {xmesh}")
    curves = {c: tr.x_ss_curve(L, grid, cross_diffusion=c, mesh=xmesh) for c in (True, False)}
    lines += ["", f"x_ss(Δ_S) (|mode| of the x-marginal; FE on h = {xmesh.h:.3f}):", "",
              "| Δ_S | FE, cross | FE, no cross | theory S30 | theory S29 (fpe) | S42 |",
              "| --- | --- | --- | --- | --- | --- |"]
    for i, ds in enumerate(grid):
        lines.append(f"| {ds:.4f} | {curves[True]['fe'][i]:.4f} | {curves[False]['fe'][i]:.4f} "
                     f"| {curves[True]['theory_paper'][i]:.4f} | "
                     f"{curves[True]['theory_fpe'][i]:.4f} | "
                     f"{fp.theory.adiabatic(L, ds).x_ss_s42():.4f} |")

    # L_SGD profiles on the finest problems
    xs = np.linspace(-1.6, 1.6, 161)
    profiles = {ds: {c: tr.l_sgd_profiles(finest[c].solve(ds), xs, rel_floor=1e-4)
                     for c in (True, False)}
                for ds in (0.009, 0.012)}
    lines += ["", f"L_SGD(x) − L_SGD(0) at selected x (FE on h = {hs[-1]:g}; "
              "NaN where the FE marginal is < 1e-4 of its maximum):", "",
              "| Δ_S | x | FE, cross | FE, no cross | Eq. 10 | Eq. 11 |",
              "| --- | --- | --- | --- | --- | --- |"]
    for ds, prof in profiles.items():
        for x in (0.25, 0.5, 1.0):
            k = int(np.argmin(np.abs(xs - x)))
            lines.append(f"| {ds} | {x} | {prof[True]['fe'][k]:.3f} | {prof[False]['fe'][k]:.3f} "
                         f"| {prof[True]['eq10'][k]:.3f} | {prof[True]['eq11'][k]:.2f} |")
    os.makedirs(FIG, exist_ok=True)
    plot_xss(curves, rows, L, os.path.join(FIG, "transition_xss.png"))
    plot_lsgd(profiles, os.path.join(FIG, "transition_lsgd.png"))
    total = time.perf_counter() - t_start
    lines += ["", f"Generated by `python bench/transition.py{' --quick' if args.quick else ''}` "
              f"in {total:.0f} s (2 shared cores)."]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_block("transition", text)

    if args.eps_study:
        eps_lines = ["| ε | cross-diffusion | dofs | Δ_S* (FE) | −ε/λ1 | rel. deviation | "
                     "S29 (fpe) rel. | max negative mass |",
                     "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for cross in (True, False):         # ε = 0.02: the finest level above
            lv = [r["level"] for r in rows if r["cross"] is cross][-1]
            eps_lines.append(f"| 0.02 | {'yes' if cross else 'no'} | {lv.dofs} | "
                             f"{lv.value:.7f} | {th_paper:g} | {lv.value / th_paper - 1:+.1%} | "
                             f"{th_fpe / th_paper - 1:+.1%} | {lv.negative_mass:.1e} |")
        Le = fp.landscapes.paper(**{**FIG3, "eps": 0.01})
        d0 = fp.theory.critical_delta_s(Le)
        fpe = fp.theory.critical_delta_s(Le, form="fpe") / d0 - 1
        mesh = fp.disk_mesh(2.0, 0.06, band=0.8, band_levels=2)
        for cross in (True, False):
            prob = fp.Problem(Le, fp.diffusion.sgd(Le, d0, cross_diffusion=cross), mesh)
            lv = tr.locate_transition(prob, (0.8 * d0, 1.35 * d0), xtol=1e-8)
            eps_lines.append(f"| 0.01 | {'yes' if cross else 'no'} | {lv.dofs} | "
                             f"{lv.value:.7f} | {d0:g} | {lv.value / d0 - 1:+.1%} | "
                             f"{fpe:+.1%} | {lv.negative_mass:.1e} |")
            print(eps_lines[-1], flush=True)
        eps_lines += ["", "ε = 0.01 on `disk_mesh(2.0, 0.06, band=0.8, band_levels=2)` "
                      "(h ≈ 0.015 in |y| < 0.8), one level."]
        if not args.no_write:
            write_block("eps", "\n".join(eps_lines))
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
