"""Fig. S5 of Yang–Tang–Tu: SGD stationary densities with and without cross-diffusion.

Monte Carlo SGD (η = 0.01; σ = 0.9 and 1.2, i.e. Δ_S = 0.009 and 0.012; paper landscape
ε = 0.02, λ0 = 8, λ1 = −2, λ2 = 1; absorbing disk of radius 2), with the full noise
covariance 2ση²H² (cross-diffusion) and with its off-diagonal dropped, next to the FE
quasi-stationary solutions of the same four Fokker–Planck equations (P2, h = 0.025).

Writes ``docs/figures/figS5.png``, the table between the ``bench:figS5`` markers of
``docs/crosscheck.md`` and ``bench/results/figS5.json``.

Usage::

    python bench/figS5.py          # ≈ 3 min on the shared 2-core machine
    python bench/figS5.py --quick  # small runs, writes only bench/results/figS5_quick.json
    python bench/figS5.py --from-json  # the docs table again from bench/results/figS5.json
"""
from __future__ import annotations

import argparse
import json
import os
import re
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.ndimage import gaussian_filter  # noqa: E402

import fpsolve as fp  # noqa: E402
from fpsolve import montecarlo  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DOC = os.path.join(ROOT, "docs", "crosscheck.md")
PNG = os.path.join(ROOT, "docs", "figures", "figS5.png")
RAW = os.path.join(HERE, "results", "figS5.json")
FIG3 = dict(eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)
ETA = 0.01
# (panel, σ, cross-diffusion) in the paper's order: (a) (b) Δ_S = 0.009, (c) (d) 0.012
CASES = [("a", 0.9, True), ("b", 0.9, False), ("c", 1.2, True), ("d", 1.2, False)]
EXTENT = (-0.9, 0.9, -0.9, 0.9)       # holds all but ~1e-6 of the probability
BINS = 90                               # 0.02 × 0.02 bins
T_BURN, T_SAMPLE = 250.0, 250.0         # ≥ 10 × the slowest even relaxation time (22)


def fe_solution(ds, cross, h):
    L = fp.landscapes.paper(**FIG3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)   # negative mass ~1e-5, known
        return fp.solve(L, fp.diffusion.sgd(L, ds, cross_diffusion=cross),
                        fp.disk_mesh(2.0, h=h))


def mc_run(sigma, cross, seed, quick):
    L = fp.landscapes.paper(**FIG3)
    n, burn, samp = (16384, T_BURN, T_SAMPLE) if not quick else (2048, 60.0, 40.0)
    n_burn = int(round(burn / ETA / 10)) * 10
    n_steps = n_burn + int(round(samp / ETA / 10)) * 10
    return montecarlo.sgd(L, eta=ETA, sigma=sigma, cross_diffusion=cross, n_walkers=n,
                          n_steps=n_steps, n_burn=n_burn, seed=seed, radius=2.0,
                          bins=BINS, extent=EXTENT, marginal_bins=2 * BINS)


def mode2d_mc(P, xc, yc):
    """(x, y) of the maximum of the histogram smoothed over ~1 bin."""
    S = gaussian_filter(P, 1.0)
    i, j = np.unravel_index(np.argmax(S), S.shape)
    return float(xc[i]), float(yc[j])


def measure(sol, mc):
    """Side-by-side numbers of one case."""
    m = mc.moments()
    P, xe, ye = mc.density
    xc, yc = mc.centers
    fe_mode = sol.mode()
    xm, pm = mc.marginal("x")
    pm_s = gaussian_filter(pm, 1.0)
    trace_t, _, trace_cov = mc.moment_trace()
    return {
        "mc": {"x2": float(m["cov"][0, 0] + m["mean"][0] ** 2), "x2_se": float(m["cov_se"][0, 0]),
               "y2": float(m["cov"][1, 1] + m["mean"][1] ** 2), "y2_se": float(m["cov_se"][1, 1]),
               "mode2d": tuple(abs(v) for v in mode2d_mc(P, xc, yc)),
               "marginal_mode": float(abs(xm[np.argmax(pm_s)])),
               "x2_trace_first_last": [float(trace_cov[0, 0, 0]), float(trace_cov[-1, 0, 0])],
               "exits": int(mc.exits), "n_walkers": mc.n_walkers, "n_steps": mc.n_steps,
               "n_burn": mc.n_burn, "seconds": mc.elapsed},
        "fe": {"x2": sol.expectation(lambda x, y: x * x),
               "y2": sol.expectation(lambda x, y: y * y),
               "mode2d": (float(abs(fe_mode[0])), float(abs(fe_mode[1]))),
               "marginal_mode": float(abs(sol.marginal_mode("x"))),
               "dofs": int(sol.P.size), "escape_rate": sol.escape_rate},
    }


def l1_2d(A, B, area):
    return float(np.abs(A - B).sum() * area)


