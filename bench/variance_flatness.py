"""Reproduce the Feng–Tu SI's variance–flatness figures at small scale (issue 8).

    python bench/variance_flatness.py            # default, ≈ 5 min on 2 busy cores
    python bench/variance_flatness.py --quick    # smoke run, < 1 min
    python bench/variance_flatness.py --json out.json

Writes docs/figures/vf_*.png and prints the Markdown tables of docs/variance_flatness.md.
Everything is seeded (--seed): the same command gives the same numbers.  Needs
scikit-learn for the digits parts (pip install 'fpsolve[digits]'); without it only the
2-D part runs.
"""
import os

# one BLAS thread: the matrices are tiny and the machine is shared (see vf/network.py)
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse          # noqa: E402
import json              # noqa: E402
import math              # noqa: E402
import time              # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np                # noqa: E402

from fpsolve.study.analyses.variance_flatness import FIGURES, arr, fmt_fit  # noqa: E402
from fpsolve.vf import experiments as X   # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIG = ROOT / "docs" / "figures"


# ---------------------------------------------------------------------- tables
def tables(r2d, rd, rf, rs=None):
    out = []
    if rd is not None:
        a = rd["analysis"]
        out += ["| quantity | this run (8×8 digits, 64–30–30–10) | Feng–Tu (MNIST) |",
                "|---|---|---|",
                f"| ψ, σ_i² ∝ F_i^(−ψ), directions ≥ 2 | {fmt_fit(a['psi'])} "
                f"(R² = {a['psi']['r2']:.2f}, {a['psi']['n']} directions) | ≈ 4 (ψ = 4 used "
                "for LDC, SI S8) |",
                f"| ψ, all analysed directions | {fmt_fit(a['psi_all_directions'])} | — |",
                f"| ψ_D, D_i ∝ F_i^(−ψ_D) | {fmt_fit(a['psi_D'])} "
                "| ≈ 2 (D_i ∝ F_i^(−2), S4/Fig. S8) |",
                f"| ψ_τ, τ_i ∝ F_i^(−ψ_τ) | {fmt_fit(a['psi_tau'])} | ≈ 1.8 (S5) |",
                *[f"| ψ / D_l, last {w['window']} iterations only | {fmt_fit(w['psi'])} / "
                  f"{w['learning_dimension']} ({w['learning_dimension_without_drift']} without "
                  "p_1) | — |" for w in rd["sub_windows"]],
                f"| D_l (99.9 % of the variance) | {a['learning_dimension']} of "
                f"{a['n_params']} weights ({rd['learning_dimension_without_drift']} "
                "without p_1) | ≪ N_p, grows weakly with N_p (Fig. S16; values only in "
                "the figure) |", ""]
    if r2d is not None:
        out += ["| 2-D noise model | ψ fitted (95 % CI) | continuum prediction |", "|---|---|---|"]
        for m, d in r2d["models"].items():
            out.append(f"| {m} | {fmt_fit(d['psi'])} | {d['psi_continuum']:g} |")
        rat = np.concatenate([arr(r["F"]) / arr(r["F_hessian"]) for r in r2d["paper"]])
        out += ["", f"Paper landscape: numerical F_i / Hessian-based F_i = "
                f"{rat.min():.3f} … {rat.max():.3f} over {rat.size} walker-directions.", ""]
    if rf is not None:
        names = {"sgd": "SGD", "gd": "GD", "fdn": "GD + FDN", "isotropic": "GD + isotropic"}
        out += ["| method | test error (%) | training loss | sharpness λ_max | "
                "F along random directions (geo. mean) |", "|---|---|---|---|---|"]
        for res, tag in ((rf, ""), (rs, "strong")):
            if res is None:
                continue
            for m, s in res["summary"].items():
                def ms(k, scale=1.0, f="{:.2f}"):
                    m_, sd = s[k]["mean"] * scale, s[k]["std"] * scale
                    return f.format(m_) + ("" if math.isnan(sd) else " ± " + f.format(sd))
                lab = names[m] + (f", σ_n = {res['params']['noise_scale']:g}"
                                  if m in ("fdn", "isotropic") else "")
                out.append(f"| {lab} | {ms('test_error', 100)} | "
                           f"{ms('train_loss', 1, '{:.4f}')} | {ms('sharpness')} | "
                           f"{ms('F_random_geomean')} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write all results to this JSON file")
    ap.add_argument("--no-figures", action="store_true")
    args = ap.parse_args()
    FIG.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.quick:
        k2 = dict(n_landscapes=3, n_steps=6000, window=5000, n_walkers=2)
        kd = dict(iterations=3000, window=800, n_directions=15, n_boot=300, sub_windows=(400,))
        kf = dict(seeds=(args.seed,), iterations=300, n_random_directions=4)
    else:
        k2, kd, kf = {}, {}, dict(seeds=(args.seed, args.seed + 1, args.seed + 2))
    results = {}
    t = time.perf_counter()
    r2d = X.experiment_2d(seed=args.seed, **k2)
    print(f"2-D experiment: {time.perf_counter() - t:.1f} s", flush=True)
    results["2d"] = r2d
    try:
        import sklearn  # noqa: F401
        have_digits = True
    except ImportError:
        have_digits = False
        print("scikit-learn not installed: digits parts skipped (pip install 'fpsolve[digits]')")
    rd = rf = rs = None
    if have_digits:
        t = time.perf_counter()
        rd = X.experiment_digits(seed=args.seed, **kd)
        print(f"digits variance-flatness: {time.perf_counter() - t:.1f} s "
              f"(train {rd['seconds']['train']:.1f} s)", flush=True)
        t = time.perf_counter()
        rf = X.experiment_fdn(**kf)
        print(f"FDN comparison: {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        # 8× SGD's noise strength: does the shape of the noise matter more when it is strong?
        rs = X.experiment_fdn(methods=("fdn", "isotropic"), noise_scale=8 / 32, **kf)
        print(f"FDN comparison, strong noise: {time.perf_counter() - t:.1f} s", flush=True)
        results["digits"], results["fdn"], results["fdn_strong"] = rd, rf, rs
    if not args.no_figures:     # the variance_flatness analysis' figures
        parts = {"2d": r2d, "digits": rd, "fdn": rf}
        for name, (draw, part) in FIGURES.items():
            if parts[part] is not None:
                draw(parts[part]).savefig(FIG / name, dpi=120)
    total = time.perf_counter() - t0
    results["seconds_total"] = total
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print()
    print(tables(r2d, rd, rf, rs))
    if rd is not None:
        print(f"\ndigits: transition (C_g) at iteration {rd['transition_iteration']:.0f}, "
              f"training error 0 from iteration {rd['zero_train_error_iteration']:.0f}, "
              f"window in exploration phase: {rd['window_in_exploration']}; final test error "
              f"{100 * rd['final']['test_error']:.2f} %")
    print(f"\ntotal {total:.0f} s, load average {load:.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
