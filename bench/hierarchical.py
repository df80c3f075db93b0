"""The hierarchical (P_{k+1}) escape-rate estimate against the DWR estimate and the truth.

    python bench/hierarchical.py                    # all cases below (~10 min, ≤ 9 GB)
    python bench/hierarchical.py --cases paper_0.004_0.04 ou_0.01_0.05
    python bench/hierarchical.py --one paper_0.002_0.02   # one case (what a child runs)
    python bench/hierarchical.py --adaptive 0.002 --max-dofs 450000   # the adaptive loop

Each case runs in its own process (its peak resident memory is the child's ru_maxrss):
a uniform P_k solve (μ_h, the estimate the solver reports and which estimator gave it),
then the same problem in P_{k+1} on the same mesh (:func:`fpsolve.fe.hierarchical.
enriched_escape_rate`: μ_{k+1}, its dofs, time).  True errors: paper landscape against
the uniform-P3 extrapolations (Δ_S = 0.004: 7.6295e-26 ± 1e-4; 0.002: 8.260e-53 ± 3e-4,
docs/adaptivity.md), radial OU against the Kummer root (mpmath).  Load average printed
with every timing (shared machine).  Raw rows: bench/results/hierarchical.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import fpsolve as fp                                     # noqa: E402
from _report import write_report                         # noqa: E402

RAW = os.path.join(HERE, "results", "hierarchical.json")
#: name -> (kind, noise, h, order)
CASES = {f"paper_0.004_{h}": ("paper", 0.004, h, 3) for h in (0.04, 0.028, 0.02)}
CASES.update({f"paper_0.002_{h}": ("paper", 0.002, h, 3) for h in (0.04, 0.03, 0.025, 0.022, 0.02)})
CASES.update({f"ou_{d}_{h}": ("ou", d, h, 3) for d, hs in ((0.02, (0.1, 0.05)),
                                                          (0.01, (0.05, 0.025))) for h in hs})
REFERENCE = {0.004: 7.6295e-26, 0.002: 8.260e-53}


def _problem(kind, noise, h, order):
    if kind == "paper":
        L = fp.landscapes.paper()
        return fp.Problem(L, fp.diffusion.sgd(L, noise, cross_diffusion=True),
                          fp.disk_mesh(2.0, h), order=order)
    L = fp.landscapes.quadratic([[1.0, 0.0], [0.0, 1.0]])
    return fp.Problem(L, fp.diffusion.isotropic(noise), fp.disk_mesh(1.0, h), order=order)


def _exact(kind, noise):
    if kind == "paper":
        return REFERENCE[noise]
    from fpsolve.theory.exact import radial_ou_escape_rate
    return radial_ou_escape_rate(noise)


def one(name) -> dict:
    """Measure one case in this process."""
    from fpsolve.fe.hierarchical import PECLET_MAX, enriched_escape_rate

    kind, noise, h, order = CASES[name]
    load = os.getloadavg()[0]
    t = time.perf_counter()
    prob = _problem(kind, noise, h, order)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = prob.solve()
    t_k = time.perf_counter() - t
    d = sol.diagnostics
    rec = d.get("escape_rate_hierarchical", {})
    t = time.perf_counter()
    if "escape_rate" not in rec:        # the solver did not need it: measure it here
        res = enriched_escape_rate(prob, sol.diffusion, prob.basis, prob.mesh._cache)
        rec = {"escape_rate": res["escape_rate"], "dofs": res["dofs"],
               "trusted": res["trusted"], "stop": res["stop"]["reason"],
               "layer_peclet": res["layer_peclet"]}
    t_h = time.perf_counter() - t
    t = time.perf_counter()
    low = fp.Problem(prob.landscape, prob.diffusion, prob.mesh, order=order - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mu0 = low.solve().escape_rate
    t_l = time.perf_counter() - t
    exact = _exact(kind, noise)
    mu, mu1 = sol.escape_rate, rec["escape_rate"]
    hier = abs(mu1 - mu) / mu1 if mu1 > 0 and mu > 0 else float("inf")
    return {"name": name, "kind": kind, "noise": noise, "h": h, "order": order,
            "dofs": int(d["dofs"]), "dofs_k1": rec["dofs"], "mu_h": mu, "mu_k1": mu1,
            "trusted_k1": rec["trusted"], "stop_k1": rec["stop"],
            "layer_peclet": rec["layer_peclet"],
            "certifiable": bool(rec["trusted"] and rec["layer_peclet"] <= PECLET_MAX),
            "estimate": d["error_estimate"]["escape_rate"],
            "estimator": d.get("escape_rate_estimator"), "hier": hier,
            "true": abs(mu - exact) / exact, "true_k1": abs(mu1 - exact) / exact,
            "mu_km1": mu0, "true_km1": abs(mu0 - exact) / exact, "time_km1_s": t_l,
            "time_k_s": t_k, "time_k1_s": t_h, "load": load,
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def adaptive(ds, max_dofs, h=0.16, tol=1e-3) -> list:
    """The adaptive loop (P3 from disk_mesh(2, h), tol on μ) with each level's μ_h, μ
    estimate, which estimator gave it, μ_{k+1} and the true error printed."""
    from fpsolve.fe import adapt

    real, seen = adapt._level_record, []

    def spy(level, sol, seconds):
        rec = real(level, sol, seconds)
        d = sol.diagnostics
        rec["estimator"] = d.get("escape_rate_estimator")
        rec["hier"] = d.get("escape_rate_hierarchical")
        mu = d.get("escape_rate_flux", sol.escape_rate)
        rec["true"] = abs(mu / REFERENCE[ds] - 1)
        seen.append(rec)
        print(f"level {level:2d} dofs {rec['dofs']:>8,} μ_h {mu:.4e} est "
              f"{rec['estimate'].get('escape_rate', float('nan')):.2e} ({rec['estimator']}) "
              f"true {rec['true']:.2e} neg {rec['negative_mass']:.1e} μ_k+1 "
              f"{(rec['hier'] or {}).get('escape_rate', float('nan')):.4e} "
              f"{seconds:.1f} s load {os.getloadavg()[0]:.1f}", flush=True)
        return rec

    adapt._level_record = spy
    L = fp.landscapes.paper()
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = fp.solve(L, fp.diffusion.sgd(L, ds, cross_diffusion=True), fp.disk_mesh(2.0, h),
                       order=3, tol=tol, goals=["escape_rate"], max_dofs=max_dofs)
    d = sol.diagnostics
    print(f"converged {d['adapt_converged']} untrusted {d['untrusted']} μ {sol.escape_rate:.4e} "
          f"est {sol.error_estimate['escape_rate']:.2e} ({d.get('escape_rate_estimator')}) "
          f"{time.perf_counter() - t:.0f} s, peak "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB", flush=True)
    return seen


def _say(r):
    print(f"{r['name']:18s} dofs {r['dofs']:>7,} / {r['dofs_k1']:>7,}  μ_h {r['mu_h']:.4e}  "
          f"μ_k+1 {r['mu_k1']:.4e} ({r['stop_k1']}, trusted {r['trusted_k1']})  "
          f"hier {r['hier']:.2e}  est {r['estimate']:.2e} ({r['estimator']})  "
          f"true {r['true']:.2e}  true_k+1 {r['true_k1']:.2e}  μ_k-1 {r['mu_km1']:.4e} "
          f"(true {r['true_km1']:.1e}) Pe {r['layer_peclet']:.2f}  "
          f"t {r['time_k_s']:.1f}/{r['time_k1_s']:.1f} s  peak {r['peak_gb']:.2f} GB  load {r['load']:.1f}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--one", choices=list(CASES), help="measure one case here, print JSON")
    ap.add_argument("--adaptive", type=float, choices=list(REFERENCE),
                    help="run the adaptive loop at this Δ_S instead")
    ap.add_argument("--max-dofs", type=int, default=450_000)
    ap.add_argument("--h", type=float, default=0.16, help="the adaptive run's start mesh")
    args = ap.parse_args(argv)
    if args.adaptive:
        adaptive(args.adaptive, args.max_dofs, args.h)
        return
    if args.one:
        print("JSON " + json.dumps(one(args.one), default=float), flush=True)
        return
    rows = {}
    if os.path.exists(RAW):
        with open(RAW) as f:
            rows = json.load(f).get("rows", {})
    for name in args.cases:
        out = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": os.path.dirname(HERE)})
        line = [x for x in out.stdout.splitlines() if x.startswith("JSON ")]
        if not line:
            print(f"{name}: failed\n{out.stderr[-2000:]}", flush=True)
            continue
        rows[name] = json.loads(line[0][5:])
        _say(rows[name])
        os.makedirs(os.path.dirname(RAW), exist_ok=True)
        write_report(RAW, json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
