"""Studies with ``[analysis]``: the kind, its keys, cross-key checks and ``[landscape]``."""
from __future__ import annotations

import copy
import hashlib
import json
import os

from .analysis_keys import _ADEF, _ANALYSES, _ANALYSIS_KIND, _ANALYSIS_LANDSCAPES, ANALYSIS_KINDS
from .resolved import Study
from .sections import _Loader, _flatten, _kind_key_message


#: analysis kinds whose Monte Carlo blocks can run on a Dask cluster
_DASK_KINDS = ("figS5", "transition", "phase_diagram", "variance_flatness")


def _parse_analysis(ld: _Loader, raw: dict, name: str, description: str,
                    raw_bytes: bytes) -> Study:
    """A study with [analysis]: validate the analysis kind, its keys and [landscape]."""
    given = ld.table(raw, "analysis")
    if "kind" not in given:
        ld.fail("analysis.kind", "required (one of "
                f"{', '.join(json.dumps(k) for k in ANALYSIS_KINDS)})")
    kind = ld.check("analysis.kind", _ANALYSIS_KIND, given["kind"])
    for sec in ("noise", "mesh", "solver", "case", "sweep", "output", "time"):
        if sec in raw:
            shown = "[[case]]" if sec == "case" else f"[{sec}]"
            ld.fail(sec, f"{shown} is not allowed in a study with [analysis] (the analysis "
                    f"{kind!r} sets its own noise, meshes and outputs in [analysis]); a study "
                    "has either FE cases or one analysis")
    spec = _ANALYSES[kind]
    params = {"kind": kind}
    for k, v in given.items():
        if k == "kind":
            continue
        if k not in spec:
            ld.fail(f"analysis.{k}", _kind_key_message("analysis kind", kind, k, spec,
                                                        _ANALYSES, f"kind, {', '.join(spec)}"))
        params[k] = ld.check(f"analysis.{k}", spec[k], v)
    for k in spec:
        if k not in params:
            params[k] = copy.deepcopy(_ADEF[(kind, k)])
    _check_analysis(ld, kind, params, given)

    allowed = _ANALYSIS_LANDSCAPES[kind]
    landscape = None
    if allowed:
        flat = _flatten(ld.table(raw, "landscape"))
        landscape = ld.kind_section(flat, "landscape", "")
        if landscape["kind"] not in allowed:
            ld.fail("landscape.kind", f"analysis {kind!r} needs the paper landscape "
                    f'(kind = "paper", Eq. 9), got {landscape["kind"]!r}')
    elif "landscape" in raw:
        why = (" (its 2-D part draws random quadratics and the paper landscape itself)"
               if kind == "variance_flatness" else "")
        ld.fail("landscape", f"[landscape] is not used by analysis {kind!r}{why}; remove it")
    params["landscape"] = landscape

    execution = {"workers": 1, "scheduler": "local"}
    execution.update(ld.plain_section(raw, "execution"))
    if execution["scheduler"] != "local" and kind not in _DASK_KINDS:
        ld.fail("execution.scheduler", f"analysis {kind!r} runs locally: expected \"local\" "
                f"(a Dask scheduler serves {', '.join(_DASK_KINDS)}), got "
                f"{execution['scheduler']!r}")
    if execution["scheduler"] != "local":      # Monte Carlo blocks go to the cluster
        try:
            import distributed  # noqa: F401
        except ImportError:
            ld.fail("execution.scheduler", "a Dask scheduler needs dask.distributed: "
                    "pip install 'fpsolve[dask]'")
    return Study(path=ld.path, name=name, description=description, cases=[], output={},
                 execution=execution, sweep=None, text=raw_bytes, raw=raw, analysis=params)


