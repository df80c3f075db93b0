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

import matplotlib        # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt   # noqa: E402
import numpy as np                # noqa: E402

from fpsolve.vf import experiments as X   # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIG = ROOT / "docs" / "figures"
plt.rcParams.update({"font.size": 10, "axes.titlesize": 10, "legend.fontsize": 8})


def arr(x):
    return np.array([np.nan if v is None else v for v in x], dtype=float)


def clean_log(ax):
    """Plain major labels only: matplotlib's minor log labels collide on short ranges."""
    from matplotlib.ticker import LogLocator, NullFormatter
    for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
        if scale == "log":
            axis.set_minor_formatter(NullFormatter())
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))


def fit_line(ax, fit, F, **kw):
    f = np.geomspace(np.nanmin(F), np.nanmax(F), 50)
    ax.plot(f, fit["prefactor"] * f ** (-fit["exponent"]), **kw)


def fmt_fit(fit):
    return (f"{fit['exponent']:.2f} [{fit['ci'][0]:.2f}, {fit['ci'][1]:.2f}]"
            if fit else "—")


# --------------------------------------------------------------------- figures
def figure_2d(r2d):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ax = axes[0]
    colors = {"sgd": "C0", "fdn": "C2", "isotropic": "C3"}
    labels = {"sgd": r"SGD, $D=\Delta_S H^2$", "fdn": r"FDN, $D=\Delta H^+$",
              "isotropic": r"isotropic, $D=\Delta I$"}
    for m, d in r2d["models"].items():
        F, v = arr(d["F"]), arr(d["variance"])
        ax.loglog(F, v, "o", color=colors[m], ms=4,
                  label=f"{labels[m]}: ψ = {fmt_fit(d['psi'])}")
        fit_line(ax, d["psi"], F, color=colors[m], lw=1)
    ax.set_xlabel("flatness $F_i$")
    ax.set_ylabel(r"variance $\sigma_i^2$")
    ax.set_title("2-D random quadratics: only landscape-dependent noise\n"
                 "gives the inverse relation (continuum ψ = 2, 0, −2)")
    ax.legend(loc="lower left")
    clean_log(ax)
    ax = axes[1]
    for k, name in enumerate(("sharp direction $p_1$", "flat direction $p_2$")):
        Fn = np.array([arr(r["F"])[k] for r in r2d["paper"]])
        Fh = np.array([arr(r["F_hessian"])[k] for r in r2d["paper"]])
        x = np.array([r["mean"][0] for r in r2d["paper"]])
        ax.plot(x, Fn / Fh, "os"[k], ms=6, label=name)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel(r"window mean $\bar{x}$ of each walker")
    ax.set_ylabel(r"numerical $F_i$ / Hessian-based $2\sqrt{2(e-1)L_0/h_i}$")
    off = r2d["params"]["offset"]
    ax.set_title(f"paper landscape + offset {off}, SGD Δ_S = {r2d['params']['paper_delta_s']}:\n"
                 "SI flatness vs Hessian at the window mean ($h_i = p_i^T H p_i$)")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(FIG / "vf_2d.png", dpi=120)
    plt.close(fig)


def figure_variance(rd):
    a = rd["analysis"]
    F, v = arr(a["F"]), arr(a["variance"])
    idx = np.array(a["index"])
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    sc = ax.scatter(F[idx >= 2], v[idx >= 2], c=np.log10(idx[idx >= 2]), cmap="viridis", s=18)
    ax.scatter(F[idx == 1], v[idx == 1], marker="*", s=120, color="C3",
               label="$p_1$ (drift mode, not fitted)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    fit_line(ax, a["psi"], F[idx >= 2], color="k", lw=1.2,
             label=f"fit, ψ = {fmt_fit(a['psi'])} (95 % CI)")
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label(r"$\log_{10} i$")
    ax.set_xlabel("flatness $F_i$")
    ax.set_ylabel(r"variance $\sigma_i^2$")
    clean_log(ax)
    p = rd["params"]
    ax.set_title(f"SGD on 8×8 digits, {'–'.join(map(str, p['sizes']))}, "
                 f"B = {p['batch_size']}, α = {p['lr']}\n"
                 f"weights hidden 1 → 2, window {p['window']} iterations")
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(FIG / "vf_variance_flatness.png", dpi=120)
    plt.close(fig)


