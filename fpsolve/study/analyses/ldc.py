"""Analysis ``ldc``: Feng–Tu landscape-dependent constraints (LDC) against catastrophic
forgetting, compared with EWC and with no constraint (SI S8–S9, Figs. S13, S14).

Library call: ``fpsolve.variance_flatness.forgetting.experiment_ldc`` (seeded; all the
numbers come from there).  Writes ``ldc_S13.png`` (⟨ε⟩ against λ̃ for each ψ),
``ldc_S14.png`` (ε₁ against ε₂ as λ varies, LDC and EWC; minimum ⟨ε⟩ against N_c with
N_c*) and ``table.md`` (the SI's claims next to what this run measured).  The results
carry ``no_constraint``, ``ewc`` and ``ldc`` of the first case at the top level and every
case under ``cases``.  Needs scikit-learn for the digits (``pip install 'fpsolve[digits]'``).
"""
from __future__ import annotations

import math

import numpy as np

from . import md_table, new_figure, strip_times

__all__ = ["run", "figure_s13", "figure_s14", "table", "verdicts"]


def run(p: dict, ctx) -> dict:
    from fpsolve.vf.forgetting import experiment_ldc

    cases = {c: tuple(tuple(t) for t in p[c]) for c in p["cases"]}
    with ctx.step("LDC / EWC experiment"):
        res = experiment_ldc(
            seeds=range(p["seed"], p["seed"] + p["n_seeds"]), cases=cases,
            hidden=tuple(p["hidden"]), lr=p["lr"], batch_size=p["batch_size"],
            iterations_1=p["iterations_1"], window=p["window"],
            snapshot_every=p["snapshot_every"], iterations_2=p["iterations_2"],
            lambda_ewc=p["lambda_ewc"], lambda_tilde=p["lambda_tilde"], psis=p["psis"],
            psi=p["psi"], n_c=p["n_c"] or None, n_c_scan=p["n_c_scan"],
            lambda_tilde_scan=p["lambda_tilde_scan"],
            data=None if p["data"] == "digits" else p["data"], workers=ctx.workers)
    res, times = strip_times(res)
    ctx.timings.update({f"library {k}": v for k, v in times.items() if isinstance(v, (int, float))})
    first = res["cases"][p["cases"][0]]["summary"]
    out = {"main_case": p["cases"][0], "no_constraint": first["no_constraint"],
           "ewc": first["ewc"], "ldc": first["ldc"], "paired": first["paired"],
           "verdicts": verdicts(res), **res}
    with ctx.step("figures"):
        ctx.save_figure("ldc_S13.png", figure_s13(res), dpi=120)
        ctx.save_figure("ldc_S14.png", figure_s14(res), dpi=120)
    ctx.write_text("table.md", table(res, out["verdicts"]))
    return out


def _ms(s, scale=100.0, f="{:.1f}"):
    """"mean ± std" of an error summary, in percent by default."""
    if s is None:
        return "—"
    sd = s["std"]
    return f.format(s["mean"] * scale) + ("" if sd is None or not math.isfinite(sd)
                                          else " ± " + f.format(sd * scale))


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def _paired_verdict(d, better: str, worse: str) -> str:
    """Verdict on a paired per-seed difference (negative: ``better`` wins)."""
    if d is None or d["n"] < 2 or not math.isfinite(d["std"]):
        return "not decided (fewer than 2 seeds)"
    se = d["std"] / math.sqrt(d["n"])
    if d["mean"] < -2 * se:
        return (f"supported: {better} lower by {-100 * d['mean']:.1f} ± {100 * se:.1f} points "
                "(paired over seeds, ± standard error)")
    if d["mean"] > 2 * se:
        return (f"not supported: {worse} lower by {100 * d['mean']:.1f} ± {100 * se:.1f} "
                "points (paired over seeds, ± standard error)")
    return (f"not resolved: difference {100 * d['mean']:+.1f} ± {100 * se:.1f} points is "
            f"within 2 standard errors ({d['n']} seeds)")


