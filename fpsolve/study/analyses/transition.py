"""Analysis ``transition``: the phase I → II transition Δ_S* three ways — adiabatic
theory, the full 2-D FE solution (with and without cross-diffusion, on several mesh
levels) and Monte Carlo SGD — plus the curve x_ss(Δ_S) and L_SGD(x).

Library calls: ``fpsolve.theory.critical_delta_s`` / ``adiabatic``,
``fpsolve.fe.transition.locate_transition`` / ``x_ss_curve`` / ``l_sgd_profiles``,
``fpsolve.montecarlo.sgd``.  Writes ``table.md``, ``transition_xss.png`` and
``transition_lsgd.png``.

Monte Carlo Δ_S*: at each nominal Δ_S = ησ of ``mc_delta_s`` the x-marginal histogram
(symmetrised, bins of 0.02) is fitted by P(x) ≈ a + bx² + cx⁴ on |x| ≤ ``mc_fit_width``
(weights 1/SE², SE from independent walker blocks); its relative curvature
P''(0)/P(0) = 2b/a changes sign at the transition, located by linear interpolation
between the two bracketing runs (uncertainty propagated from the fit errors).  The same
fit on the FE marginal at the same Δ_S separates the bias of the fit from the Monte
Carlo.  Discrete SGD enhances the y-variance at x = 0 by 1/(1 − ηλ0/2)
(docs/phase_diagram.md §3.1), so the nominal value is also given divided by that factor.
"""
from __future__ import annotations

import numpy as np

from . import md_table, new_figure

__all__ = ["run"]

_MARGINAL_BIN = 0.02


def _summarise(levels):
    """Finest value, |finest − previous| + d-sensitivity, observed order, Richardson."""
    v = np.array([lv.value for lv in levels])
    h = np.array([lv.h for lv in levels])
    out = {"value": float(v[-1]), "uncertainty": float(abs(v[-1] - v[-2]) + levels[-1].d_sensitivity),
           "order": None, "richardson": None}
    if len(v) >= 3 and (v[-3] - v[-2]) * (v[-2] - v[-1]) > 0:
        r1, r2 = h[-3] / h[-2], h[-2] / h[-1]
        p = np.log(abs(v[-3] - v[-2]) / abs(v[-2] - v[-1])) / np.log(np.sqrt(r1 * r2))
        out["order"] = float(p)
        out["richardson"] = float(v[-1] + (v[-1] - v[-2]) / (r2 ** p - 1))
    return out


def _even_fit(x, p, se, width):
    """Weighted fit P ≈ a + bx² + cx⁴ on |x| ≤ width: (2b/a, its standard error)."""
    m = (np.abs(x) <= width) & np.isfinite(p)
    if se is not None:           # bins without samples carry no information (SE = 0)
        m &= np.isfinite(se) & (se > 0)
    if m.sum() < 4:
        return float("nan"), float("nan")
    x, p = x[m], p[m]
    w = np.ones_like(p) if se is None else 1.0 / se[m]
    A = np.stack([np.ones_like(x), x ** 2, x ** 4], axis=1)
    Aw, pw = A * w[:, None], p * w
    coef, *_ = np.linalg.lstsq(Aw, pw, rcond=None)
    a, b = coef[0], coef[1]
    if not a > 0:
        return float("nan"), float("nan")
    curv = 2 * b / a
    if se is None or x.size <= 3:
        return float(curv), float("nan")
    cov = np.linalg.inv(Aw.T @ Aw)
    chi2 = float(np.sum((Aw @ coef - pw) ** 2)) / (x.size - 3)
    cov = cov * max(1.0, chi2)             # conservative when the model misfits
    g = np.array([-2 * b / a ** 2, 2 / a, 0.0])
    return float(curv), float(np.sqrt(g @ cov @ g))


