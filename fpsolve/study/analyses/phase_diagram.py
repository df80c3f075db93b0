"""Analysis ``phase_diagram``: Yang–Tang–Tu Fig. 2 by Monte Carlo SGD — trajectories,
the (σ, η) phase diagram of F(x_ss) and τ_s, the dense σ cut at η = ``cut_eta`` with σ*
and σ_m against the adiabatic theory, and the critical exponents α, β1, β2 with
bootstrap confidence intervals next to the paper's values.

Library calls: ``fpsolve.phase.trajectories`` / ``run_grid`` / ``exponents`` /
``critical_sigma`` / ``divergence_sigma``, ``fpsolve.theory.adiabatic``.  Writes
``fig2.png``, ``table.md``, ``grid.npz`` and ``cut.npz`` (``PhaseGrid.load`` reads them).
Definitions of x_ss, t_s, τ_s and "diverged": docs/phase_diagram.md §2.
"""
from __future__ import annotations

import numpy as np

from . import md_table, new_figure

__all__ = ["run", "crossing", "boundaries", "post_transient_x", "theory_cut", "edges",
           "theory_lines", "figure"]

#: The paper's numbers (SM Sec. II C, Fig. S4 caption); S46 labels (β1 below σ*).
PAPER = {"sigma_star": 0.0105, "alpha": 0.85, "beta1": 0.56, "beta2": 0.48}
#: Asymptotic adiabatic theory (S43, S45).
THEORY = {"alpha": 1.0, "beta1": 0.5, "beta2": 0.5}
WINDOWS = {"window_alpha": (0.03, 1.0), "window_below": (0.03, 0.7), "window_above": (0.03, 1.0)}


def _cut_sigmas(p, L):
    from fpsolve import phase as ph
    s_star = float(ph.critical_sigma(p["cut_eta"], L))
    parts = [np.geomspace(1e-3, 1.0, p["cut_n_sigma"]), [s_star]]
    if p["cut_n_dense"]:
        r = np.geomspace(0.01, 0.95, p["cut_n_dense"])
        parts += [s_star * (1 - r), s_star * (1 + r)]
    return np.unique(np.round(np.concatenate(parts), 10))


def crossing(sigma, values, level):
    """First σ (log-interpolated) at which ``values`` crosses ``level`` upwards."""
    v = np.asarray(values, dtype=float)
    for k in range(1, v.size):
        if np.isfinite(v[k - 1]) and np.isfinite(v[k]) and v[k - 1] <= level < v[k]:
            a = (level - v[k - 1]) / (v[k] - v[k - 1])
            return float(np.exp(np.log(sigma[k - 1]) + a * np.log(sigma[k] / sigma[k - 1])))
    return float("nan")


def boundaries(grid):
    """Per η: σ of the I → II crossing (x_ss = x_threshold) and of phase III (diverged)."""
    xt, dt = grid.settings["x_threshold"], grid.settings["div_threshold"]
    s12 = np.array([crossing(grid.sigma, np.nan_to_num(grid.x_ss[i], nan=9.0), xt)
                    for i in range(grid.eta.size)])
    s23 = np.array([crossing(grid.sigma, grid.diverged[i], dt) for i in range(grid.eta.size)])
    return s12, s23


def post_transient_x(L, eta, sigmas, seed) -> np.ndarray:
    """Mean |x| per σ after the fast descent into the valley (τ = 2): where the slow
    one-dimensional search of the adiabatic theory starts."""
    from fpsolve import phase as ph
    n = int(np.ceil(2.0 / eta))
    tr = ph.trajectories(sigmas, eta=eta, n_steps=n, landscape=L, n_walkers=256,
                         record_every=n, seed=seed)
    return np.nanmean(np.abs(tr.x[:, :, -1]), axis=1)