def figure(panels, path):
    """2 × 4: for each Δ_S a row [MC | FE] with cross-diffusion, [MC | FE] without."""
    fig = plt.figure(figsize=(14.0, 8.2))
    gs = fig.add_gridspec(2, 7, width_ratios=[1, 1, 0.06, 0.45, 1, 1, 0.06], wspace=0.08,
                          hspace=0.3, left=0.075, right=0.955, top=0.86, bottom=0.065)
    for row, sigma in enumerate((0.9, 1.2)):
        for pair, cross in enumerate((True, False)):
            p = panels[(sigma, cross)]
            vmax = max(p["mc"].max(), p["fe"].max())
            c0 = 4 * pair
            axs = [fig.add_subplot(gs[row, c0]), fig.add_subplot(gs[row, c0 + 1])]
            for ax, key in zip(axs, ("mc", "fe")):
                im = ax.pcolormesh(p["xe"], p["ye"], p[key].T, cmap="viridis", vmin=0,
                                   vmax=vmax, shading="flat", rasterized=True)
                ax.plot(*p["mode_" + key], "w+", ms=10, mew=1.6)
                ax.set_aspect("equal")
                ax.set(xlim=(-0.75, 0.75), ylim=(-0.85, 0.85), xticks=[-0.5, 0, 0.5],
                       yticks=[-0.8, -0.4, 0, 0.4, 0.8])
                ax.set_xlabel("x")
                if key == "mc":
                    ax.set_title(f"{p['tag']}Monte Carlo SGD\nη = {ETA:g}, σ = {sigma:g}",
                                 fontsize=10)
                else:
                    ax.set_title("FE (P2, h = 0.025), η → 0\nsame Δ_S", fontsize=10)
                    ax.tick_params(labelleft=False)
            axs[0].set_ylabel("y")
            if pair == 0:
                box = axs[0].get_position()
                fig.text(0.012, 0.5 * (box.y0 + box.y1), f"Δ_S = {ETA * sigma:.3f}",
                         rotation=90, va="center", fontsize=12, fontweight="bold")
            cb = fig.colorbar(im, cax=fig.add_subplot(gs[row, c0 + 2]))
            cb.set_label("P(x, y)")
            if row == 0:
                what = ("with cross-diffusion (D = Δ_S H²)" if cross
                        else "without cross-diffusion (D12 = D21 = 0)")
                b0, b1 = axs[0].get_position(), axs[1].get_position()
                fig.text(0.5 * (b0.x0 + b1.x1), 0.925, what, ha="center", fontsize=12,
                         fontweight="bold")
    fig.suptitle("Fig. S5: stationary densities in the absorbing disk of radius 2 "
                 "(same colour scale within each MC | FE pair; + marks the maximum)",
                 fontsize=11, y=0.985)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_doc(rows, effect, seconds):
    head = ["panel", "Δ_S", "cross-diffusion", "⟨x²⟩ MC (η=0.01)", "⟨x²⟩ FE", "⟨y²⟩ MC",
            "⟨y²⟩ FE", "max of P(x,y) MC (\\|x\\|, \\|y\\|)", "max FE", "marginal mode MC",
            "FE", "L1(MC, FE)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        mc, fe = r["mc"], r["fe"]
        lines.append("| " + " | ".join([
            f"({r['panel']})", f"{r['delta_s']:.3f}", "yes" if r["cross"] else "no",
            f"{mc['x2']:.4f} ± {mc['x2_se']:.1g}", f"{fe['x2']:.4f}",
            f"{mc['y2']:.4f} ± {mc['y2_se']:.1g}", f"{fe['y2']:.4f}",
            f"({mc['mode2d'][0]:.2f}, {mc['mode2d'][1]:.2f})",
            f"({fe['mode2d'][0]:.2f}, {fe['mode2d'][1]:.2f})",
            f"{mc['marginal_mode']:.2f}", f"{fe['marginal_mode']:.3f}",
            f"{r['l1_mc_fe']:.3f}"]) + " |")
    lines += ["", "Effect of dropping the cross-diffusion (same method, with vs without):", "",
              "| Δ_S | ⟨x²⟩ MC with → without | ⟨x²⟩ FE with → without | 2-D max, MC | "
              "2-D max, FE | L1(with, without) MC | L1(with, without) FE |",
              "|---|---|---|---|---|---|---|"]
    for e in effect:
        lines.append("| " + " | ".join([
            f"{e['delta_s']:.3f}",
            f"{e['mc_x2'][0]:.4f} → {e['mc_x2'][1]:.4f} ({e['mc_x2_change']:+.0f} %)",
            f"{e['fe_x2'][0]:.4f} → {e['fe_x2'][1]:.4f} ({e['fe_x2_change']:+.0f} %)",
            f"\\|x\\| {e['mc_mode'][0]:.2f} → {e['mc_mode'][1]:.2f}",
            f"\\|x\\| {e['fe_mode'][0]:.2f} → {e['fe_mode'][1]:.2f}",
            f"{e['mc_l1']:.3f}", f"{e['fe_l1']:.3f}"]) + " |")
    lines += ["", "L1 distances are ∫|P₁ − P₂| dA over the histogram window (0 = identical, "
              "2 = disjoint); MC histograms have 0.02 × 0.02 bins, FE is averaged over the same "
              "bins.", "",
              f"*Generated by `python bench/figS5.py` in {seconds / 60:.1f} min; raw numbers "
              f"in `bench/results/figS5.json`.*"]
    text = "\n".join(lines)
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    pat = re.compile(r"(<!-- bench:figS5:begin -->\n).*?(<!-- bench:figS5:end -->)", re.S)
    if not pat.search(doc):
        raise SystemExit(f"{DOC}: markers <!-- bench:figS5:begin/end --> not found")
    with open(DOC, "w", encoding="utf-8") as f:
        f.write(pat.sub(lambda m: m.group(1) + text + "\n" + m.group(2), doc))


def bin_average(sol, xe, ye, sub=3):
    """FE density averaged over each histogram bin (sub × sub midpoints)."""
    off = (np.arange(sub) + 0.5) / sub
    xs = (xe[:-1, None] + np.diff(xe)[:, None] * off).ravel()
    ys = (ye[:-1, None] + np.diff(ye)[:, None] * off).ravel()
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    v = sol(np.stack([X.ravel(), Y.ravel()], axis=1)).reshape(X.shape)
    return v.reshape(xe.size - 1, sub, ye.size - 1, sub).mean(axis=(1, 3))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--from-json", action="store_true",
                    help="rewrite the docs table from bench/results/figS5.json, no runs")
    args = ap.parse_args()
    if args.from_json:
        with open(RAW, encoding="utf-8") as f:
            saved = json.load(f)
        write_doc(saved["rows"], saved["effect"], saved["seconds"])
        return
    t0 = time.perf_counter()
    rows, panels, dens = [], {}, {}
    for k, (tag, sigma, cross) in enumerate(CASES):
        ds = ETA * sigma
        sol = fe_solution(ds, cross, 0.05 if args.quick else 0.025)
        mc = mc_run(sigma, cross, args.seed + k, args.quick)
        P, xe, ye = mc.density
        area = np.diff(xe)[0] * np.diff(ye)[0]
        F = bin_average(sol, xe, ye)
        r = measure(sol, mc)
        r.update(panel=tag, sigma=sigma, delta_s=ds, cross=cross, l1_mc_fe=l1_2d(P, F, area))
        rows.append(r)
        dens[(sigma, cross)] = (P, F, area)
        panels[(sigma, cross)] = {"mc": P, "fe": F, "xe": xe, "ye": ye, "tag": f"({tag}) ",
                                  "mode_mc": mode2d_mc(P, *mc.centers),
                                  "mode_fe": tuple(sol.mode())}
        print(f"({tag}) Δ_S={ds:.3f} cross={cross}: MC {mc.elapsed:.0f}s "
              f"<x²> {r['mc']['x2']:.4f} (FE {r['fe']['x2']:.4f}), "
              f"<y²> {r['mc']['y2']:.4f} (FE {r['fe']['y2']:.4f}), max MC {r['mc']['mode2d']} "
              f"FE {r['fe']['mode2d']}, trace <x²> first/last batch "
              f"{r['mc']['x2_trace_first_last']}", flush=True)
        del mc
    effect = []
    for sigma in (0.9, 1.2):
        a = next(r for r in rows if r["sigma"] == sigma and r["cross"])
        b = next(r for r in rows if r["sigma"] == sigma and not r["cross"])
        (Pa, Fa, area), (Pb, Fb, _) = dens[(sigma, True)], dens[(sigma, False)]
        effect.append({
            "delta_s": ETA * sigma,
            "mc_x2": (a["mc"]["x2"], b["mc"]["x2"]),
            "mc_x2_change": 100 * (b["mc"]["x2"] / a["mc"]["x2"] - 1),
            "fe_x2": (a["fe"]["x2"], b["fe"]["x2"]),
            "fe_x2_change": 100 * (b["fe"]["x2"] / a["fe"]["x2"] - 1),
            "mc_mode": (a["mc"]["mode2d"][0], b["mc"]["mode2d"][0]),
            "fe_mode": (a["fe"]["mode2d"][0], b["fe"]["mode2d"][0]),
            "mc_l1": l1_2d(Pa, Pb, area), "fe_l1": l1_2d(Fa, Fb, area)})
    seconds = time.perf_counter() - t0
    os.makedirs(os.path.dirname(RAW), exist_ok=True)
    path = RAW if not args.quick else RAW.replace(".json", "_quick.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"rows": rows, "effect": effect, "seconds": seconds}, f, indent=1)
    if not args.quick:
        figure(panels, PNG)
        write_doc(rows, effect, seconds)
    else:
        figure(panels, "/tmp/figS5_quick.png")
    print(f"done in {seconds / 60:.1f} min; {path}")


if __name__ == "__main__":
    main()
