"""Analysis ``figS5``: Monte Carlo SGD stationary densities with and without
cross-diffusion next to the FE quasi-stationary solutions (Yang–Tang–Tu Fig. S5).

For every σ of ``analysis.sigma`` and every noise model of ``analysis.cross_diffusion``:
``fpsolve.montecarlo.sgd`` (random-shift SGD at η, absorbing disk with re-insertion,
2-D histogram) and ``fpsolve.solve`` with D = Δ_S H² (Δ_S = ησ, D12 kept or dropped)
on ``disk_mesh(radius, h)``.  Writes ``figS5.png`` (MC | FE pairs, one colour scale per
pair), ``table.md`` (⟨x²⟩, ⟨y²⟩, maxima, marginal modes, L1 distances; the effect of
dropping the cross-diffusion) and returns the same numbers for summary.json.
"""
from __future__ import annotations

import numpy as np

from . import md_table, new_figure

__all__ = ["run", "bin_average", "mode2d", "mc_numbers", "fe_numbers", "l1", "figure"]


def _cases(p):
    """(tag, σ, cross) in the paper's order: σ-major, then the noise models."""
    out = []
    for sigma in p["sigma"]:
        for cross in p["cross_diffusion"]:
            out.append((f"({chr(ord('a') + len(out))})" if len(out) < 26 else f"({len(out)})",
                        sigma, cross))
    return out


def _smooth(a, s=1.0):
    from scipy.ndimage import gaussian_filter
    return gaussian_filter(a, s)


def bin_average(sol, xe, ye, sub=3):
    """FE density averaged over each histogram bin (sub × sub midpoints per bin)."""
    off = (np.arange(sub) + 0.5) / sub
    xs = (xe[:-1, None] + np.diff(xe)[:, None] * off).ravel()
    ys = (ye[:-1, None] + np.diff(ye)[:, None] * off).ravel()
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    v = sol(np.stack([X.ravel(), Y.ravel()], axis=1)).reshape(X.shape)
    return v.reshape(xe.size - 1, sub, ye.size - 1, sub).mean(axis=(1, 3))


def mode2d(P, xc, yc):
    """(x, y) of the maximum of the histogram ``P`` smoothed over ~1 bin."""
    i, j = np.unravel_index(np.argmax(_smooth(P)), P.shape)
    return float(xc[i]), float(yc[j])


def mc_numbers(mc) -> dict:
    """⟨x²⟩, ⟨y²⟩ (jackknife errors), 2-D maximum and x-marginal mode of a Monte Carlo run."""
    m = mc.moments()
    xm, pm = mc.marginal("x")
    mode = mode2d(mc.density[0], *mc.centers)
    return {"x2": float(m["cov"][0, 0] + m["mean"][0] ** 2), "x2_se": float(m["cov_se"][0, 0]),
            "y2": float(m["cov"][1, 1] + m["mean"][1] ** 2), "y2_se": float(m["cov_se"][1, 1]),
            "mode2d": [abs(mode[0]), abs(mode[1])],
            "marginal_mode": float(abs(xm[np.argmax(_smooth(pm))]))}


def fe_numbers(sol) -> dict:
    """The same numbers of an FE solution, plus its dofs and escape rate."""
    fe_mode = sol.mode()
    return {"x2": float(sol.expectation(lambda x, y: x * x)),
            "y2": float(sol.expectation(lambda x, y: y * y)),
            "mode2d": [float(abs(fe_mode[0])), float(abs(fe_mode[1]))],
            "marginal_mode": float(abs(sol.marginal_mode("x"))),
            "dofs": int(sol.P.size), "escape_rate": sol.escape_rate}


def l1(A, B, area) -> float:
    """∫|A − B| dA of two densities on the same bins."""
    return float(np.abs(A - B).sum() * area)


