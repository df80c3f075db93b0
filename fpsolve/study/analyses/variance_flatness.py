"""Analysis ``variance_flatness``: the Feng–Tu SI's variance–flatness figures at small
scale — ψ of σ_i² ∝ F_i^(−ψ), D_i and τ_i against F_i, the order parameters A_g, C_g and
the learning phases, the accumulated variance spectrum and D_l, flatness-detecting noise
(FDN) against isotropic noise — plus the 2-D random-quadratic check of the three noise
models.

Library calls: ``fpsolve.variance_flatness.experiment_2d`` / ``experiment_digits`` /
``experiment_fdn`` (seeded; everything numerical happens there).  Writes ``table.md``
(ψ and D_l next to the SI's values) and ``vf_*.png``.  The digits parts need
scikit-learn (``pip install 'fpsolve[digits]'``) and are skipped with a note without it.
"""
from __future__ import annotations

import math

import numpy as np

from . import new_figure, strip_times

__all__ = ["run", "arr", "fmt_fit", "FIGURES", "figure_2d", "figure_variance", "figure_d_tau",
           "figure_order", "figure_spectrum", "figure_fdn"]

_NAMES = {"sgd": "SGD", "gd": "GD", "fdn": "GD + FDN", "isotropic": "GD + isotropic"}


def arr(x):
    """A JSON list as a float array (None -> NaN)."""
    return np.array([np.nan if v is None else v for v in x], dtype=float)


def fmt_fit(fit):
    """"exponent [CI low, CI high]" of a power-law fit, "—" without one."""
    return (f"{fit['exponent']:.2f} [{fit['ci'][0]:.2f}, {fit['ci'][1]:.2f}]" if fit else "—")


def experiment(name: str, kwargs: dict, one_blas_thread: bool) -> dict:
    """Run ``fpsolve.vf.experiments.<name>(**kwargs)`` (a Dask task or a local call)."""
    from fpsolve.vf import experiments as X
    from fpsolve.vf.network import blas_threads
    if not one_blas_thread:
        return getattr(X, name)(**kwargs)
    with blas_threads(1):           # tiny matrices: one BLAS thread is fastest and reproducible
        return getattr(X, name)(**kwargs)


