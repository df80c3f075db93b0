"""Atomic file writing, provenance and the sweep figure of a study run."""
from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata as _md
import json
import os
import platform
import re
import secrets
import sys

__all__ = ["atomic_write", "atomic_path", "write_json", "remove_stale_temporaries",
           "provenance", "sweep_figure", "DEPENDENCIES"]

# ours: .<stem>.tmp-<pid>-<hex><ext>; fpsolve.io's own: .<name>.tmp-<pid>
_TMP_RE = re.compile(r"^\..+\.tmp-(\d+)(-[0-9a-f]+)?(\.[A-Za-z0-9]+)?$")

#: Distributions whose versions go into provenance.json (plus fpsolve's own requirements).
DEPENDENCIES = ("numpy", "scipy", "scikit-fem", "meshio", "matplotlib", "sympy", "rich", "vtk",
                "numba", "dask", "distributed")


def _temporary_name(path: str) -> str:
    # hidden, same directory (os.replace is atomic only within one file system), same
    # extension (writers such as meshio/matplotlib pick the format from it)
    d, base = os.path.split(path)
    stem, ext = os.path.splitext(base)
    return os.path.join(d, f".{stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{ext}")


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    A reader (or a rerun after SIGKILL) sees either the old file or the complete new
    one, never a partial file.
    """
    tmp = _temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path: str, data: bytes | str) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, ``os.replace``)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def write_json(path: str, obj) -> None:
    """Atomically write ``obj`` as indented JSON (strict: no NaN)."""
    atomic_write(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(directory: str) -> list[str]:
    """Remove temporary files left by killed runs (their process no longer exists)."""
    removed = []
    if not os.path.isdir(directory):
        return removed
    for name in os.listdir(directory):
        m = _TMP_RE.match(name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            os.remove(os.path.join(directory, name))
            removed.append(name)
    return removed


def _version(dist: str):
    try:
        return _md.version(dist)
    except _md.PackageNotFoundError:
        return None


def provenance(study, command: str | None, computed, reused, failed, execution: dict,
               missing: list[str]) -> dict:
    """Versions, command line, configuration hash and date of a run."""
    from .. import __version__
    names = set(DEPENDENCIES)
    try:
        for req in _md.requires("fpsolve") or []:
            name = re.split(r"[\s<>=!~;\[]", req, 1)[0]
            # conditional requirements (extras, python_version markers) only if installed
            if ";" not in req or _version(name) is not None:
                names.add(name)
    except _md.PackageNotFoundError:
        pass
    return {
        "fpsolve": __version__,
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "dependencies": {n: _version(n) for n in sorted(names, key=str.lower)},
        "command": command,
        "study_file": os.path.abspath(study.path),
        "config_hash": study.hash,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "execution": execution,
        "computed": list(computed),
        "reused": list(reused),
        "failed": list(failed),
        "missing_components": missing,
    }


def sweep_figure(path: str, parameter: str, rows: list[dict], title: str) -> None:
    """⟨x²⟩, |marginal mode|, escape rate and strongest-cycle circulation vs the parameter."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    xs = [r["value"] for r in rows]
    fig = Figure(figsize=(9.0, 6.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    panels = [
        ("⟨x²⟩", [r["x2"] for r in rows], "linear"),
        ("|x| of the x-marginal maximum", [abs(r["marginal_mode_x"]) for r in rows], "linear"),
        ("escape rate μ", [r["escape_rate"] for r in rows], "log"),
        ("|circulation| of the strongest cycle",
         [abs(r["cycles"][0]["circulation"]) if r.get("cycles") else None for r in rows], "log"),
    ]
    for ax, (label, ys, scale) in zip(axes.flat, panels):
        pts = [(x, y) for x, y in zip(xs, ys) if y is not None and (scale == "linear" or y > 0)]
        if pts:
            ax.plot(*zip(*pts), "o-", ms=4)
            ax.set_yscale(scale)
        else:
            ax.text(0.5, 0.5, "not available", ha="center", va="center", transform=ax.transAxes)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel(parameter)
    fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