def _check_analysis(ld: _Loader, kind: str, p: dict, given: dict) -> None:
    """Checks between keys of one analysis (ranges that depend on other keys)."""
    def need(cond, key, message):
        if not cond:
            ld.fail(f"analysis.{key}", message)

    if kind == "figS5":
        need(p["h"] <= p["radius"] / 2, "h", f"expected 0 < h <= radius/2 = {p['radius'] / 2:g}, "
             f"got {p['h']!r}")
        need(p["extent"] <= p["radius"], "extent", f"expected 0 < extent <= radius = "
             f"{p['radius']:g}, got {p['extent']!r}")
    elif kind == "transition":
        for j, h in enumerate(p["h"]):
            need(h <= p["radius"] / 2, f"h[{j}]", f"expected 0 < h <= radius/2 = "
                 f"{p['radius'] / 2:g}, got {h!r}")
        need(p["h"] == sorted(p["h"], reverse=True), "h",
             f"expected mesh levels from coarse to fine (decreasing), got {p['h']!r}")
        need(p["xss_h"] <= p["radius"] / 2, "xss_h", f"expected 0 < xss_h <= radius/2 = "
             f"{p['radius'] / 2:g}, got {p['xss_h']!r}")
        need(p["mc_delta_s"] == sorted(p["mc_delta_s"]), "mc_delta_s",
             f"expected increasing values, got {p['mc_delta_s']!r}")
        need(p["mc_fit_width"] < p["radius"], "mc_fit_width",
             f"expected 0 < mc_fit_width < radius = {p['radius']:g}, got {p['mc_fit_width']!r}")
    elif kind == "phase_diagram":
        if p["paper_grid"]:
            clash = [k for k in ("eta", "n_eta", "sigma", "n_sigma", "T", "n_walkers")
                     if k in given]
            need(not clash, clash[0] if clash else "paper_grid",
                 "not allowed with paper_grid = true (the paper grid sets eta, n_eta, sigma, "
                 "n_sigma, T, n_walkers)")
            p.update(eta=[0.003, 0.3], n_eta=40, sigma=[0.001, 1000.0], n_sigma=61, T=10000.0,
                     n_walkers=64)
        need(p["eta"][1] <= 2.0, "eta", f"expected learning rates <= 2, got {p['eta']!r}")
        need(p["cut_eta"] <= 2.0, "cut_eta", f"expected a learning rate <= 2, got "
             f"{p['cut_eta']!r}")
    elif kind == "variance_flatness":
        need(p["window_2d"] < p["steps_2d"], "window_2d", f"expected window_2d < steps_2d = "
             f"{p['steps_2d']}, got {p['window_2d']!r}")
        need(p["window"] < p["iterations"], "window", f"expected window < iterations = "
             f"{p['iterations']}, got {p['window']!r}")
    elif kind == "ldc":
        _check_ldc(ld, p, need)


def _check_ldc(ld: _Loader, p: dict, need) -> None:
    """[analysis] kind = "ldc": window vs iterations, ψ among psis, the local data file."""
    need(p["window"] <= p["iterations_1"], "window", f"expected window <= iterations_1 = "
         f"{p['iterations_1']}, got {p['window']!r}")
    need(p["window"] // p["snapshot_every"] >= 3, "snapshot_every",
         f"expected at least 3 snapshots in the window ({p['window']}), got "
         f"snapshot_every = {p['snapshot_every']!r}")
    need(p["psi"] in p["psis"], "psi", f"expected one of psis = {p['psis']}, got {p['psi']!r}")
    if p["data"] != "digits":
        path = p["data"] if os.path.isabs(p["data"]) else \
            os.path.join(os.path.dirname(os.path.abspath(ld.path)), p["data"])
        need(os.path.isfile(path), "data", f'expected "digits" or an existing local MNIST .npz '
             f"file, got {p['data']!r} (not a file: {path})")
        p["data"] = path
        # the analysis hash must change with the data, not only with its path
        with open(path, "rb") as fh:
            p["data_sha256"] = hashlib.sha256(fh.read()).hexdigest()