def _root(ds, c, se):
    """First upward zero crossing of c(Δ_S) by linear interpolation, with propagated SE."""
    for k in range(1, len(ds)):
        c1, c2 = c[k - 1], c[k]
        if np.isfinite(c1) and np.isfinite(c2) and c1 < 0 <= c2:
            s1, s2 = ds[k - 1], ds[k]
            r = s1 + c1 * (s2 - s1) / (c1 - c2)
            d1 = -(s2 - s1) * c2 / (c1 - c2) ** 2
            d2 = (s2 - s1) * c1 / (c1 - c2) ** 2
            e = np.sqrt((d1 * se[k - 1]) ** 2 + (d2 * se[k]) ** 2) \
                if np.isfinite(se[k - 1]) and np.isfinite(se[k]) else float("nan")
            return float(r), float(e), [float(s1), float(s2)]
    return float("nan"), float("nan"), None


def _fold(x, p, se):
    """Symmetrise a histogram on a grid symmetric about 0."""
    pf = 0.5 * (p + p[::-1])
    sf = None if se is None else 0.5 * np.sqrt(se ** 2 + se[::-1] ** 2)
    return pf, sf


def run(p: dict, ctx) -> dict:
    import fpsolve as fp
    from fpsolve import transition as tr
    from ..build import build_landscape

    L = build_landscape(p["landscape"])
    R, order = p["radius"], p["order"]
    out: dict = {}
    with ctx.step("theory"):
        th_paper = float(fp.theory.critical_delta_s(L))
        th_fpe = float(fp.theory.critical_delta_s(L, form="fpe"))
    out["theory"] = {"paper_S30": th_paper, "fpe_S29": th_fpe,
                     "minus_eps_over_lam1": -L.eps / L.lam1}

    # FE: Δ_S* on every mesh level, with and without cross-diffusion ----------------------
    levels, finest = {True: [], False: []}, {}
    for cross in (True, False):
        for h in p["h"]:
            with ctx.step(f"FE Δ_S* cross={cross} h={h:g}"):
                mesh = fp.disk_mesh(R, h)
                prob = fp.Problem(L, fp.diffusion.sgd(L, p["bracket"][0], cross_diffusion=cross),
                                  mesh, order=order)
                lv = tr.locate_transition(prob, tuple(p["bracket"]), xtol=p["xtol"])
            levels[cross].append(lv)
            finest[cross] = prob
            ctx.progress(f"  cross-diffusion {cross}, h = {lv.h:.4f}, {lv.dofs} dofs: "
                         f"Δ_S* = {lv.value:.7f} ({lv.nsolves} solves)")
    fe = {}
    for cross in (True, False):
        s = _summarise(levels[cross])
        s["levels"] = [{"h_target": h, "h": lv.h, "dofs": lv.dofs, "value": lv.value,
                        "nsolves": lv.nsolves, "d_sensitivity": lv.d_sensitivity,
                        "negative_mass": lv.negative_mass,
                        "history": [list(map(float, hv)) for hv in sorted(lv.history)]}
                       for h, lv in zip(p["h"], levels[cross])]
        fe["cross" if cross else "nocross"] = s
    out["fe"] = fe

    # x_ss(Δ_S) --------------------------------------------------------------------------
    with ctx.step("x_ss curves"):
        xmesh = fp.disk_mesh(R, p["xss_h"])
        curves = {c: tr.x_ss_curve(L, p["xss_delta_s"], cross_diffusion=c, mesh=xmesh,
                                   order=order) for c in (True, False)}
        s42 = [float(fp.theory.adiabatic(L, s, R=R).x_ss_s42()) for s in p["xss_delta_s"]]
    out["x_ss"] = {"delta_s": p["xss_delta_s"], "fe_cross": curves[True]["fe"],
                   "fe_nocross": curves[False]["fe"],
                   "theory_paper": curves[True]["theory_paper"],
                   "theory_fpe": curves[True]["theory_fpe"], "theory_s42": s42,
                   "h": float(xmesh.h)}

    # L_SGD(x) on the finest level --------------------------------------------------------
    xs = np.linspace(-0.8 * R, 0.8 * R, 161)
    with ctx.step("L_SGD profiles"):
        profiles = {ds: {c: tr.l_sgd_profiles(finest[c].solve(ds), xs, rel_floor=1e-4)
                         for c in (True, False)} for ds in p["lsgd_delta_s"]}
    out["l_sgd"] = {"x": xs, "profiles": [
        {"delta_s": ds, "fe_cross": pr[True]["fe"], "fe_nocross": pr[False]["fe"],
         "eq10": pr[True]["eq10"], "eq11": pr[True]["eq11"]} for ds, pr in profiles.items()]}

    # Monte Carlo SGD ------------------------------------------------------------------------
    mc_out = None
    if p["mc"]:
        mc_out = _monte_carlo(p, L, finest, ctx)
        out["mc"] = mc_out

    with ctx.step("figures"):
        _figure_xss(ctx, L, p, out, levels)
        _figure_lsgd(ctx, p, out)
    ctx.write_text("table.md", _table(p, out, L))
    return out


