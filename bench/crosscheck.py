"""FE ↔ Monte Carlo cross-check of the Fig. 3 cases and of an escape-rate case.

For Δ_S = 0.009 and 0.012, with and without cross-diffusion (paper landscape, disk of
radius 2, P2, absorbing), and for Δ_S = 0.012 on a disk of radius 1.3 (escape rate
μ ≈ 4e-3, observable by Monte Carlo): solve FE on h = 0.025 (reference) and h = 0.035
(its difference is the FE error), run :func:`fpsolve.compare.crosscheck` and write

* the tables between the ``bench:crosscheck`` markers of ``docs/crosscheck.md``,
* the figures ``docs/figures/crosscheck_*.png``,
* all numbers to ``bench/results/crosscheck.json``.

Usage::

    python bench/crosscheck.py            # ≈ 8 min on the shared 2-core machine
    python bench/crosscheck.py --quick    # smoke run (≈ 1 min), writes nothing into docs/
    python bench/crosscheck.py --from-json  # docs/ again from bench/results/crosscheck.json
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import matplotlib

matplotlib.use("Agg")

import fpsolve as fp  # noqa: E402
from _report import replace_block  # noqa: E402  (bench/_report.py)
from fpsolve import compare  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DOC = os.path.join(ROOT, "docs", "crosscheck.md")
FIG = os.path.join(ROOT, "docs", "figures")
RAW = os.path.join(HERE, "results", "crosscheck.json")
FIG3 = dict(eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)
# (name, Δ_S, cross-diffusion, disk radius)
CASES = [("ds0009_cross", 0.009, True, 2.0), ("ds0009_nocross", 0.009, False, 2.0),
         ("ds0012_cross", 0.012, True, 2.0), ("ds0012_nocross", 0.012, False, 2.0),
         ("escape_r13", 0.012, True, 1.3)]
H_FINE, H_COARSE = 0.025, 0.035


def run_case(name, ds, cross, radius, seed, quick):
    L = fp.landscapes.paper(**FIG3)
    D = fp.diffusion.sgd(L, ds, cross_diffusion=cross)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # P2 at these h has negative mass ~1e-5 with cross-diffusion (reported in the
        # solution's diagnostics and in docs/fig3_refinement.md); not news here
        warnings.simplefilter("ignore", fp.FPSolveWarning)
        fine = fp.solve(L, D, fp.disk_mesh(radius, h=H_COARSE if quick else H_FINE))
        coarse = fp.solve(L, D, fp.disk_mesh(radius, h=0.05 if quick else H_COARSE))
    # the relaxation spectrum of the coarse operator is as good for choosing a burn-in
    spec = compare.relaxation_times(coarse)
    t_fe = time.perf_counter() - t0
    label = (f"Δ_S = {ds:g}, {'with' if cross else 'without'} cross-diffusion, "
             f"disk radius {radius:g}")
    print(f"{name}: FE {fine.P.size} dofs (h={fine.mesh.h:.3f}) + coarse, spectrum: {t_fe:.0f}s; "
          f"τ_slowest = {spec['tau_slowest']:.3g}, τ_even = {spec['tau_even']:.3g}", flush=True)
    kw = dict(seed=seed, coarse=coarse, spectrum=spec, label=label, current_bins=32,
              t_sample=200.0, verbose=True)
    if radius < 2.0:
        # smaller steps halve the O(dt) remainder that the ln μ-linear-in-√dt
        # extrapolation neglects; ~4000 exits per run (docs/crosscheck.md)
        kw.update(t_sample=300.0, dts=(2e-3, 1e-3, 5e-4))
    if quick:
        kw.update(n_walkers=1024, block_size=64, t_sample=40.0, t_burn=60.0, t_warm=30.0,
                  etas=(0.02, 0.01))
    cc = compare.crosscheck(fine, **kw)
    print(cc.summary(), flush=True)
    print(f"  {cc.config['seconds']:.0f}s", flush=True)
    return cc


def summary_table(results):
    """One line per case: the key numbers."""
    head = ["case", "⟨x²⟩ FE", "⟨x²⟩ EM dt→0", "z", "⟨y²⟩ FE", "⟨y²⟩ EM dt→0", "z",
            "⟨\\|x\\|⟩ z", "mode z", "marginal L1 / noise (p)", "J χ²/bin (n)", "J scale",
            "μ FE", "μ MC"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, cc in results:
        a, fe, e = cc.agreement, cc.fe, cc.em0
        m, c, es = e["marginal"], e["current"], e["escape_rate"]
        if es.get("pooled"):
            mu = (f"{es['exits']} exit{'' if es['exits'] == 1 else 's'} "
                  f"(FE expects {es['expected']:.2g})")
        else:
            mu = f"{es['value']:.4g} ± {es['se']:.2g}"
        lines.append("| " + " | ".join([
            cc.label.replace(", disk radius 2", ""),
            f"{fe['x2']:.5f}", f"{e['x2']['value']:.5f} ± {e['x2']['se']:.5f}",
            f"{a['<x^2>']['z']:+.2f}",
            f"{fe['y2']:.5f}", f"{e['y2']['value']:.5f} ± {e['y2']['se']:.5f}",
            f"{a['<y^2>']['z']:+.2f}", f"{a['<|x|>']['z']:+.2f}", f"{a['mode |x|']['z']:+.2f}",
            f"{m['l1'] / m['noise']:.2f} ({m['p_value']:.2g})",
            f"{c['chi2_per_bin']:.2f} ({c['n']})", f"{c['scale']:.3f} ± {c['scale_se']:.3f}",
            f"{fe['escape_rate']:.3g}", mu]) + " |")
    return "\n".join(lines)


def sgd_table(results):
    """SGD at fixed Δ_S: relative bias of ⟨x²⟩ and ⟨y²⟩ against FE for each η."""
    etas = [r["step"] for r in results[0][1].sgd_runs]
    head = ["case"] + [f"⟨x²⟩ bias η={e:g}" for e in etas] + [f"⟨y²⟩ bias η={e:g}" for e in etas]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, cc in results:
        if not cc.sgd_runs:
            continue
        cells = [cc.label.replace(", disk radius 2", "")]
        for k in ("x2", "y2"):
            for r in cc.sgd_runs:
                cells.append(f"{100 * (r[k][0] / cc.fe[k] - 1):+.1f} %")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_doc(results, seconds):
    blocks = ["### Key numbers", "", summary_table(results), "",
              "z: (MC dt→0 − FE) / √(SE² + err_FE²); marginal: L1 distance over the L1 "
              "expected from MC noise alone, p the probability of a larger L1 from noise "
              "alone; J: χ²/bin and fitted scale J_MC ≈ s·J_FE over the bins where "
              "|J_FE| > 3 SE.", "",
              "### SGD: finite-η bias at fixed Δ_S", "", sgd_table(results), ""]
    for name, cc in results:
        blocks += [f"### {cc.label}", "", cc.to_markdown(), "",
                   f"![{name}](figures/crosscheck_{name}.png)", ""]
        if cc.notes:
            blocks += ["Notes: " + "; ".join(cc.notes), ""]
    blocks.append(f"*Generated by `python bench/crosscheck.py` in {seconds / 60:.1f} min "
                  f"(fpsolve {fp.__version__}); raw numbers in "
                  f"`bench/results/crosscheck.json`.*")
    if not replace_block(DOC, "crosscheck", "\n".join(blocks)):
        raise SystemExit(f"{DOC}: markers <!-- bench:crosscheck:begin/end --> not found")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run, docs/ untouched")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--only", nargs="*", help="case names to run (default all)")
    ap.add_argument("--from-json", action="store_true",
                    help="rewrite docs/ from bench/results/crosscheck.json without running")
    args = ap.parse_args()
    if args.from_json:
        with open(RAW, encoding="utf-8") as f:
            saved = json.load(f)
        results = [(name, compare.CrossCheck.from_dict(d)) for name, d in saved.items()]
        for name, cc in results:
            if cc._arrays is not None:
                cc.plot(os.path.join(FIG, f"crosscheck_{name}.png"))
        write_doc(results, sum(cc.config["seconds"] for _, cc in results))
        return
    t0 = time.perf_counter()
    results = []
    for i, (name, ds, cross, radius) in enumerate(CASES):
        if args.only and name not in args.only:
            continue
        cc = run_case(name, ds, cross, radius, args.seed + i, args.quick)
        results.append((name, cc))
        if not args.quick:
            cc.plot(os.path.join(FIG, f"crosscheck_{name}.png"))
    seconds = time.perf_counter() - t0
    out = {name: cc.to_dict(arrays=True) for name, cc in results}
    os.makedirs(os.path.dirname(RAW), exist_ok=True)
    path = RAW if not args.quick else RAW.replace(".json", "_quick.json")
    if args.only and os.path.exists(path):
        # rerunning some cases: keep the others' saved results
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        saved.update(out)
        out = {name: saved[name] for name, *_ in CASES if name in saved}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, allow_nan=False)
    if not args.quick and all(name in out for name, *_ in CASES):
        merged = [(name, compare.CrossCheck.from_dict(d)) for name, d in out.items()]
        write_doc(merged, sum(cc.config["seconds"] for _, cc in merged))
    print(f"done in {seconds / 60:.1f} min; {path}")


if __name__ == "__main__":
    main()
