"""The cross-check figure: marginal P(x) FE vs MC, their difference, binned J arrows, J scatter."""
from __future__ import annotations

import numpy as np

from .criteria import MIN_BIN_SAMPLES


def plot_crosscheck(cc, path: str | None = None, title: str | None = None):
    """Draw the four panels of :meth:`CrossCheck.plot` for the CrossCheck ``cc``.

    Returns the matplotlib Figure (saved to ``path`` if given).
    """
    if cc._arrays is None:
        raise ValueError("arrays: this CrossCheck was rebuilt without its arrays; "
                         "plotting needs one from to_dict(arrays=True)")
    import matplotlib.pyplot as plt

    a = cc._arrays
    me = a["marginal_edges"]
    mc_ = 0.5 * (me[1:] + me[:-1])
    R = cc.config["radius"]
    xs, fm = a["fe_marginal_curve"]
    # zoom on where the density lives
    live = xs[fm > 1e-3 * fm.max()]
    xr = min(R, max(abs(live[0]), abs(live[-1])) + 0.15) if live.size else R
    small_em = min(cc.em_runs, key=lambda r: r["step"])
    small_sgd = min(cc.sgd_runs, key=lambda r: r["step"]) if cc.sgd_runs else None
    fig, ax = plt.subplots(2, 2, figsize=(11.5, 8.4))
    _marginal_panel(ax[0, 0], a, mc_, xs, fm, xr, small_em, small_sgd)
    _difference_panel(ax[0, 1], a, mc_, xr, small_em, cc.em0["marginal"])
    enough = a["em0_current_counts"] >= MIN_BIN_SAMPLES
    _current_panel(ax[1, 0], a, enough, xr, R)
    _scatter_panel(ax[1, 1], a, enough, cc.config["j_threshold"], cc.em0["current"])
    fig.suptitle(title or cc.label)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _marginal_panel(p, a, mc_, xs, fm, xr, small_em, small_sgd):
    p.plot(xs, fm, "k-", lw=1.6, label="FE", zorder=3)
    if small_sgd is not None:
        p.plot(mc_, small_sgd["_marginal"], "-", color="C2", lw=1, alpha=0.9,
               label=f"SGD η={small_sgd['step']:g}")
    p.plot(mc_, small_em["_marginal"], "-", color="C1", lw=1, alpha=0.9,
           label=f"EM dt={small_em['step']:g}")
    p.errorbar(mc_, a["em0_marginal"], a["em0_marginal_se"], fmt="o", ms=2.5, color="C3",
               elinewidth=0.8, label="EM dt→0 (±1 SE)", zorder=2)
    p.set(xlim=(-xr, xr), xlabel="x", ylabel="P(x) = ∫P dy", title="marginal P(x)")
    p.legend(fontsize=8)


def _difference_panel(p, a, mc_, xr, small_em, l1):
    d = a["em0_marginal"] - a["fe_marginal"]
    s = a["em0_marginal_se"]
    p.fill_between(mc_, -2 * s, 2 * s, color="0.85", step="mid", label="±2 SE (MC dt→0)")
    p.plot(mc_, d, "o-", ms=2.5, lw=0.8, color="C3", label="EM dt→0 − FE")
    p.plot(mc_, small_em["_marginal"] - a["fe_marginal"], "-", lw=0.8, color="C1",
           label=f"EM dt={small_em['step']:g} − FE")
    p.axhline(0, color="k", lw=0.6)
    p.set(xlim=(-xr, xr), xlabel="x", ylabel="ΔP(x)",
          title=f"MC − FE (bin averages)\nL1(dt→0) = {l1['l1']:.3g}, "
                f"noise alone ≈ {l1['noise']:.2g}, p = {l1['p_value']:.2g}")
    p.title.set_fontsize(9.5)
    p.legend(fontsize=8)


def _current_panel(p, a, enough, xr, R):
    """Arrows of FE and MC J in every bin with enough samples, over the FE density."""
    xe, ye = a["current_edges"]
    xc, yc = 0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1])
    X, Y = np.meshgrid(xc, yc, indexing="ij")
    Jf, Jm = a["fe_current"], a["em0_current"]
    gx, gy, dens = a["fe_density_grid"]
    p.contourf(gx, gy, dens.T, levels=np.linspace(0.02, 1, 11) * dens.max(),
               cmap="Greys", alpha=0.5)
    if enough.any():
        scale = 1.1 * np.hypot(*Jf[:, enough]).max() / (xe[1] - xe[0])
        kw = dict(angles="xy", scale_units="xy", scale=scale, width=0.0045)
        p.quiver(X[enough], Y[enough], Jf[0][enough], Jf[1][enough], color="k",
                 label="FE (bin average)", **kw)
        p.quiver(X[enough], Y[enough], Jm[0][enough], Jm[1][enough], color="C3",
                 alpha=0.75, label="EM dt→0", **kw)
        yr = min(R, float(np.abs(Y[enough]).max() + (ye[1] - ye[0])))
    else:
        yr = R
    p.set(xlim=(-xr, xr), ylim=(-yr, yr), xlabel="x", ylabel="y",
          title=f"binned current J (bins with ≥ {MIN_BIN_SAMPLES} samples)")
    p.set_aspect("equal")
    p.legend(fontsize=8, loc="upper right")


def _scatter_panel(p, a, enough, thr, c0):
    """J_MC against J_FE in the bins where J is significant, with the fitted scale."""
    Jf, Jm, Js = a["fe_current"], a["em0_current"], a["em0_current_se"]
    for i, (comp, col) in enumerate((("J_x", "C0"), ("J_y", "C1"))):
        use = (np.abs(Jf[i]) > thr * Js[i]) & (Js[i] > 0) & enough
        p.errorbar(Jf[i][use], Jm[i][use], Js[i][use], fmt="o", ms=3, color=col,
                   elinewidth=0.7, label=comp)
    lim = 1.15 * np.abs(Jf[:, enough]).max() if enough.any() else 1.0
    p.plot([-lim, lim], [-lim, lim], "k-", lw=0.7)
    p.set(xlabel="J_FE (bin average)", ylabel="J_MC (EM dt→0, ±1 SE)",
          title=f"bins with |J_FE| > {thr:g} SE (n = {c0['n']}): "
                f"χ²/bin = {c0['chi2_per_bin']:.3g}\n"
                f"fit J_MC ≈ ({c0['scale']:.3f} ± {c0['scale_se']:.2g}) J_FE")
    p.title.set_fontsize(9.5)
    p.legend(fontsize=8)
