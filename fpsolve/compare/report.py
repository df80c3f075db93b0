"""The result of a cross-check: :class:`CrossCheck` (table, JSON, Markdown, verdicts)."""
from __future__ import annotations

import json
import math

import numpy as np

from .._json import jsonable
from .criteria import ROWS
from .figure import plot_crosscheck


def _fmt(v, se=None, digits=4):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if se is None or not math.isfinite(se):
        return f"{v:.{digits}g}"
    return f"{v:.{digits}g} ± {se:.2g}"


class CrossCheck:
    """Side-by-side FE, Euler–Maruyama (dt → 0) and SGD results for one case.

    Attributes
    ----------
    label : str
    fe : dict
        FE values: ``x2``, ``y2``, ``absx``, ``mode`` (|x| of the exact FE marginal
        mode), ``mode_binned`` (the MC mode estimator applied to the FE bin averages:
        what the MC estimate converges to), ``escape_rate``, ``error`` (per quantity,
        |sol − coarse| if a coarser solution was given, else 0), ``dofs``, ``h``.
    runs : list of dict
        One per simulation: ``kind`` ("em" | "sgd"), ``step`` (dt or η), ``dt``,
        steps, burn-in, the measured quantities with standard errors, the marginal and
        current tests against FE, escape counts, stationarity z-scores.
    em0 : dict
        The EM values extrapolated to dt → 0 (scalars: :class:`Extrapolation` as a
        dict; marginal and current tests on the per-bin extrapolation; escape rate).
    sgd0 : dict
        The same linear extrapolation of the SGD rows in η (informative only: the
        η-range is large and the fit p-value says whether a line describes it).
    agreement : dict
        Per table row: ``ok`` (bool or None when not testable), the statistic and the
        criterion.
    spectrum : dict or None
        :func:`relaxation_times` of the FE operator.
    config : dict
        Everything needed to rerun (steps, times, walkers, seeds).
    notes : list of str
        Warnings and explanations gathered during the run.
    """

    def __init__(self, *, label, fe, runs, em0, sgd0, agreement, spectrum, config, notes,
                 arrays):
        self.label, self.fe, self.runs = label, fe, runs
        self.em0, self.sgd0, self.agreement = em0, sgd0, agreement
        self.spectrum, self.config, self.notes = spectrum, config, notes
        self._arrays = arrays

    # ---- table
    @property
    def em_runs(self):
        return [r for r in self.runs if r["kind"] == "em"]

    @property
    def sgd_runs(self):
        return [r for r in self.runs if r["kind"] == "sgd"]

    @property
    def table(self) -> list:
        """Rows (dicts) of the comparison table: ``quantity``, ``fe``, ``em`` (one cell
        per dt), ``em0``, ``agreement``, ``sgd`` (one per η), ``sgd0``; cells are
        ``{"value", "se"}`` or, for the tests, the test's statistics."""
        rows = []
        for q in ROWS:
            rows.append({"quantity": q, "fe": self._fe_cell(q),
                         "em": [self._run_cell(r, q) for r in self.em_runs],
                         "em0": self._x0_cell(self.em0, q),
                         "agreement": self.agreement.get(q),
                         "sgd": [self._run_cell(r, q) for r in self.sgd_runs],
                         "sgd0": self._x0_cell(self.sgd0, q) if self.sgd0 else None})
        return rows

    _SCALARS = {"<x^2>": "x2", "<y^2>": "y2", "<|x|>": "absx", "mode |x|": "mode"}

    def _fe_cell(self, q):
        fe = self.fe
        if q in self._SCALARS:
            key = self._SCALARS[q]
            out = {"value": fe[key], "error": fe["error"][key]}
            if key == "mode":
                out["binned"] = fe["mode_binned"]
            return out
        if q == "escape rate":
            return {"value": fe["escape_rate"], "error": fe["error"]["escape_rate"]}
        if q == "J scale":
            return {"value": 1.0}
        return None

    @classmethod
    def _run_cell(cls, r, q):
        if q in cls._SCALARS:
            v, s = r[cls._SCALARS[q]]
            return {"value": v, "se": s}
        if q == "marginal L1":
            return r["marginal"]
        if q == "J chi2/bin":
            c = r["current"]
            return {"value": c["chi2_per_bin"], "n": c["n"], "p_value": c["p_value"]}
        if q == "J scale":
            c = r["current"]
            return {"value": c["scale"], "se": c["scale_se"]}
        if q == "escape rate":
            return {"value": r["escape_rate"], "se": r["escape_rate_se"], "exits": r["exits"]}
        raise KeyError(q)

    @classmethod
    def _x0_cell(cls, ex, q):
        if q in cls._SCALARS:
            e = ex[cls._SCALARS[q]]
            return {"value": e["value"], "se": e["se"], "fit_p": e["p_value"]}
        if q == "marginal L1":
            return ex["marginal"]
        if q == "J chi2/bin":
            c = ex["current"]
            return {"value": c["chi2_per_bin"], "n": c["n"], "p_value": c["p_value"]}
        if q == "J scale":
            c = ex["current"]
            return {"value": c["scale"], "se": c["scale_se"]}
        if q == "escape rate":
            return ex.get("escape_rate")
        raise KeyError(q)

    # ---- export
    def to_dict(self, arrays: bool = False) -> dict:
        """JSON-friendly dict (NaN → None).  ``arrays=True`` adds the marginals and
        currents (FE and per run)."""
        out = {"label": self.label, "config": self.config, "fe": self.fe,
               "runs": [{k: v for k, v in r.items() if not k.startswith("_")}
                        for r in self.runs],
               "em0": self.em0, "sgd0": self.sgd0, "agreement": self.agreement,
               "spectrum": self.spectrum, "notes": self.notes, "table": self.table}
        if arrays:
            out["arrays"] = self._arrays_dict()
        return jsonable(out)

    _ARRAY_KEYS = ("marginal_edges", "current_edges", "fe_marginal", "fe_current",
                   "fe_marginal_curve", "fe_density_grid", "em0_marginal", "em0_marginal_se",
                   "em0_current", "em0_current_se", "em0_current_counts")
    # (the marginal's bin covariance is left out: 160² numbers per run, used only while
    # extrapolating)
    _RUN_ARRAYS = ("_marginal", "_marginal_se", "_current", "_current_se", "_counts")

    def _arrays_dict(self):
        if self._arrays is None:
            raise ValueError("arrays: this CrossCheck was rebuilt without its arrays")
        out = {k: self._arrays[k] for k in self._ARRAY_KEYS}
        out["runs"] = [{k[1:]: r[k] for k in self._RUN_ARRAYS} for r in self.runs]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "CrossCheck":
        """Rebuild from :meth:`to_dict` output (e.g. loaded JSON).

        Tables, Markdown and verdicts need only the scalars; :meth:`plot` needs a dict
        written with ``arrays=True``.  Numbers that were NaN come back as None.
        """
        try:
            runs = [dict(r) for r in d["runs"]]
            arrays = None
            if d.get("arrays") is not None:
                raw = d["arrays"]
                arrays = {}
                for k in cls._ARRAY_KEYS:
                    v = raw[k]
                    arrays[k] = (tuple(np.asarray(x, dtype=float) for x in v)
                                 if k in ("current_edges", "fe_marginal_curve",
                                          "fe_density_grid") else np.asarray(v, dtype=float))
                for r, ra in zip(runs, raw["runs"]):
                    for k in cls._RUN_ARRAYS:
                        r[k] = np.asarray(ra[k[1:]], dtype=float)
            return cls(label=d["label"], fe=d["fe"], runs=runs, em0=d["em0"], sgd0=d["sgd0"],
                       agreement=d["agreement"], spectrum=d["spectrum"], config=d["config"],
                       notes=d["notes"], arrays=arrays)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"d: not a CrossCheck.to_dict() result ({exc!r})") from None

    def to_json(self, path: str | None = None, arrays: bool = False) -> str:
        """JSON text of :meth:`to_dict` (written to ``path`` if given)."""
        text = json.dumps(self.to_dict(arrays), indent=1, allow_nan=False)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        return text

    def to_markdown(self) -> str:
        """The comparison table (GitHub Markdown) with a line of settings under it."""
        em, sg = self.em_runs, self.sgd_runs
        head = (["quantity", "FE"] + [f"EM dt={r['step']:g}" for r in em]
                + ["EM dt→0", "FE vs dt→0"] + [f"SGD η={r['step']:g}" for r in sg]
                + (["SGD η→0 (line)"] if sg else []))
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.table:
            q = row["quantity"]
            cells = [q.replace("|", "\\|"), self._md_fe(q, row["fe"])]
            cells += [self._md(q, c) for c in row["em"]]
            cells += [self._md(q, row["em0"]), self._md_agree(row["agreement"])]
            cells += [self._md(q, c) for c in row["sgd"]]
            if sg:
                cells.append(self._md(q, row["sgd0"]))
            lines.append("| " + " | ".join(cells) + " |")
        c = self.config
        sp = self.spectrum
        tau = ""
        if sp:
            tau = (f"; FE relaxation times: slowest {sp['tau_slowest']:.3g}, slowest "
                   f"θ→−θ-even {sp['tau_even']:.3g}")
        lines.append("")
        lines.append(
            f"{c['n_walkers']} walkers in {c['n_blocks']} independent blocks per run; burn-in "
            f"t = {c['t_burn']:.3g} from the initial condition for the first run of each "
            f"family, {c['t_warm']:.3g} for chained runs; sampling t = {c['t_sample']:.3g}"
            f"{tau}. Max |stationarity z| (2nd − 1st half of the sampling window): "
            f"{self.max_drift_z():.2g}.")
        return "\n".join(lines)

    @staticmethod
    def _md_fe(q, cell):
        if cell is None:
            return "–"
        v, err = cell.get("value"), cell.get("error")
        s = _fmt(v, err if err else None)
        if q == "mode |x|":
            s += f" (binned: {_fmt(cell['binned'])})"
        return s

    @staticmethod
    def _md(q, cell):
        if cell is None:
            return "–"
        if q == "marginal L1":
            return (f"{_fmt(cell['l1'], digits=3)} (noise {_fmt(cell['noise'], digits=2)}, "
                    f"p={cell['p_value']:.2g})")
        if q == "J chi2/bin":
            if not cell["n"]:
                return "no significant bins"
            return f"{cell['value']:.3g} (n={cell['n']})"
        if q == "escape rate":
            if "pooled" in cell:
                return (f"{cell['exits']} exits, FE expects {cell['expected']:.3g} "
                        f"(p={cell['p_value']:.2g})")
            if cell.get("exits") == 0:
                return "0 exits"
            s = _fmt(cell.get("value"), cell.get("se"), 3)
            if "exits" in cell:
                s += f" ({cell['exits']} exits)"
            elif cell.get("p_value") is not None:
                s += f" (fit p={cell['p_value']:.2g})"
            return s
        s = _fmt(cell.get("value"), cell.get("se"))
        if cell.get("fit_p") is not None:
            s += f" (fit p={cell['fit_p']:.2g})"
        return s

    @staticmethod
    def _md_agree(a):
        if a is None or a.get("ok") is None:
            return "not testable" if a is None else a.get("statistic_text", "not testable")
        return f"{a['statistic_text']} {'✓' if a['ok'] else '✗ DIFFER'}"

    def max_drift_z(self) -> float:
        """Largest |z| of the half-window stationarity test over all runs and observables."""
        zs = [abs(z) for r in self.runs for z in r["stationarity"].values() if z is not None
              and math.isfinite(z)]
        return max(zs) if zs else float("nan")

    @property
    def ok(self) -> bool:
        """True when every testable row agrees."""
        return all(a["ok"] for a in self.agreement.values() if a["ok"] is not None)

    def summary(self) -> str:
        """A few lines: the agreement verdicts."""
        lines = [f"crosscheck {self.label}: {'all agree' if self.ok else 'DISAGREEMENT'}"]
        for q, a in self.agreement.items():
            lines.append(f"  {q:12s} {a.get('statistic_text', '')} "
                         f"{'' if a['ok'] is None else ('ok' if a['ok'] else 'DIFFER')}")
        return "\n".join(lines)

    def __repr__(self):
        return (f"CrossCheck({self.label!r}, {len(self.em_runs)} EM + {len(self.sgd_runs)} SGD "
                f"runs, {'agree' if self.ok else 'DISAGREE'})")

    # ---- figure
    def plot(self, path: str | None = None, title: str | None = None):
        """Figure: marginal P(x) FE vs MC, their difference, binned J arrows, J scatter.

        Returns the matplotlib Figure (saved to ``path`` if given).
        """
        return plot_crosscheck(self, path, title)