def _jobs(p: dict, have: bool) -> list:
    """(part, step name, experiment, kwargs, one BLAS thread) of every requested part."""
    seed = p["seed"]
    jobs = [("2d", "2-D experiment", "experiment_2d",
             dict(seed=seed, n_landscapes=p["landscapes_2d"], n_walkers=p["walkers_2d"],
                  n_steps=p["steps_2d"], window=p["window_2d"]), False)]
    seeds = tuple(seed + k for k in range(p["fdn_seeds"]))
    if p["digits"] and have:
        jobs.append(("digits", "digits variance-flatness", "experiment_digits",
                     dict(seed=seed, iterations=p["iterations"], window=p["window"],
                          n_directions=p["n_directions"], n_boot=p["n_boot"],
                          sub_windows=tuple(w for w in (p["window"] // 4,) if w >= 10)), True))
    if p["fdn"] and have:
        jobs.append(("fdn", "FDN comparison", "experiment_fdn",
                     dict(seeds=seeds, iterations=p["fdn_iterations"]), True))
        if p["fdn_strong"]:
            jobs.append(("fdn_strong", "FDN comparison, 8× noise", "experiment_fdn",
                         dict(seeds=seeds, methods=("fdn", "isotropic"), noise_scale=8 / 32,
                              iterations=p["fdn_iterations"]), True))
    return jobs


def run(p: dict, ctx) -> dict:
    out = {"seed": p["seed"]}
    try:
        import sklearn  # noqa: F401
        have = True
    except ImportError:
        have = False
    want = p["digits"] or p["fdn"]
    if want and not have:
        ctx.progress("note: scikit-learn is not installed: the digits parts are skipped "
                     "(pip install 'fpsolve[digits]')")
    out["skipped"] = [] if have else [k for k in ("digits", "fdn") if p[k]]
    jobs = _jobs(p, have)
    if ctx.client is None:
        for part, step, name, kw, one in jobs:
            with ctx.step(step):
                out[part] = experiment(name, kw, one)
    else:                           # independent seeded experiments: one task each
        with ctx.step(f"{len(jobs)} experiments on the cluster"):
            futures = [ctx.client.submit(experiment, name, kw, one, pure=False)
                       for _, _, name, kw, one in jobs]
            for (part, *_), fut in zip(jobs, futures):
                out[part] = fut.result()
    for part in ("2d", "digits", "fdn", "fdn_strong"):     # wall times are not results
        if part in out:
            out[part], times = strip_times(out[part], part)
            ctx.timings.update({f"library {k}": v for k, v in times.items()
                                if isinstance(v, (int, float))})
    with ctx.step("figures"):
        for rel, (draw, part) in FIGURES.items():
            if part in out:
                ctx.save_figure(rel, draw(out[part]), dpi=120)
    ctx.write_text("table.md", _table(out))
    return out


def _table(out) -> str:
    lines = []
    rd = out.get("digits")
    if rd is not None:
        a = rd["analysis"]
        lines += ["| quantity | this run (8×8 digits, 64–30–30–10) | Feng–Tu SI (MNIST) |",
                  "| --- | --- | --- |",
                  f"| ψ, σ_i² ∝ F_i^(−ψ), directions ≥ 2 | {fmt_fit(a['psi'])} (R² = "
                  f"{a['psi']['r2']:.2f}, {a['psi']['n']} directions) | ≈ 4 (ψ = 4 used for "
                  "LDC, SI S8) |",
                  f"| ψ, all analysed directions | {fmt_fit(a['psi_all_directions'])} | — |",
                  f"| ψ_D, D_i ∝ F_i^(−ψ_D) | {fmt_fit(a['psi_D'])} | ≈ 2 (D_i ∝ F_i^(−2), Fig. S8) |",
                  f"| ψ_τ, τ_i ∝ F_i^(−ψ_τ) | {fmt_fit(a['psi_tau'])} | ≈ 1.8 |"]
        for w in rd["sub_windows"]:
            lines.append(f"| ψ / D_l, last {w['window']} iterations only | {fmt_fit(w['psi'])} / "
                         f"{w['learning_dimension']} ({w['learning_dimension_without_drift']} "
                         "without p_1) | — |")
        lines += [f"| D_l (99.9 % of the variance) | {a['learning_dimension']} of "
                  f"{a['n_params']} weights ({rd['learning_dimension_without_drift']} without "
                  "p_1) | ≪ N_p, grows weakly with N_p (Fig. S16; values only in the figure) |",
                  "", f"Learning phases: ⟨C_g⟩ transition at iteration "
                  f"{rd['transition_iteration']:.0f}, training error 0 from iteration "
                  f"{rd['zero_train_error_iteration']:.0f}, PCA window in the exploration phase: "
                  f"{rd['window_in_exploration']}; final test error "
                  f"{100 * rd['final']['test_error']:.2f} %.", ""]
    r2d = out["2d"]
    lines += ["| 2-D noise model | ψ fitted (95 % CI) | continuum prediction |",
              "| --- | --- | --- |"]
    for m, d in r2d["models"].items():
        lines.append(f"| {m} | {fmt_fit(d['psi'])} | {d['psi_continuum']:g} |")
    rat = np.concatenate([arr(r["F"]) / arr(r["F_hessian"]) for r in r2d["paper"]])
    lines += ["", f"Paper landscape: numerical F_i / Hessian-based F_i = {np.nanmin(rat):.3f} … "
              f"{np.nanmax(rat):.3f} over {rat.size} walker-directions.", ""]
    for key, res in (("fdn", out.get("fdn")), ("fdn_strong", out.get("fdn_strong"))):
        if res is None:
            continue
        if key == "fdn":
            lines += ["| method | test error (%) | training loss | sharpness λ_max | "
                      "F along random directions (geo. mean) |", "| --- | --- | --- | --- | --- |"]
        for m, s in res["summary"].items():
            def ms(k, scale=1.0, f="{:.2f}"):
                m_, sd = s[k]["mean"] * scale, s[k]["std"] * scale
                return f.format(m_) + ("" if sd is None or math.isnan(sd) else " ± " + f.format(sd))
            lab = _NAMES[m] + (f", σ_n = {res['params']['noise_scale']:g}"
                               if m in ("fdn", "isotropic") else "")
            lines.append(f"| {lab} | {ms('test_error', 100)} | {ms('train_loss', 1, '{:.4f}')} | "
                         f"{ms('sharpness')} | {ms('F_random_geomean')} |")
    if out["skipped"]:
        lines += ["", f"Skipped (scikit-learn not installed): {', '.join(out['skipped'])}."]
    return "\n".join(lines).rstrip() + "\n"


def _clean_log(ax):
    from matplotlib.ticker import LogLocator, NullFormatter
    for axis, scale, lim in ((ax.xaxis, ax.get_xscale(), ax.get_xlim()),
                             (ax.yaxis, ax.get_yscale(), ax.get_ylim())):
        if scale == "log":
            axis.set_minor_formatter(NullFormatter())
            if max(lim) / max(min(lim), 1e-300) < 1e3:    # short range: label 1, 2, 5
                axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))


def _fit_line(ax, fit, F, **kw):
    if not fit:
        return
    f = np.geomspace(np.nanmin(F), np.nanmax(F), 50)
    ax.plot(f, fit["prefactor"] * f ** (-fit["exponent"]), **kw)


def figure_2d(r2d):
    fig = new_figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    ax = axes[0]
    colors = {"sgd": "C0", "fdn": "C2", "isotropic": "C3"}
    labels = {"sgd": r"SGD, $D=\Delta_S H^2$", "fdn": r"FDN, $D=\Delta H^+$",
              "isotropic": r"isotropic, $D=\Delta I$"}
    for m, d in r2d["models"].items():
        F, v = arr(d["F"]), arr(d["variance"])
        ax.loglog(F, v, "o", color=colors.get(m, "k"), ms=4,
                  label=f"{labels.get(m, m)}: ψ = {fmt_fit(d['psi'])}")
        _fit_line(ax, d["psi"], F, color=colors.get(m, "k"), lw=1)
    ax.set(xlabel="flatness $F_i$", ylabel=r"variance $\sigma_i^2$",
           title="2-D random quadratics (continuum ψ = 2, 0, −2)")
    ax.legend(loc="lower left", fontsize=8)
    _clean_log(ax)
    ax = axes[1]
    for k, name in enumerate(("sharp direction $p_1$", "flat direction $p_2$")):
        Fn = np.array([arr(r["F"])[k] for r in r2d["paper"]])
        Fh = np.array([arr(r["F_hessian"])[k] for r in r2d["paper"]])
        x = np.array([r["mean"][0] for r in r2d["paper"]])
        ax.plot(x, Fn / Fh, "os"[k], ms=6, label=name)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(xlabel=r"window mean $\bar{x}$ of each walker",
           ylabel="numerical $F_i$ / Hessian-based $F_i$",
           title="paper landscape: SI flatness vs Hessian at the window mean")
    ax.legend(loc="best", fontsize=8)
    return fig


def figure_variance(rd):
    a = rd["analysis"]
    F, v = arr(a["F"]), arr(a["variance"])
    idx = np.array(a["index"])
    fig = new_figure(figsize=(5.8, 4.4), layout="constrained")
    ax = fig.subplots()
    sc = ax.scatter(F[idx >= 2], v[idx >= 2], c=np.log10(idx[idx >= 2]), cmap="viridis", s=18)
    ax.scatter(F[idx == 1], v[idx == 1], marker="*", s=120, color="C3",
               label="$p_1$ (drift mode, not fitted)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _fit_line(ax, a["psi"], F[idx >= 2], color="k", lw=1.2,
              label=f"fit, ψ = {fmt_fit(a['psi'])} (95 % CI)")
    fig.colorbar(sc, ax=ax).set_label(r"$\log_{10} i$")
    ax.set(xlabel="flatness $F_i$", ylabel=r"variance $\sigma_i^2$")
    _clean_log(ax)
    pr = rd["params"]
    ax.set_title(f"SGD on 8×8 digits, {'–'.join(map(str, pr['sizes']))}, B = {pr['batch_size']}, "
                 f"α = {pr['lr']}\nhidden 1 → 2 weights, window {pr['window']} iterations",
                 fontsize=9)
    ax.legend(loc="lower left", fontsize=8)
    return fig


def figure_d_tau(rd):
    a = rd["analysis"]
    F, D, tau = arr(a["F"]), arr(a["D"]), arr(a["tau"])
    idx = np.array(a["index"])
    m = idx >= 2
    fig = new_figure(figsize=(13, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, y, fit, lab in ((axes[0], D, a["psi_D"], r"$D_i$ (per iteration²)"),
                            (axes[1], tau, a["psi_tau"], r"$\tau_i$ (iterations)")):
        ax.loglog(F[m], y[m], "o", ms=4)
        _fit_line(ax, fit, F[m], color="k", lw=1.2, label=f"exponent {fmt_fit(fit)}")
        ax.set(xlabel="flatness $F_i$", ylabel=lab)
        ax.legend(loc="lower left", fontsize=8)
        _clean_log(ax)
    axes[0].set_title(r"$D_i$ vs $F_i$ (SI Fig. S8: ∝ $F^{-2}$)")
    axes[1].set_title(r"$\tau_i$ vs $F_i$ (SI: ∝ $F^{-1.8}$)")
    ax = axes[2]
    t = arr(rd["lags"]["t"])
    sel = np.unique(np.round(np.geomspace(2, len(a["index"]), 5)).astype(int) - 1)
    for k in sel:
        ax.plot(t, arr(rd["lags"]["G"][k]), label=f"i = {a['index'][k]}")
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xlabel="lag t (iterations)", ylabel=r"$G_i(t)=\int_{-t}^{t} c_i$",
           title="integrated velocity correlation (SI Fig. S7A)")
    ax.legend(fontsize=8)
    return fig


def figure_order(rd):
    ipe = rd["iterations_per_epoch"]
    o = rd["order"]
    t = arr(o["t"]) / ipe
    h = rd["history"]
    it = arr(h["iteration"]) / ipe
    fig = new_figure(figsize=(7.5, 8), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
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
    axes[2].legend(loc="upper right", fontsize=8)
    ts = rd["transition_iteration"] / ipe
    tz = rd["zero_train_error_iteration"] / ipe
    ws = (rd["params"]["iterations"] - rd["params"]["window"]) / ipe
    for ax in axes:
        if np.isfinite(ts):
            ax.axvline(ts, color="C3", ls="--", lw=1)
        if np.isfinite(tz):
            ax.axvline(tz, color="C2", ls=":", lw=1.2)
        ax.axvspan(ws, rd["params"]["iterations"] / ipe, color="0.9", zorder=-1)
    axes[0].set_xscale("log")
    axes[0].set_title(f"order parameters (moving average over one epoch, {ipe} iterations)\n"
                      "red dashed: ⟨C_g⟩ transition; green dotted: training error 0; "
                      "grey: PCA window", fontsize=9)
    axes[0].set_xlim(t[0] if t[0] > 0 else 1.0 / ipe, None)
    return fig


def figure_spectrum(rd):
    a = rd["analysis"]
    acc = arr(a["accumulated_variance"])
    var = np.diff(np.concatenate([[0.0], acc]))
    i = np.arange(1, acc.size + 1)
    acc2 = np.cumsum(var[1:]) / var[1:].sum()
    fig = new_figure(figsize=(6.2, 4.4), layout="constrained")
    ax = fig.subplots()
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
    ax.set(xlabel="PCA direction i", ylabel="variance not yet accumulated",
           title=f"accumulated variance spectrum, {a['n_params']} weights (SI Fig. S16A)")
    ax.legend(loc="lower left", fontsize=8)
    return fig


def figure_fdn(rf):
    fig = new_figure(figsize=(13, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    for m, c in rf["curves"].items():
        axes[0].plot(arr(c["iteration"]), arr(c["test_error"]) * 100, label=_NAMES[m], lw=1)
    axes[0].set(xlabel="iteration", ylabel="test error (%)", ylim=(0, 15),
                title=f"seed {rf['params']['seeds'][0]}")
    axes[0].legend(fontsize=8)
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
        ax.set_xticks(range(len(ms)), [_NAMES[m] for m in ms])
        ax.set_ylabel(lab)
    axes[1].set_title(f"{len(rf['params']['seeds'])} seeds, {rf['params']['n_test']} test images")
    axes[2].set_title("largest Hessian eigenvalue of the training loss")
    return fig


#: file -> (function drawing it, the result part it shows: "2d", "digits" or "fdn")
FIGURES = {"vf_2d.png": (figure_2d, "2d"),
           "vf_variance_flatness.png": (figure_variance, "digits"),
           "vf_diffusion_tau.png": (figure_d_tau, "digits"),
           "vf_order_parameters.png": (figure_order, "digits"),
           "vf_spectrum.png": (figure_spectrum, "digits"),
           "vf_fdn.png": (figure_fdn, "fdn")}