def run(p: dict, ctx) -> dict:
    import fpsolve as fp
    from ..build import build_landscape

    L = build_landscape(p["landscape"])
    eta, R, ext = p["eta"], p["radius"], p["extent"]
    n_burn = int(round(p["t_burn"] / eta / 10)) * 10 or 10
    n_steps = n_burn + (int(round(p["t_sample"] / eta / 10)) * 10 or 10)
    with ctx.step("mesh"):
        mesh = fp.disk_mesh(R, p["h"])
    problems = {}
    rows, panels = [], {}
    for k, (tag, sigma, cross) in enumerate(_cases(p)):
        ds = eta * sigma
        name = f"sigma={sigma:g}-{'cross' if cross else 'nocross'}"
        with ctx.step(f"FE {name}"):
            if cross not in problems:
                problems[cross] = fp.Problem(L, fp.diffusion.sgd(L, ds, cross_diffusion=cross),
                                             mesh, order=p["order"])
            sol = problems[cross].solve(ds)
        with ctx.step(f"Monte Carlo {name}"):
            mc = fp.montecarlo.sgd(L, eta=eta, sigma=sigma, cross_diffusion=cross,
                                   n_walkers=p["n_walkers"], n_steps=n_steps, n_burn=n_burn,
                                   seed=p["seed"] + k, radius=R, bins=p["bins"],
                                   extent=(-ext, ext, -ext, ext), marginal_bins=2 * p["bins"],
                                   workers=ctx.workers, client=ctx.client)
        P, xe, ye = mc.density
        area = float(np.diff(xe)[0] * np.diff(ye)[0])
        F = bin_average(sol, xe, ye)
        row = {
            "panel": tag, "sigma": sigma, "delta_s": ds, "cross_diffusion": cross,
            "seed": p["seed"] + k,
            "mc": {**mc_numbers(mc),
                   "exits": int(mc.exits), "escape_rate": float(mc.escape_rate),
                   "n_walkers": int(mc.n_walkers), "n_steps": int(mc.n_steps),
                   "n_burn": int(mc.n_burn), "backend": mc.backend},
            "fe": {**fe_numbers(sol),
                   "negative_mass": float(sol.diagnostics["negative_mass"])},
            "l1_mc_fe": l1(P, F, area),
        }
        rows.append(row)
        panels[(sigma, cross)] = {"mc": P, "fe": F, "xe": xe, "ye": ye, "tag": tag,
                                  "mode_mc": mode2d(P, *mc.centers),
                                  "mode_fe": tuple(sol.mode()), "area": area}
        ctx.progress(f"{tag} Δ_S = {ds:.4g}, cross-diffusion {cross}: ⟨x²⟩ MC "
                     f"{row['mc']['x2']:.4f} ± {row['mc']['x2_se']:.1g}, FE {row['fe']['x2']:.4f}; "
                     f"L1(MC, FE) {row['l1_mc_fe']:.3f}")
        del mc

    effect = []
    if set(p["cross_diffusion"]) == {True, False}:
        for sigma in p["sigma"]:
            a = next(r for r in rows if r["sigma"] == sigma and r["cross_diffusion"])
            b = next(r for r in rows if r["sigma"] == sigma and not r["cross_diffusion"])
            pa, pb = panels[(sigma, True)], panels[(sigma, False)]
            effect.append({
                "sigma": sigma, "delta_s": eta * sigma,
                "mc_x2": [a["mc"]["x2"], b["mc"]["x2"]],
                "mc_x2_change_percent": 100 * (b["mc"]["x2"] / a["mc"]["x2"] - 1),
                "fe_x2": [a["fe"]["x2"], b["fe"]["x2"]],
                "fe_x2_change_percent": 100 * (b["fe"]["x2"] / a["fe"]["x2"] - 1),
                "mc_mode_x": [a["mc"]["mode2d"][0], b["mc"]["mode2d"][0]],
                "fe_mode_x": [a["fe"]["mode2d"][0], b["fe"]["mode2d"][0]],
                "mc_l1": l1(pa["mc"], pb["mc"], pa["area"]),
                "fe_l1": l1(pa["fe"], pb["fe"], pa["area"])})

    with ctx.step("figure"):
        ctx.save_figure("figS5.png", figure(p, panels), dpi=100)
    ctx.write_text("table.md", _table(p, rows, effect))
    return {"eta": eta, "cases": rows, "effect_of_cross_diffusion": effect,
            "delta_s_star_theory": float(fp.theory.critical_delta_s(L))}