def _monte_carlo(p, L, finest, ctx):
    import fpsolve as fp
    eta = p["mc_eta"]
    n_burn = int(round(p["mc_t_burn"] / eta / 10)) * 10 or 10
    n_steps = n_burn + (int(round(p["mc_t_sample"] / eta / 10)) * 10 or 10)
    half = min(1.2, p["radius"])
    nb = int(round(2 * half / _MARGINAL_BIN))
    res = {"eta": eta, "n_walkers": p["mc_n_walkers"], "n_steps": n_steps, "n_burn": n_burn,
           "fit_width": p["mc_fit_width"], "finite_eta_factor": 1 - 0.5 * eta * L.lam0}
    k = 0
    for cross in (True, False):
        rows = []
        for ds in p["mc_delta_s"]:
            with ctx.step(f"Monte Carlo cross={cross} Δ_S={ds:g}"):
                mc = fp.montecarlo.sgd(L, eta=eta, sigma=ds / eta, cross_diffusion=cross,
                                       n_walkers=p["mc_n_walkers"], n_steps=n_steps,
                                       n_burn=n_burn, seed=p["seed"] + k, radius=p["radius"],
                                       bins=24, extent=(-half, half, -half, half),
                                       marginal_bins=nb, workers=ctx.workers,
                                       client=ctx.client)
                xm, pm, se = mc.marginal("x", return_se=True)
                pf, sf = _fold(xm, pm, se)
                curv, curv_se = _even_fit(xm, pf, sf, p["mc_fit_width"])
                sm = _smooth(pf)
                xss = float(abs(xm[int(np.argmax(sm))]))
                sol = finest[cross].solve(ds)
                pfe = sol.marginal("x", xm)
                fe_curv, _ = _even_fit(xm, pfe, None, p["mc_fit_width"])
            rows.append({"delta_s": ds, "sigma": ds / eta, "seed": p["seed"] + k,
                         "curvature": curv, "curvature_se": curv_se, "x_ss": xss,
                         "fe_same_fit_curvature": fe_curv, "exits": int(mc.exits)})
            k += 1
        ds_arr = np.array(p["mc_delta_s"])
        c = np.array([r["curvature"] for r in rows])
        e = np.array([r["curvature_se"] for r in rows])
        root, root_se, bracket = _root(ds_arr, c, e)
        fe_root, _, _ = _root(ds_arr, np.array([r["fe_same_fit_curvature"] for r in rows]),
                              np.zeros(len(rows)))
        res["cross" if cross else "nocross"] = {
            "runs": rows, "delta_s_star_nominal": root, "delta_s_star_se": root_se,
            "bracket": bracket,
            "delta_s_star_corrected": root / res["finite_eta_factor"],
            "delta_s_star_corrected_se": root_se / res["finite_eta_factor"],
            "fe_same_fit_delta_s_star": fe_root}
        ctx.progress(f"  Monte Carlo cross-diffusion {cross}: Δ_S* = {root:.5f} ± {root_se:.1g} "
                     f"(nominal ησ), {root / res['finite_eta_factor']:.5f} corrected")
    return res


