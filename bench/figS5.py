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
import time
import warnings

import numpy as np

import fpsolve as fp
from _report import replace_block  # noqa: E402  (bench/_report.py)
from fpsolve.stochastic import montecarlo
from fpsolve.study.analyses.figs5 import (bin_average, fe_numbers, l1, mc_numbers, mode2d,
                                          figure as figure_s5)

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


def measure(sol, mc):
    """Side-by-side numbers of one case."""
    mc_, fe = mc_numbers(mc), fe_numbers(sol)
    _, _, trace_cov = mc.moment_trace()
    mc_.update(mode2d=tuple(mc_["mode2d"]),
               x2_trace_first_last=[float(trace_cov[0, 0, 0]), float(trace_cov[-1, 0, 0])],
               exits=int(mc.exits), n_walkers=mc.n_walkers, n_steps=mc.n_steps,
               n_burn=mc.n_burn, seconds=mc.elapsed)
    fe["mode2d"] = tuple(fe["mode2d"])
    return {"mc": mc_, "fe": fe}


def figure(panels, path, h):
    """2 × 4: for each Δ_S a row [MC | FE] with cross-diffusion, [MC | FE] without."""
    p = {"sigma": [0.9, 1.2], "cross_diffusion": [True, False], "eta": ETA,
         "extent": EXTENT[1], "order": 2, "h": h, "radius": 2.0}
    figure_s5(p, panels).savefig(path, dpi=100)


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
    if not replace_block(DOC, "figS5", "\n".join(lines)):
        raise SystemExit(f"{DOC}: markers <!-- bench:figS5:begin/end --> not found")


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
    h = 0.05 if args.quick else 0.025
    rows, panels, dens = [], {}, {}
    for k, (tag, sigma, cross) in enumerate(CASES):
        ds = ETA * sigma
        sol = fe_solution(ds, cross, h)
        mc = mc_run(sigma, cross, args.seed + k, args.quick)
        P, xe, ye = mc.density
        area = np.diff(xe)[0] * np.diff(ye)[0]
        F = bin_average(sol, xe, ye)
        r = measure(sol, mc)
        r.update(panel=tag, sigma=sigma, delta_s=ds, cross=cross, l1_mc_fe=l1(P, F, area))
        rows.append(r)
        dens[(sigma, cross)] = (P, F, area)
        panels[(sigma, cross)] = {"mc": P, "fe": F, "xe": xe, "ye": ye, "tag": f"({tag})",
                                  "mode_mc": mode2d(P, *mc.centers),
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
            "mc_l1": l1(Pa, Pb, area), "fe_l1": l1(Fa, Fb, area)})
    seconds = time.perf_counter() - t0
    os.makedirs(os.path.dirname(RAW), exist_ok=True)
    path = RAW if not args.quick else RAW.replace(".json", "_quick.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"rows": rows, "effect": effect, "seconds": seconds}, f, indent=1)
    if not args.quick:
        figure(panels, PNG, h)
        write_doc(rows, effect, seconds)
    else:
        figure(panels, "/tmp/figS5_quick.png", h)
    print(f"done in {seconds / 60:.1f} min; {path}")


if __name__ == "__main__":
    main()