def _table(p, rows, effect) -> str:
    head = ["panel", "Δ_S", "cross-diffusion", f"⟨x²⟩ MC (η = {p['eta']:g})", "⟨x²⟩ FE",
            "⟨y²⟩ MC", "⟨y²⟩ FE", "max of P(x, y) MC (\\|x\\|, \\|y\\|)", "max FE",
            "marginal mode MC", "FE", "L1(MC, FE)"]
    body = []
    for r in rows:
        mc, fe = r["mc"], r["fe"]
        body.append([r["panel"], f"{r['delta_s']:.4g}", "yes" if r["cross_diffusion"] else "no",
                     f"{mc['x2']:.4f} ± {mc['x2_se']:.1g}", f"{fe['x2']:.4f}",
                     f"{mc['y2']:.4f} ± {mc['y2_se']:.1g}", f"{fe['y2']:.4f}",
                     f"({mc['mode2d'][0]:.2f}, {mc['mode2d'][1]:.2f})",
                     f"({fe['mode2d'][0]:.2f}, {fe['mode2d'][1]:.2f})",
                     f"{mc['marginal_mode']:.2f}", f"{fe['marginal_mode']:.3f}",
                     f"{r['l1_mc_fe']:.3f}"])
    lines = [f"Fig. S5: Monte Carlo SGD (η = {p['eta']:g}, {p['n_walkers']} walkers, burn-in "
             f"{p['t_burn']:g} + sampling {p['t_sample']:g} in τ = ηt, seeds {p['seed']}…) vs FE "
             f"(P{p['order']}, h = {p['h']:g}), absorbing disk of radius {p['radius']:g}.", ""]
    lines += md_table(head, body)
    if effect:
        lines += ["", "Effect of dropping the cross-diffusion (same method, with → without):", ""]
        lines += md_table(
            ["Δ_S", "⟨x²⟩ MC", "⟨x²⟩ FE", "2-D max \\|x\\|, MC", "2-D max \\|x\\|, FE",
             "L1(with, without) MC", "L1(with, without) FE"],
            [[f"{e['delta_s']:.4g}",
              f"{e['mc_x2'][0]:.4f} → {e['mc_x2'][1]:.4f} ({e['mc_x2_change_percent']:+.0f} %)",
              f"{e['fe_x2'][0]:.4f} → {e['fe_x2'][1]:.4f} ({e['fe_x2_change_percent']:+.0f} %)",
              f"{e['mc_mode_x'][0]:.2f} → {e['mc_mode_x'][1]:.2f}",
              f"{e['fe_mode_x'][0]:.2f} → {e['fe_mode_x'][1]:.2f}",
              f"{e['mc_l1']:.3f}", f"{e['fe_l1']:.3f}"] for e in effect])
    lines += ["", "L1 distances are ∫\\|P₁ − P₂\\| dA over the histogram window (0 = identical, "
              "2 = disjoint); FE is averaged over the histogram bins. MC errors are jackknife "
              "standard errors over independent walker blocks."]
    return "\n".join(lines) + "\n"


def figure(p, panels):
    """The MC | FE panel pairs: one row per σ, one pair per noise model of ``p``
    (keys sigma, cross_diffusion, eta, extent, order, h, radius)."""
    sigmas, crosses = p["sigma"], p["cross_diffusion"]
    nrow, npair = len(sigmas), len(crosses)
    fig = new_figure(figsize=(3.6 * 2 * npair + 0.8, 3.9 * nrow + 0.8))
    ratios = []
    for k in range(npair):
        ratios += [1, 1, 0.06] + ([0.45] if k < npair - 1 else [])
    gs = fig.add_gridspec(nrow, len(ratios), width_ratios=ratios, wspace=0.08, hspace=0.35,
                          left=0.075, right=0.955, top=0.86, bottom=0.07)
    lim = min(p["extent"], 0.85)
    for row, sigma in enumerate(sigmas):
        for pair, cross in enumerate(crosses):
            d = panels[(sigma, cross)]
            vmax = max(d["mc"].max(), d["fe"].max())
            c0 = 4 * pair
            axs = [fig.add_subplot(gs[row, c0]), fig.add_subplot(gs[row, c0 + 1])]
            im = None
            for ax, key in zip(axs, ("mc", "fe")):
                im = ax.pcolormesh(d["xe"], d["ye"], d[key].T, cmap="viridis", vmin=0,
                                   vmax=vmax, shading="flat", rasterized=True)
                ax.plot(*d["mode_" + key], "w+", ms=10, mew=1.6)
                ax.set_aspect("equal")
                ax.set(xlim=(-lim, lim), ylim=(-lim, lim))
                ax.set_xlabel("x")
                if key == "mc":
                    ax.set_title(f"{d['tag']} Monte Carlo SGD\nη = {p['eta']:g}, σ = {sigma:g}",
                                 fontsize=10)
                else:
                    ax.set_title(f"FE (P{p['order']}, h = {p['h']:g})\nsame Δ_S, η → 0",
                                 fontsize=10)
                    ax.tick_params(labelleft=False)
            axs[0].set_ylabel("y")
            if pair == 0:
                box = axs[0].get_position()
                fig.text(0.012, 0.5 * (box.y0 + box.y1), f"Δ_S = {p['eta'] * sigma:.4g}",
                         rotation=90, va="center", fontsize=12, fontweight="bold")
            cb = fig.colorbar(im, cax=fig.add_subplot(gs[row, c0 + 2]))
            cb.set_label("P(x, y)")
            if row == 0:
                what = ("with cross-diffusion (D = Δ_S H²)" if cross
                        else "without cross-diffusion (D12 = D21 = 0)")
                b0, b1 = axs[0].get_position(), axs[1].get_position()
                fig.text(0.5 * (b0.x0 + b1.x1), 0.925, what, ha="center", fontsize=12,
                         fontweight="bold")
    fig.suptitle(f"Fig. S5: stationary densities in the absorbing disk of radius {p['radius']:g} "
                 "(same colour scale within each MC | FE pair; + marks the maximum)",
                 fontsize=11, y=0.985)
    return fig
