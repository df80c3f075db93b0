"""When FE and Monte Carlo agree: the table rows, the limits and the per-row verdicts."""
from __future__ import annotations

import math

#: Table rows, in order (keys of ``CrossCheck.table``).
ROWS = ("<x^2>", "<y^2>", "<|x|>", "mode |x|", "marginal L1", "J chi2/bin", "J scale",
        "escape rate")
#: Scalars agree when |MC(dt→0) − FE| ≤ Z_LIMIT × √(SE_MC² + err_FE²).
Z_LIMIT = 3.0
#: Distributional tests (marginal L1 against its noise distribution, χ² of J, Poisson
#: escape counts) agree when their p-value is at least P_LIMIT.
P_LIMIT = 0.01
# J is compared only in bins with at least this many samples: a block-spread standard
# error from a handful of samples is meaningless (a tail bin with one sample has
# SE = |J| and would enter the χ² with an arbitrary z).
MIN_BIN_SAMPLES = 1000


def _agreement(fe, em0):
    """Per table row: ``ok`` (None when not testable), the statistic and the criterion."""
    out = {}
    names = {"x2": "<x^2>", "y2": "<y^2>", "absx": "<|x|>", "mode": "mode |x|"}
    for k, q in names.items():
        ref = fe["mode_binned"] if k == "mode" else fe[k]
        err = fe["error"]["mode_binned" if k == "mode" else k]
        e = em0[k]
        sd = math.hypot(e["se"], err)
        z = (e["value"] - ref) / sd if sd > 0 else float("nan")
        out[q] = {"ok": bool(abs(z) <= Z_LIMIT) if math.isfinite(z) else None, "z": z,
                  "statistic_text": f"z = {z:+.2f}",
                  "criterion": f"|MC(dt→0) − FE| ≤ {Z_LIMIT:g} √(SE² + err_FE²)"}
    mg = em0["marginal"]
    out["marginal L1"] = {"ok": bool(mg["p_value"] >= P_LIMIT), "p_value": mg["p_value"],
                          "statistic_text": f"L1/noise = {mg['l1'] / mg['noise']:.2f}, "
                                            f"p = {mg['p_value']:.2g}",
                          "criterion": f"P(L1 from MC noise alone ≥ observed) ≥ {P_LIMIT:g}"}
    cu = em0["current"]
    ok = None if cu["n"] == 0 else bool(cu["p_value"] >= P_LIMIT)
    out["J chi2/bin"] = {"ok": ok, "p_value": cu["p_value"],
                         "statistic_text": (f"p = {cu['p_value']:.2g}" if cu["n"]
                                            else "no significant bins"),
                         "criterion": f"χ² p-value ≥ {P_LIMIT:g} over the significant bins"}
    if cu["n"]:
        z = (cu["scale"] - 1.0) / cu["scale_se"]
        out["J scale"] = {"ok": bool(abs(z) <= Z_LIMIT), "z": z,
                          "statistic_text": f"z = {z:+.2f}",
                          "criterion": f"|scale − 1| ≤ {Z_LIMIT:g} SE"}
    else:
        out["J scale"] = {"ok": None, "statistic_text": "no significant bins",
                          "criterion": "needs significant bins"}
    es = em0["escape_rate"]
    if es.get("pooled"):
        if es["expected"] < 3 and es["exits"] < 3:
            out["escape rate"] = {
                "ok": None, "p_value": es["p_value"],
                "statistic_text": f"unobservable (FE μ × walker time = {es['expected']:.2g})",
                "criterion": "needs an expected number of exits ≳ 3"}
        else:
            out["escape rate"] = {"ok": bool(es["p_value"] >= P_LIMIT),
                                  "p_value": es["p_value"],
                                  "statistic_text": f"Poisson p = {es['p_value']:.2g}",
                                  "criterion": f"Poisson p-value ≥ {P_LIMIT:g}"}
    else:
        err = fe["error"]["escape_rate"]
        sd = math.hypot(es["se"], err)
        z = (es["value"] - fe["escape_rate"]) / sd if sd > 0 else float("nan")
        out["escape rate"] = {"ok": bool(abs(z) <= Z_LIMIT) if math.isfinite(z) else None,
                              "z": z, "statistic_text": f"z = {z:+.2f}",
                              "criterion": f"|MC(dt→0) − FE| ≤ {Z_LIMIT:g} √(SE² + err_FE²)"}
    return out