def theory_cut(L, sigma, eta, tol, x0):
    """Adiabatic theory along σ at fixed η with the finite-η noise Δ_S/(1 − ηλ0/2).

    Returns F(x_ss) and τ_s(x0 → x_ss + tol) (S30, S44) for each σ > 0; ``x0`` is one
    start per σ.
    """
    import fpsolve as fp
    fac = 1.0 - 0.5 * eta * L.lam0
    F, tau = np.full(sigma.size, np.nan), np.full(sigma.size, np.nan)
    for k, s in enumerate(sigma):
        if s <= 0:
            continue
        th = fp.theory.adiabatic(L, eta * s / fac)
        F[k] = float(L.flatness(th.x_ss))
        target = th.x_ss + tol
        if target < x0[k]:      # else the fast descent already got there: no 1-D search
            tau[k] = th.search_time(x0[k], target)
    return F, tau


def run(p: dict, ctx) -> dict:
    import fpsolve as fp
    from fpsolve import phase as ph
    from ..build import build_landscape

    L = build_landscape(p["landscape"])
    seed, W = p["seed"], ctx.workers
    with ctx.step("trajectories"):
        n = p["trajectory_steps"]
        every = max(1, n // 5000)
        n = (n // every) * every
        traj = ph.trajectories(tuple(p["trajectory_sigma"]), eta=p["trajectory_eta"],
                               n_steps=n, landscape=L, record_every=every, seed=seed)
    eta = np.geomspace(*p["eta"], p["n_eta"]) if p["n_eta"] > 1 else np.array([p["eta"][0]])
    sigma = np.geomspace(*p["sigma"], p["n_sigma"])
    with ctx.step(f"grid {eta.size} η × {sigma.size} σ"):
        grid = ph.run_grid(sigma, eta, landscape=L, T=p["T"], n_walkers=p["n_walkers"],
                           tol=p["tol"], seed=seed, workers=W, client=ctx.client)
    with ctx.step("cut"):
        cut = ph.run_grid(_cut_sigmas(p, L), [p["cut_eta"]], landscape=L, T=p["cut_T"],
                          n_walkers=p["cut_n_walkers"], tol=p["tol"], seed=seed + 1, workers=W,
                          keep_walkers=p["exponents"], keep_hits=p["exponents"],
                          client=ctx.client)
    with ctx.step("theory along the cut"):
        ce = p["cut_eta"]
        ts = np.geomspace(1e-3, min(0.3, float(cut.sigma.max())), 40)
        x0 = post_transient_x(L, ce, ts, seed + 2)
        F_th, tau_th = theory_cut(L, ts, ce, p["tol"], x0)
    fit = None
    if p["exponents"]:
        with ctx.step("exponent fits"):
            fit = ph.exponents(cut, sigma_star=float(ph.critical_sigma(ce, L)),
                               n_boot=p["n_boot"], seed=seed, **WINDOWS)
    with ctx.step("save grids"):
        from ..outputs import atomic_path
        for rel, g in (("grid.npz", grid), ("cut.npz", cut)):
            with atomic_path(ctx.path(rel)) as tmp:
                g.save(tmp)
            ctx._record(rel)

    s12, s23 = boundaries(grid)
    s_star_cut = crossing(cut.sigma, np.nan_to_num(cut.x_ss[0], nan=9.0),
                           cut.settings["x_threshold"])
    s_m_cut = crossing(cut.sigma, cut.diverged[0], cut.settings["div_threshold"])
    dstar = float(fp.theory.critical_delta_s(L))
    out = {
        "landscape": p["landscape"],
        "grid": {"eta": eta, "sigma": sigma, "T": p["T"], "n_walkers": p["n_walkers"],
                 "phase": grid.phase(),
                 "sigma_I_II": s12, "sigma_II_III": s23,
                 "sigma_star_theory": dstar / eta,
                 "sigma_star_finite_eta": ph.critical_sigma(eta, L),
                 "sigma_m_S39": ph.divergence_sigma(eta, L),
                 "sigma_m_S40": ph.divergence_sigma(eta, L, approx="S40")},
        "cut": {"eta": ce, "sigma": cut.sigma, "x_ss": cut.x_ss[0], "F_ss": cut.F_ss[0],
                "tau_s": cut.tau_s[0], "tau_s_se": cut.tau_s_se[0], "V_x": cut.V_x[0],
                "V_y": cut.V_y[0], "diverged": cut.diverged[0], "censored": cut.censored[0],
                "x_drift": cut.x_drift[0],
                "sigma_star_mc": s_star_cut, "sigma_m_mc": s_m_cut,
                "sigma_star_finite_eta": float(ph.critical_sigma(ce, L)),
                "sigma_star_continuum": dstar / ce,
                "sigma_m_S39": float(ph.divergence_sigma(ce, L))},
        "theory_cut": {"sigma": ts, "x0": x0, "F": F_th, "tau_s": tau_th},
        "paper": PAPER,
    }
    if fit is not None:
        out["exponents"] = {"sigma_star": fit.sigma_star, "eta": fit.eta, "level": fit.level,
                            "n_boot": fit.n_boot, "windows": fit.windows,
                            **{k: {"value": getattr(fit, k), "ci": list(fit.ci[k])}
                               for k in ("alpha", "beta1", "beta2")}}
    with ctx.step("figure"):
        c = out["cut"]
        fig = figure(L, traj, grid, cut, cut_eta=ce, tol=p["tol"], sigma_boundaries=(s12, s23),
                     s_star=c["sigma_star_finite_eta"], s_m=c["sigma_m_mc"],
                     theory=out["theory_cut"])
        ctx.save_figure("fig2.png", fig, dpi=100)
    ctx.write_text("table.md", _table(p, L, grid, cut, out))
    return out


def _table(p, L, grid, cut, out) -> str:
    from fpsolve import phase as ph
    g, c = out["grid"], out["cut"]
    lines = [f"Paper landscape ε = {L.eps:g}, λ = ({L.lam0:g}, {L.lam1:g}, {L.lam2:g}), start "
             f"(1.5, 1.5). Grid: {grid.eta.size} η × {grid.sigma.size} σ (η ∈ "
             f"[{grid.eta.min():g}, {grid.eta.max():g}], σ ∈ [{grid.sigma.min():g}, "
             f"{grid.sigma.max():g}], log-spaced), {p['n_walkers']} walkers per point, "
             f"T = {p['T']:g} (⌈T/η⌉ steps), tol = {p['tol']:g}, seed {p['seed']}.", ""]
    if "exponents" in out:
        e = out["exponents"]
        ci = lambda k: f"{e[k]['value']:.3f} [{e[k]['ci'][0]:.3f}, {e[k]['ci'][1]:.3f}]"  # noqa
        lines += [f"Critical point and exponents at η = {c['eta']:g} ({cut.sigma.size} σ, "
                  f"{p['cut_n_walkers']} walkers, T = {p['cut_T']:g}; {e['level']:.0%} walker-"
                  f"bootstrap intervals, {e['n_boot']} replicates; windows in "
                  "r = \\|σ − σ*\\|/σ*: " + ", ".join(f"{k} {v[0]:g}–{v[1]:g}"
                                                    for k, v in e["windows"].items()) + "):", ""]
        lines += md_table(
            ["quantity", "paper (SGD, Sec. II C)", "Monte Carlo (this run)", "theory"],
            [["σ*", PAPER["sigma_star"],
              f"{c['sigma_star_mc']:.4g} (x_ss = 0.1 crossing); fits use {e['sigma_star']:.4g}",
              f"{c['sigma_star_finite_eta']:.4g} = Δ_S*(1 − ηλ0/2)/η; continuum Δ_S*/η = "
              f"{c['sigma_star_continuum']:.4g}"],
             ["α (F gain above σ*)", PAPER["alpha"], ci("alpha"), "1 (S43)"],
             ["β1 (τ_s below σ*; S46 labels)", f"{PAPER['beta1']} (called β2 there)",
              ci("beta1"), "1/2 (S45)"],
             ["β2 (τ_s above σ*; S46 labels)", f"{PAPER['beta2']} (called β1 there)",
              ci("beta2"), "1/2 (S45, κ, Δ frozen at 0)"],
             ["σ_m (50 % diverged within T)", "—", f"{c['sigma_m_mc']:.3g}",
              f"{c['sigma_m_S39']:.3g} (S39 bound)"]])
        lines.append("")
    body = []
    for i in range(0, grid.eta.size, max(1, grid.eta.size // 8)):
        e_ = grid.eta[i]
        body.append([f"{e_:.4g}", f"{g['sigma_I_II'][i]:.4g}", f"{g['sigma_star_theory'][i]:.4g}",
                     f"{g['sigma_star_finite_eta'][i]:.4g}", f"{g['sigma_II_III'][i]:.4g}",
                     f"{g['sigma_m_S39'][i]:.4g}", f"{g['sigma_m_S40'][i]:.4g}",
                     f"{e_ * g['sigma_II_III'][i]:.3g}"])
    lines += ["Phase boundaries per η:", ""]
    lines += md_table(["η", "σ* MC (x_ss = 0.1)", "σ* theory Δ_S*/η", "σ* finite η",
                       "σ_m MC (50 % div.)", "σ_m S39", "σ_m S40", "Δ_m MC = ησ_m"], body)
    lines += ["", f"η = {c['eta']:g} cut (every third σ):", ""]
    lines += md_table(["σ", "x_ss", "F(x_ss)", "τ_s", "censored", "V_x", "V_y", "diverged",
                       "x_drift"],
                      [[f"{cut.sigma[j]:.4g}", f"{cut.x_ss[0, j]:.4f}", f"{cut.F_ss[0, j]:.5f}",
                        f"{cut.tau_s[0, j]:.4g}", f"{cut.censored[0, j]:.2f}",
                        f"{cut.V_x[0, j]:.2e}", f"{cut.V_y[0, j]:.2e}",
                        f"{cut.diverged[0, j]:.2f}", f"{cut.x_drift[0, j]:+.1e}"]
                       for j in range(0, cut.sigma.size, 3)])
    lines += ["", f"Simulation times: grid {grid.elapsed:.0f} s, cut {cut.elapsed:.0f} s "
              f"({ph.__name__}.run_grid)."]
    return "\n".join(lines) + "\n"


def edges(v):
    """Cell edges (log-midpoints) around log-spaced centres ``v``."""
    lv = np.log(v)
    if lv.size == 1:
        return np.exp(np.array([lv[0] - 0.1, lv[0] + 0.1]))
    mid = 0.5 * (lv[1:] + lv[:-1])
    return np.exp(np.concatenate([[2 * lv[0] - mid[0]], mid, [2 * lv[-1] - mid[-1]]]))


def theory_lines(ax, L, eta_lo, eta_hi, label=True):
    """The theory's phase boundaries in a (σ, η) plane: Δ_S*, its finite-η shift, Δ_m (S39)."""
    from fpsolve import phase as ph
    import fpsolve as fp
    etas = np.geomspace(eta_lo, eta_hi, 200)
    dstar = fp.theory.critical_delta_s(L)
    ax.plot(dstar / etas, etas, ":", color="red", lw=1.6,
            label=r"$\eta\sigma=\Delta_S^*$" if label else None)
    ax.plot(ph.critical_sigma(etas, L), etas, "--", color="red", lw=1.2,
            label=r"$\eta\sigma=\Delta_S^*(1-\eta\lambda_0/2)$" if label else None)
    ax.plot(ph.divergence_sigma(etas, L), etas, "-.", color="red", lw=1.4,
            label=r"$\eta\sigma=\Delta_m(\eta)$ (S39)" if label else None)


def figure(L, traj, grid, cut, *, cut_eta, tol, sigma_boundaries, s_star, s_m, theory,
           title_note=""):
    """Fig. 2: (a) trajectories, (c) x(t), (b) F(x_ss) and (d) τ_s over the (σ, η) grid
    with the theory's and the measured phase boundaries (``sigma_boundaries`` = σ of
    I → II and of II → III per η), (e) F and (f) τ_s along the η = ``cut_eta`` cut
    against ``theory`` (dict sigma, F, tau_s).  Returns the matplotlib Figure."""
    fig = new_figure(figsize=(17, 10.2))
    gs = fig.add_gridspec(2, 3, width_ratios=[1, 1.25, 1], wspace=0.32, hspace=0.3)
    _trajectory_panels(fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[1, 0]), L, traj)
    _grid_panels(fig, fig.add_subplot(gs[0, 1]), fig.add_subplot(gs[1, 1]), L, grid,
                 sigma_boundaries, cut_eta, tol)
    _cut_panels(fig.add_subplot(gs[0, 2]), fig.add_subplot(gs[1, 2]), L, cut, theory,
                cut_eta, s_star, s_m)
    fig.suptitle(f"Yang–Tang–Tu Fig. 2 by Monte Carlo SGD: ε = {L.eps:g}, λ = ({L.lam0:g}, "
                 f"{L.lam1:g}, {L.lam2:g}), start (1.5, 1.5){title_note}", fontsize=12)
    return fig


_STYLES = [("red", "-"), ("blue", "--"), ("green", "-.")]


def _trajectory_panels(ax, ax_t, L, traj):
    """(a) the trajectories over the loss (mirrored, one quadrant each) and (c) x(t)."""
    xs = np.linspace(-1.9, 1.9, 301)
    X, Y = np.meshgrid(xs, xs)
    ax.contourf(X, Y, np.log10(L.value(X, Y) + 1e-4), levels=30, cmap="Greys", alpha=0.55)
    mirrors = [(1, 1), (-1, 1), (1, -1)]
    for k, s in enumerate(traj.sigma):
        c, ls = _STYLES[k % 3]
        mx, my = mirrors[k % 3]
        ax.plot(mx * traj.x[k, 0], my * traj.y[k, 0], ls, color=c, lw=1.3, label=f"σ = {s:g}")
        ax.plot(mx * 1.5, my * 1.5, "o", color=c, mfc="white", ms=6)
    ax.set(xlabel="x", ylabel="y", xlim=(-1.9, 1.9), ylim=(-1.9, 1.9), aspect="equal",
           title=f"(a) SGD trajectories, η = {traj.eta:g} (mirrored)")
    ax.legend(fontsize=8, loc="lower left", framealpha=0.9)
    for k, s in enumerate(traj.sigma):
        c, ls = _STYLES[k % 3]
        ax_t.plot(traj.t, traj.x[k, 0], ls, color=c, lw=1.3, label=f"σ = {s:g}")
    ax_t.axhline(1.0, color="gold", lw=1, ls=":")
    ax_t.axhline(0.0, color="red", lw=1, ls=":")
    ax_t.set(xlabel="iteration t", ylabel="x", title="(c) x against iteration",
             xlim=(0, traj.t[-1]))
    ax_t.legend(fontsize=8)


def _grid_panels(fig, ax_f, ax_tau, L, grid, sigma_boundaries, cut_eta, tol):
    """(b) F(x_ss) and (d) τ_s over the (σ, η) grid, phase III greyed out."""
    from matplotlib.colors import LogNorm

    F0, FF = float(L.flatness(0.0)), float(L.flatness(1.0))
    ext = (edges(grid.sigma), edges(grid.eta))
    ph3 = grid.phase() == 3
    ax_f.set_facecolor("0.82")
    F = np.ma.array(grid.F_ss, mask=ph3 | ~np.isfinite(grid.F_ss))
    pc = ax_f.pcolormesh(*ext, F, cmap="viridis", vmin=F0, vmax=FF, shading="flat")
    fig.colorbar(pc, ax=ax_f, pad=0.02).set_label("$F(x_{ss})$")
    _boundary_lines(ax_f, L, grid, ext, sigma_boundaries, cut_eta, True)
    ax_f.set_title("(b) flatness of the steady state (grey: phase III)")
    ax_f.legend(fontsize=7, loc="upper right", framealpha=0.85)
    ax_tau.set_facecolor("0.82")
    tau = np.ma.array(grid.tau_s, mask=ph3 | ~np.isfinite(grid.tau_s) | (grid.tau_s <= 0))
    if tau.count():
        pc = ax_tau.pcolormesh(*ext, tau, cmap="magma_r", shading="flat",
                               norm=LogNorm(vmin=max(float(tau.min()), 1e-1),
                                            vmax=max(float(tau.max()), 0.2)))
        fig.colorbar(pc, ax=ax_tau, pad=0.02).set_label(r"$\tau_s=\eta\langle t_s\rangle$")
    _boundary_lines(ax_tau, L, grid, ext, sigma_boundaries, cut_eta, False)
    ax_tau.set_title(f"(d) search time (tol = {tol:g})")


def _boundary_lines(ax, L, grid, ext, sigma_boundaries, cut_eta, label):
    """Theory and measured phase boundaries, the cut's η and the phase labels."""
    s12, s23 = sigma_boundaries
    theory_lines(ax, L, grid.eta.min(), grid.eta.max(), label)
    ax.plot(s12, grid.eta, "o-", ms=2.5, lw=1, color="k",
            label="MC: $x_{ss}=0.1$" if label else None)
    ax.plot(s23, grid.eta, "s-", ms=2.5, lw=1, color="0.3",
            label="MC: 50 % diverged" if label else None)
    ax.axhline(cut_eta, color="w" if label else "k", lw=0.8, ls="--")
    ax.set(xscale="log", yscale="log", xlabel="σ", ylabel="η",
           xlim=(ext[0][0], ext[0][-1]), ylim=(ext[1][0], ext[1][-1]))
    # I / II / III between the measured boundaries, on a low-η row (as in the paper)
    k = int(np.argmin(np.abs(np.log(grid.eta / 0.012))))
    bounds = [ext[0][0], s12[k], s23[k], ext[0][-1]]
    for txt, lo, hi in zip(("I", "II", "III"), bounds[:-1], bounds[1:]):
        if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
            ax.text(np.sqrt(lo * hi), grid.eta[k], txt, fontsize=13, weight="bold",
                    ha="center", va="center", clip_on=True,
                    bbox=dict(boxstyle="round,pad=0.2", fc="w", ec="none", alpha=0.75))


def _cut_panels(ax, ax_tau, L, cut, th, cut_eta, s_star, s_m):
    """(e) F(x_ss) and (f) τ_s along the η = cut_eta cut, MC against the adiabatic theory."""
    F0 = float(L.flatness(0.0))
    ok = cut.diverged[0] <= cut.settings["div_threshold"]
    ax.semilogx(cut.sigma[ok], cut.F_ss[0, ok], "o", ms=3.5, color="C0", label="MC SGD")
    ax.semilogx(th["sigma"], th["F"], "-", color="C1", lw=1.2,
                label=r"adiabatic theory, $\Delta_S/(1-\eta\lambda_0/2)$")
    ax.axhline(F0, color="0.5", lw=0.8, ls=":")
    ax.set(xlabel="σ", ylabel="$F(x_{ss})$", title=f"(e) η = {cut_eta:g}")
    ax2 = ax.twinx()
    ax2.semilogx(cut.sigma, cut.diverged[0], "-", color="0.5", lw=1)
    ax2.set_ylabel("diverged fraction", color="0.5")
    ax2.set_ylim(0, 1.05)
    for a in (ax, ax2):
        a.axvline(s_star, color="red", ls=":", lw=1.2)
        if np.isfinite(s_m):
            a.axvline(s_m, color="red", ls="-.", lw=1.2)
    ax.legend(fontsize=7, loc="upper left")
    good = ok & np.isfinite(cut.tau_s[0]) & (cut.tau_s[0] > 0)
    ax_tau.errorbar(cut.sigma[good], cut.tau_s[0, good], yerr=cut.tau_s_se[0, good], fmt="o",
                    ms=3.5, color="C0", label="MC SGD")
    ax_tau.plot(th["sigma"], th["tau_s"], "-", color="C1", lw=1.2,
                label="adiabatic theory S44 (start: MC |x| at τ = 2)")
    ax_tau.set(xscale="log", yscale="log", xlabel="σ", ylabel=r"$\tau_s$",
               title=f"(f) search time at η = {cut_eta:g}; σ* dotted, σ_m dash-dotted")
    ax_tau.axvline(s_star, color="red", ls=":", lw=1.2)
    if np.isfinite(s_m):
        ax_tau.axvline(s_m, color="red", ls="-.", lw=1.2)
    ax_tau.legend(fontsize=7, loc="lower left")