def _smooth(a):
    from scipy.ndimage import gaussian_filter1d
    return gaussian_filter1d(a, 1.0)


def _f(v, fmt):
    return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)


def _table(p, out, L) -> str:
    th = out["theory"]["paper_S30"]
    rel = lambda v: _f(None if v is None else v / th - 1, "+.1%")      # noqa: E731
    rows = [["adiabatic theory, S30 marginal (paper; = −ε/λ1)",
             f"{th:.6f}", "exact", rel(th)],
            ["adiabatic theory, S29 zero-flux marginal (`form=\"fpe\"`)",
             f"{out['theory']['fpe_S29']:.6f}", "exact", rel(out["theory"]["fpe_S29"])]]
    for key, what in (("cross", "with"), ("nocross", "without")):
        v = out["fe"][key]
        rows.append([f"FE P{p['order']}, {what} cross-diffusion (h = {p['h'][-1]:g})",
                     f"{v['value']:.6f}", f"± {v['uncertainty']:.1e}", rel(v["value"])])
    mc = out.get("mc")
    if mc:
        for key, what in (("cross", "with"), ("nocross", "without")):
            m = mc[key]
            rows.append([f"Monte Carlo SGD, {what} cross-diffusion, η = {mc['eta']:g}: "
                         "nominal ησ*", _f(m["delta_s_star_nominal"], ".5f"),
                         f"± {_f(m['delta_s_star_se'], '.1e')}", rel(m["delta_s_star_nominal"])])
            rows.append([f"… divided by 1 − ηλ0/2 = {mc['finite_eta_factor']:.3f} (finite-η "
                         "noise enhancement)", _f(m["delta_s_star_corrected"], ".5f"),
                         f"± {_f(m['delta_s_star_corrected_se'], '.1e')}",
                         rel(m["delta_s_star_corrected"])])
            rows.append([f"FE marginal ({what} cross-diffusion) with the Monte Carlo's fit "
                         "and Δ_S grid (bias of the fit)", _f(m["fe_same_fit_delta_s_star"], ".5f"),
                         "—", rel(m["fe_same_fit_delta_s_star"])])
    lines = [f"Paper landscape ε = {L.eps:g}, λ = ({L.lam0:g}, {L.lam1:g}, {L.lam2:g}), "
             f"absorbing disk R = {p['radius']:g}.", ""]
    lines += md_table(["method", "Δ_S*", "uncertainty", "(Δ_S* − theory)/theory"], rows)
    lines += ["", f"FE mesh levels (one assembly each, Brent on c(Δ_S) = P''(0)/P(0), "
              f"xtol = {p['xtol']:g}):", ""]
    body = []
    for key, yes in (("cross", "yes"), ("nocross", "no")):
        for lv in out["fe"][key]["levels"]:
            body.append([yes, f"{lv['h']:.4f}", lv["dofs"], f"{lv['value']:.7f}", lv["nsolves"],
                         f"{lv['d_sensitivity']:.1e}", f"{lv['negative_mass']:.1e}"])
    lines += md_table(["cross-diffusion", "h (mean edge)", "dofs", "Δ_S*", "solves",
                       "d-sensitivity", "max negative mass"], body)
    if len(p["h"]) >= 3:
        lines += ["", "Observed order p in h and Richardson extrapolation "
                  "Δ_S*(h→0) = v3 + (v3 − v2)/(r^p − 1):", ""]
        for key, what in (("cross", "with"), ("nocross", "without")):
            v = out["fe"][key]
            lines.append(f"* {what} cross-diffusion: p = {_f(v['order'], '.2f')}, "
                         f"extrapolated Δ_S* = {_f(v['richardson'], '.7f')}")
    if mc:
        lines += ["", f"Monte Carlo runs (η = {mc['eta']:g}, {mc['n_walkers']} walkers, "
                  f"{mc['n_burn']} burn-in + {mc['n_steps'] - mc['n_burn']} sampled steps; "
                  f"curvature from the fit on |x| ≤ {mc['fit_width']:g}):", ""]
        body = []
        for i, ds in enumerate(p["mc_delta_s"]):
            a, b = mc["cross"]["runs"][i], mc["nocross"]["runs"][i]
            body.append([f"{ds:.5g}", f"{a['curvature']:.1f} ± {a['curvature_se']:.1f}",
                         f"{a['fe_same_fit_curvature']:.1f}", f"{a['x_ss']:.2f}",
                         f"{b['curvature']:.1f} ± {b['curvature_se']:.1f}",
                         f"{b['fe_same_fit_curvature']:.1f}", f"{b['x_ss']:.2f}"])
        lines += md_table(["nominal Δ_S = ησ", "P''(0)/P(0) MC, cross", "FE same fit, cross",
                           "\\|x_ss\\| MC, cross", "P''(0)/P(0) MC, no cross",
                           "FE same fit, no cross", "\\|x_ss\\| MC, no cross"], body)
    x = out["x_ss"]
    lines += ["", f"x_ss(Δ_S) (\\|mode\\| of the x-marginal; FE on h = {x['h']:.3f}):", ""]
    lines += md_table(["Δ_S", "FE, cross", "FE, no cross", "theory S30", "theory S29 (fpe)",
                       "S42"],
                      [[f"{ds:.4f}", f"{x['fe_cross'][i]:.4f}", f"{x['fe_nocross'][i]:.4f}",
                        f"{x['theory_paper'][i]:.4f}", f"{x['theory_fpe'][i]:.4f}",
                        f"{x['theory_s42'][i]:.4f}"] for i, ds in enumerate(x["delta_s"])])
    lsg = out["l_sgd"]
    xs = np.asarray(lsg["x"])
    lines += ["", f"L_SGD(x) − L_SGD(0) (FE on h = {p['h'][-1]:g}; — where the FE marginal is "
              "< 1e-4 of its maximum):", ""]
    body = []
    for pr in lsg["profiles"]:
        for xv in (0.25, 0.5, 1.0):
            kk = int(np.argmin(np.abs(xs - xv)))
            body.append([pr["delta_s"], xv, _f(float(pr["fe_cross"][kk]), ".3f"),
                         _f(float(pr["fe_nocross"][kk]), ".3f"), _f(float(pr["eq10"][kk]), ".3f"),
                         _f(float(pr["eq11"][kk]), ".2f")])
    lines += md_table(["Δ_S", "x", "FE, cross", "FE, no cross", "Eq. 10", "Eq. 11"], body)
    return "\n".join(lines) + "\n"