def verdicts(res) -> dict:
    """The SI's claims, judged on this run (rules in docs/ldc.md)."""
    out = {}
    for name, c in res["cases"].items():
        s = c["summary"]
        e_after, e_nc = s["after_task1"]["eps1"], s["no_constraint"]["eps1"]
        sd = e_nc["std"] if _finite(e_nc["std"]) else 0.0
        forgot = e_nc["mean"] - e_after["mean"] > 2 * sd + 0.05
        psi_best = [b["avg_error"]["mean"] for b in s["ldc"]["by_psi"].values()]
        stds = [b["avg_error"]["std"] for b in s["ldc"]["by_psi"].values()]
        span = max(psi_best) - min(psi_best)
        if all(_finite(x) for x in stds):
            spread = max(stds)
            psi = (("supported" if span <= spread else "not supported") +
                   f": best ⟨ε⟩ over ψ spans {100 * span:.1f} points (per-seed range "
                   f"{_ms(s['paired']['psi_range'])}), seed spread {100 * spread:.1f} points")
        else:
            psi = f"not decided (fewer than 2 seeds): best ⟨ε⟩ over ψ spans {100 * span:.1f} points"
        out[name] = {
            "forgetting": "shown" if forgot else "not shown",
            "ldc_better_than_ewc": _paired_verdict(s["paired"]["ldc_minus_ewc"], "LDC", "EWC"),
            "insensitive_to_psi": psi,
        }
    names = list(res["cases"])
    if {"split", "pair"} <= set(names):
        ns, npair = (_nc_star(res["cases"][k]["summary"]["ldc"]) for k in ("split", "pair"))
        grows = res["cases"]["split"]["summary"]["ldc"]["Nc_star"] > \
            res["cases"]["pair"]["summary"]["ldc"]["Nc_star"]
        out["nc_star_grows_with_difficulty"] = (
            ("supported" if grows else "not supported") +
            f": N_c* {ns} (split, 5 + 5 digits) vs N_c* {npair} (pair)")
    return out


def _nc_star(s) -> str:
    """"= N_c*", or "≥ N_c*" when the scan had not levelled off at its largest N_c."""
    return f"≥ {s['Nc_star']} (largest scanned)" if s["Nc_star_is_largest"] else \
        f"= {s['Nc_star']}"


def table(res, v) -> str:
    """Markdown: paper claim / measured / verdict, then the numbers per case."""
    rows = []
    for name, c in res["cases"].items():
        s, tag = c["summary"], f"{name} {c['task1']}→{c['task2']}"
        rows.append([f"{tag}: without constraints task 1 is forgotten (SI S9; "
                     "CIFAR: ~25 % accuracy)",
                     f"ε₁ {_ms(s['after_task1']['eps1'])} % after task 1 → "
                     f"{_ms(s['no_constraint']['eps1'])} % after task 2 "
                     f"(ε₂ {_ms(s['no_constraint']['eps2'])} %)", v[name]["forgetting"]])
        rows.append([f"{tag}: LDC better than EWC (SI S9, Fig. S14)",
                     f"best ⟨ε⟩ LDC {_ms(s['ldc']['best_avg_error'])} % (λ̃ = "
                     f"{s['ldc']['best_lambda_tilde']:.0e}, ψ = {s['ldc']['psi']:g}, N_c = "
                     f"{s['ldc']['n_c']}) vs EWC {_ms(s['ewc']['best_avg_error'])} % "
                     f"(λ = {s['ewc']['best_lambda']:.0e})", v[name]["ldc_better_than_ewc"]])
        per = ", ".join(f"ψ = {k}: {_ms(b['avg_error'])} % at λ̃ = {b['lambda_tilde']:.0e}"
                        for k, b in s["ldc"]["by_psi"].items())
        psis = ", ".join(s["ldc"]["by_psi"])
        rows.append([f"{tag}: LDC insensitive to ψ (SI S8, Fig. S13: ψ = 3, 4, 5; here {psis})",
                     per,
                     v[name]["insensitive_to_psi"]])
    if "nc_star_grows_with_difficulty" in v:
        rows.append(["N_c* grows with task difficulty (MNIST: 600 for 5 + 5 digits vs 200 "
                     "for two digits, SI S9)",
                     ", ".join(f"{k}: N_c* {_nc_star(c['summary']['ldc'])}"
                               for k, c in res["cases"].items()),
                     v["nc_star_grows_with_difficulty"]])
    lines = md_table(["paper claim", "measured (mean ± std over seeds, test errors in %)",
                      "verdict"], rows)
    for name, c in res["cases"].items():
        s = c["summary"]
        lines += ["", f"Minimum ⟨ε⟩ (%) against N_c, {name} (ψ = {s['ldc']['psi']:g}; "
                  f"N_c* {_nc_star(s['ldc'])}):", ""]
        lines += md_table(["N_c", "min ⟨ε⟩ (%)", "at λ̃"],
                          [[k, _ms(b["avg_error"]), f"{b['value']:.0e}"]
                           for k, b in s["ldc"]["by_nc"].items()])
    return "\n".join(lines) + "\n"