def figure_d_tau(rd):
    a = rd["analysis"]
    F, D, tau = arr(a["F"]), arr(a["D"]), arr(a["tau"])
    idx = np.array(a["index"])
    m = idx >= 2
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9))
    for ax, y, fit, lab in ((axes[0], D, a["psi_D"], r"$D_i$ (per iteration²)"),
                            (axes[1], tau, a["psi_tau"], r"$\tau_i$ (iterations)")):
        ax.loglog(F[m], y[m], "o", ms=4)
        fit_line(ax, fit, F[m], color="k", lw=1.2, label=f"exponent {fmt_fit(fit)}")
        ax.set_xlabel("flatness $F_i$")
        ax.set_ylabel(lab)
        ax.legend(loc="lower left")
        clean_log(ax)
    axes[0].set_title(r"$D_i = C_i(0)$ vs $F_i$ (SI Fig. S8: ∝ $F^{-2}$)")
    axes[1].set_title(r"$\tau_i$ (Eq. S19) vs $F_i$ (SI: ∝ $F^{-1.8}$)")
    ax = axes[2]
    t = arr(rd["lags"]["t"])
    sel = np.unique(np.round(np.geomspace(2, len(a["index"]), 5)).astype(int) - 1)
    for k in sel:
        ax.plot(t, arr(rd["lags"]["G"][k]), label=f"i = {a['index'][k]}")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("lag t (iterations)")
    ax.set_ylabel(r"$G_i(t)=\int_{-t}^{t} c_i$")
    ax.set_title("integrated velocity correlation (SI Fig. S7A)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(FIG / "vf_diffusion_tau.png", dpi=120)
    plt.close(fig)


def figure_order(rd):
    ipe = rd["iterations_per_epoch"]
    o = rd["order"]
    t = arr(o["t"]) / ipe
    h = rd["history"]
    it = arr(h["iteration"]) / ipe
    fig, axes = plt.subplots(3, 1, figsize=(7.5, 8), sharex=True)
    axes[0].plot(t, arr(o["A"]), lw=1)
    axes[0].set_ylabel(r"$\langle A_g\rangle$")
    axes[1].plot(t, arr(o["C"]), lw=1, color="C1")
    axes[1].axhline(0, color="k", lw=0.5)
    axes[1].set_ylabel(r"$\langle C_g\rangle$")
    axes[2].semilogy(it, arr(h["train_loss"]), label="training loss (CE)")
    axes[2].semilogy(it, np.maximum(arr(h["train_error"]), 1e-4),
                     label="training error (0 drawn at 1e-4)")
    axes[2].semilogy(it, arr(h["test_error"]), label="test error")
    axes[2].set_xlabel("epoch")
    axes[2].legend(loc="upper right")
    ts = rd["transition_iteration"] / ipe
    tz = rd["zero_train_error_iteration"] / ipe
    ws = (rd["params"]["iterations"] - rd["params"]["window"]) / ipe
    for ax in axes:
        ax.axvline(ts, color="C3", ls="--", lw=1)
        if np.isfinite(tz):
            ax.axvline(tz, color="C2", ls=":", lw=1.2)
        ax.axvspan(ws, rd["params"]["iterations"] / ipe, color="0.9", zorder=-1)
    axes[0].set_xscale("log")
    axes[0].set_title(f"order parameters, moving average over one epoch ({ipe} iterations)\n"
                      f"red dashed: ⟨C_g⟩ transition (epoch {ts:.1f})\n"
                      f"green dotted: training error reaches 0 (epoch {tz:.0f}); "
                      "grey: PCA window")
    axes[0].set_xlim(t[0] if t[0] > 0 else 1.0 / ipe, None)
    fig.tight_layout()
    fig.savefig(FIG / "vf_order_parameters.png", dpi=120)
    plt.close(fig)


def figure_spectrum(rd):
    a = rd["analysis"]
    acc = arr(a["accumulated_variance"])
    var = np.diff(np.concatenate([[0.0], acc]))
    i = np.arange(1, acc.size + 1)
    # without the drift mode p_1: the spectrum of the diffusive directions
    acc2 = np.cumsum(var[1:]) / var[1:].sum()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    with np.errstate(divide="ignore"):
        ax.loglog(i, np.maximum(1 - acc, 1e-16), lw=1.5, label="all directions")
        ax.loglog(i[1:], np.maximum(1 - acc2, 1e-16), lw=1.5, ls="--",
                  label="without the drift mode $p_1$")
    Dl, Dl2 = a["learning_dimension"], rd["learning_dimension_without_drift"]
    ax.axhline(1e-3, color="0.5", lw=0.8)
    ax.axvline(Dl, color="C0", lw=1, ls=":")
    ax.axvline(Dl2 + 1, color="C1", lw=1, ls=":")
    ax.text(Dl * 1.05, 3e-2, f"$D_l$ = {Dl}", color="C0")
    ax.text((Dl2 + 1) * 1.05, 3e-1, f"{Dl2} without $p_1$", color="C1")
    ax.set_ylim(1e-8, 1.5)
    ax.set_xlabel("PCA direction i")
    ax.set_ylabel(r"variance not yet accumulated, $1-\sum_{j\leq i}\sigma_j^2/\sum\sigma^2$")
    ax.set_title(f"accumulated variance spectrum, {a['n_params']} weights (SI Fig. S16A)\n"
                 "$D_l$: directions holding 99.9 % (grey line: 10$^{-3}$ left)")
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(FIG / "vf_spectrum.png", dpi=120)
    plt.close(fig)


def figure_fdn(rf):
    names = {"sgd": "SGD", "gd": "GD", "fdn": "GD + FDN", "isotropic": "GD + isotropic"}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9))
    for m, c in rf["curves"].items():
        axes[0].plot(arr(c["iteration"]), arr(c["test_error"]) * 100, label=names[m], lw=1)
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("test error (%)")
    axes[0].set_ylim(0, 15)
    axes[0].set_title(f"seed {rf['params']['seeds'][0]}")
    axes[0].legend()
    ms = list(rf["summary"])
    for ax, key, lab in ((axes[1], "test_error", "final test error (%)"),
                         (axes[2], "sharpness", r"sharpness $\lambda_{max}(H)$")):
        scale = 100 if key == "test_error" else 1
        for j, m in enumerate(ms):
            vals = [r[key] * scale for r in rf["runs"] if r["method"] == m]
            ax.plot(np.full(len(vals), j) + np.linspace(-0.1, 0.1, len(vals)), vals, "o",
                    color=f"C{j}")
            ax.errorbar(j + 0.25, np.mean(vals), yerr=np.std(vals, ddof=1) if len(vals) > 1
                        else 0, fmt="s", color=f"C{j}", capsize=3)
        ax.set_xticks(range(len(ms)), [names[m] for m in ms])
        ax.set_ylabel(lab)
    axes[1].set_title(f"{len(rf['params']['seeds'])} seeds, {rf['params']['n_test']} test "
                      "images (1 image = 0.2 %)")
    axes[2].set_title("largest Hessian eigenvalue of the training loss")
    fig.tight_layout()
    fig.savefig(FIG / "vf_fdn.png", dpi=120)
    plt.close(fig)


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
    if not args.no_figures:
        figure_2d(r2d)
        if rd is not None:
            figure_variance(rd)
            figure_d_tau(rd)
            figure_order(rd)
            figure_spectrum(rd)
            figure_fdn(rf)
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
