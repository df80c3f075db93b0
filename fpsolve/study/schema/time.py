"""Validation of the ``[time]`` section: a transient and the relaxation spectrum per case."""
from __future__ import annotations

import numpy as np

from .keys import _PLAIN
from .sections import _Loader

_DEFAULTS = {"n_out": 11, "spacing": "linear", "tol": 1e-6, "initial_mean": [0.0, 0.0],
             "initial_cov": [[0.01, 0.0], [0.0, 0.01]], "spectrum": 6, "vtk": True}


def output_times(cfg: dict) -> list[float]:
    """The output times of a resolved ``[time]`` section."""
    if cfg.get("times") is not None:
        return list(cfg["times"])
    t, n = cfg["t_end"], cfg["n_out"]
    if cfg["spacing"] == "log":
        return [0.0] + np.geomspace(t / 1000, t, n - 1).tolist()
    return np.linspace(0.0, t, n).tolist()


def _time_section(ld: _Loader, raw: dict) -> dict | None:
    """The resolved ``[time]`` (every default filled in), or None without one."""
    if "time" not in raw:
        return None
    given = ld.plain_section(raw, "time")
    if ("t_end" in given) == ("times" in given):
        ld.fail("time.t_end", "give either time.t_end (with n_out, spacing) or time.times, "
                "not both" if "t_end" in given else "required: time.t_end or time.times")
    if "times" in given:
        for k in ("n_out", "spacing"):
            if k in given:
                ld.fail(f"time.{k}", "only with time.t_end (time.times lists the outputs)")
        if any(b <= a for a, b in zip(given["times"], given["times"][1:])):
            ld.fail("time.times", f"expected increasing times, got {given['times']}")
    cov = np.asarray(given.get("initial_cov", _DEFAULTS["initial_cov"]))
    if not np.allclose(cov, cov.T) or np.linalg.eigvalsh(0.5 * (cov + cov.T)).min() <= 0:
        ld.fail("time.initial_cov", f"expected a symmetric positive definite matrix, got "
                f"{cov.tolist()}")
    out = {"t_end": None, "times": None, **_DEFAULTS, **given}
    if out["times"] is not None:
        out["n_out"] = out["spacing"] = None
    return {k: out[k] for k in sorted(out) if k in _PLAIN["time"]}