def _arr(x):
    return np.array([np.nan if a is None else a for a in x], dtype=float)


def figure_s13(res):
    """⟨ε⟩ against λ̃ for each ψ (seed mean ± std), one panel per case."""
    names = list(res["cases"])
    fig = new_figure(figsize=(5.2 * len(names), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    lt = np.array(res["params"]["lambda_tilde"])
    for ax, name in zip(axes, names):
        s = res["cases"][name]["summary"]
        for k, (psi, b) in enumerate(s["ldc"]["by_psi"].items()):
            m, sd = _arr(b["curve"]["avg"]) * 100, _arr(b["curve"]["avg_std"]) * 100
            ax.semilogx(lt, m, "o-", color=f"C{k}", label=f"LDC, ψ = {psi}")
            ax.fill_between(lt, m - sd, m + sd, color=f"C{k}", alpha=0.15, lw=0)
        ax.axhline(100 * s["no_constraint"]["avg_error"]["mean"], color="k", ls=":",
                   label="no constraint")
        ax.axhline(100 * s["ewc"]["best_avg_error"]["mean"], color="0.4", ls="--",
                   label="EWC, best λ")
        c = res["cases"][name]
        ax.set(xlabel=r"$\tilde\lambda = 10^{\psi}\lambda$",
               ylabel=r"$\langle\epsilon\rangle = (\epsilon_1+\epsilon_2)/2$ (%)",
               title=f"{name}: {c['task1']} → {c['task2']}, N_c = {s['ldc']['n_c']}")
        ax.legend(fontsize=8)
    return fig


def figure_s14(res):
    """Per case: (A) ε₁ against ε₂ as λ varies, LDC and EWC; (B) min ⟨ε⟩ against N_c."""
    names = list(res["cases"])
    fig = new_figure(figsize=(10.5, 4.2 * len(names)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(names), 2))
    for (axA, axB), name in zip(axes, names):
        c = res["cases"][name]
        s = c["summary"]
        main = s["ldc"]["by_psi"][f"{s['ldc']['psi']:g}"]
        for lab, curve, mk in (("LDC", main["curve"], "o-"), ("EWC", s["ewc"]["curve"], "s-")):
            axA.plot(_arr(curve["eps2"]) * 100, _arr(curve["eps1"]) * 100, mk, label=lab)
        e0 = s["no_constraint"]
        axA.plot(100 * e0["eps2"]["mean"], 100 * e0["eps1"]["mean"], "k*", ms=12,
                 label="no constraint")
        axA.set(xlabel=r"task-2 error $\epsilon_2$ (%)", ylabel=r"task-1 error $\epsilon_1$ (%)",
                title=f"{name}: ε₁ vs ε₂ as λ grows from ★ (seed means)")
        axA.legend(fontsize=8)
        ncs = [int(k) for k in s["ldc"]["by_nc"]]
        m = np.array([b["avg_error"]["mean"] for b in s["ldc"]["by_nc"].values()]) * 100
        sd = np.array([b["avg_error"]["std"] for b in s["ldc"]["by_nc"].values()], float) * 100
        axB.errorbar(ncs, m, yerr=sd, fmt="o-", capsize=3, label=f"LDC, ψ = {s['ldc']['psi']:g}")
        axB.axvline(s["ldc"]["Nc_star"], color="C3", ls="--",
                    label=f"$N_c^*$ {_nc_star(s['ldc'])}")
        axB.axhline(100 * s["ewc"]["best_avg_error"]["mean"], color="0.4", ls="--",
                    label="EWC, best λ")
        axB.set_xscale("log")
        axB.set(xlabel="number of constraints $N_c$",
                ylabel=r"min over λ of $\langle\epsilon\rangle$ (%)",
                title=f"{name}: min ⟨ε⟩ against $N_c$ (mean ± std)")
        axB.legend(fontsize=8)
    return fig