def _figure_xss(ctx, L, p, out, levels):
    import fpsolve as fp
    fig = new_figure(figsize=(11, 4.3), layout="constrained")
    ax, bx = fig.subplots(1, 2)
    x = out["x_ss"]
    ds = np.asarray(x["delta_s"])
    fine = np.linspace(ds.min(), ds.max(), 41)
    ax.plot(fine, [fp.theory.adiabatic(L, s, R=p["radius"]).x_ss_s42() for s in fine], ":",
            color="0.4", label="S42 (Landau expansion)")
    for form, style, what in (("paper", "-", "S30 marginal (paper)"),
                              ("fpe", "--", "S29 zero-flux marginal")):
        ax.plot(fine, [fp.theory.adiabatic(L, s, form=form, R=p["radius"]).x_ss for s in fine],
                style, color="C0", label=f"theory, {what}")
    ax.plot(ds, x["fe_cross"], "o-", color="C3", ms=4, label="FE, cross-diffusion")
    ax.plot(ds, x["fe_nocross"], "s-", color="C2", ms=4, label="FE, no cross-diffusion")
    mc = out.get("mc")
    if mc:
        f = mc["finite_eta_factor"]
        for key, color, mark in (("cross", "C3", "^"), ("nocross", "C2", "v")):
            runs = mc[key]["runs"]
            ax.plot([r["delta_s"] / f for r in runs], [r["x_ss"] for r in runs], mark,
                    color=color, mfc="none", ms=7,
                    label=f"MC SGD η = {mc['eta']:g}, {'' if key == 'cross' else 'no '}cross "
                          "(Δ_S/(1 − ηλ0/2))")
    dstar = out["theory"]["paper_S30"]
    ax.axvline(dstar, color="C0", lw=0.8)
    ax.set(xlabel=r"$\Delta_S$", ylabel=r"$|x_{ss}|$ (mode of the $x$-marginal)",
           title=rf"Steady state, $\varepsilon={L.eps:g},\ \lambda=({L.lam0:g},{L.lam1:g},"
                 rf"{L.lam2:g})$")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    for cross, color, mark in ((True, "C3", "o"), (False, "C2", "s")):
        lv = levels[cross][-1]
        hist = np.array(sorted(lv.history))
        bx.plot(hist[:, 0], hist[:, 1], mark + "-", color=color, ms=4,
                label=f"FE {'with' if cross else 'without'} cross-diffusion, "
                      f"$\\Delta_S^*$ = {lv.value:.5f}")
        bx.axvline(lv.value, color=color, lw=0.8)
    th = [fp.theory.adiabatic(L, s, R=p["radius"]).curvature() for s in fine]
    bx.plot(fine, -np.array(th), "-", color="C0", label=r"theory (S30): $-\Phi''(0)$")
    if mc:
        f = mc["finite_eta_factor"]
        for key, color, mark in (("cross", "C3", "^"), ("nocross", "C2", "v")):
            runs = mc[key]["runs"]
            bx.errorbar([r["delta_s"] / f for r in runs], [r["curvature"] for r in runs],
                        yerr=[r["curvature_se"] for r in runs], fmt=mark, color=color,
                        mfc="none", ms=6, capsize=2,
                        label=f"MC SGD, {'' if key == 'cross' else 'no '}cross (fit, corrected Δ_S)")
    bx.axhline(0, color="k", lw=0.6)
    bx.axvline(out["theory"]["paper_S30"], color="C0", lw=0.8)
    bx.set(xlabel=r"$\Delta_S$", ylabel=r"$P''(0)/P(0)$ of the $x$-marginal",
           title="Curvature at x = 0 (root = transition)", ylim=(-60, 40))
    bx.legend(fontsize=7, loc="lower right")
    bx.grid(alpha=0.3)
    ctx.save_figure("transition_xss.png", fig, dpi=120)


def _figure_lsgd(ctx, p, out):
    lsg = out["l_sgd"]
    n = len(lsg["profiles"])
    fig = new_figure(figsize=(5.5 * n, 4.6))
    axes = np.atleast_1d(fig.subplots(1, n, sharey=True))
    x = np.asarray(lsg["x"])
    for ax, pr in zip(axes, lsg["profiles"]):
        ax.plot(x, pr["eq10"], "-", color="C0", lw=2, label="Eq. 10 (exact integral)")
        ax.plot(x, pr["eq11"], ":", color="C1", lw=2, label="Eq. 11 (constant κ, Δ)")
        ax.plot(x, pr["fe_cross"], "-", color="C3", label="FE, cross-diffusion")
        ax.plot(x, pr["fe_nocross"], "--", color="C2", label="FE, no cross-diffusion")
        ax.set_title(rf"$\Delta_S = {pr['delta_s']:g}$")
        ax.set_xlabel("x")
        ax.set_ylim(-1.5, 8)
        ax.axhline(0, color="k", lw=0.5)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(r"$L_{SGD}(x) - L_{SGD}(0)$")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=9)
    fig.suptitle(r"$L_{SGD}$ from the FE marginal vs the adiabatic theory ($-\Delta(x)\ln P(x)$ "
                 r"convention of Eq. 10; FE masked where $P < 10^{-4}\max P$)", fontsize=10)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.22, top=0.88, wspace=0.08)
    ctx.save_figure("transition_lsgd.png", fig, dpi=120)
