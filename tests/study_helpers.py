"""Helpers shared by the study tests (tests/test_study_*.py, tests/test_forked.py).

Plain functions and constants; the pytest fixtures built on them are in conftest.py.
"""
import json
import os
import re
import textwrap

from fpsolve.study.tasks import component

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDIES = os.path.join(ROOT, "studies")
MESH = os.path.join(ROOT, "meshes", "disk_r2.msh")

HAVE_IO = component("io") is not None
HAVE_PLOT = component("plot") is not None
HAVE_FLUX = component("flux") is not None

#: the [output] of tests of the runner's bookkeeping: flux cycles on coarse meshes are
#: slow to locate, figures cost time, and those tests do without them
FAST = {"flux": False, "figures": False, "panel": ["a"]}

#: the panel of Fig. 3: with and without cross-diffusion in rows
PANEL_ROWS = {"panel": [["a", "b"], ["c", "d"]]}


def write(tmp_path, text, name="study.toml"):
    """Write ``text`` (dedented) as the study file ``name`` in ``tmp_path``; its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def four_cases(h=0.25, order=None, delta_s=None, output=None):
    """A Fig. 3-like study "four" on the paper's landscape, coarse enough for a test.

    Cases a, b (Δ_S = 0.009, 0.012 with cross-diffusion) and c, d (the same without).

    Parameters
    ----------
    h : float
        Mesh edge length (``[mesh] h``).
    order : int, optional
        ``[solver] order`` (default: the schema's).
    delta_s : dict, optional
        Case name -> its Δ_S instead of the default one (to change one case).
    output : dict, optional
        The ``[output]`` keys (``FAST``, ``PANEL_ROWS``, ...); none: the defaults.
    """
    ds = {"a": 0.009, "b": 0.012, "c": 0.009, "d": 0.012, **(delta_s or {})}
    text = f'[study]\nname = "four"\n[noise]\ndelta_s = 0.01\n[mesh]\nh = {h}\n'
    if order is not None:
        text += f"[solver]\norder = {order}\n"
    for name in "abcd":
        text += f'[[case]]\nname = "{name}"\nnoise.delta_s = {ds[name]}\n'
        if name in "cd":
            text += "noise.cross_diffusion = false\n"
    if output:       # JSON values are TOML values here (booleans, strings, lists)
        text += "[output]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in output.items())
    return text


def files(out):
    """Every file below the directory ``out``, relative to it, sorted."""
    return sorted(os.path.relpath(os.path.join(d, f), out)
                  for d, _, fs in os.walk(out) for f in fs)


#: keys ending in ``_s`` that are not seconds: Δ_S parameters and a fitted time scale
NOT_SECONDS = ("delta_s", "tau_s")


def _is_time(key: str) -> bool:
    return key.endswith("_s") and not key.endswith(NOT_SECONDS)


def strip_times(obj):
    """summary.json without its measurements of time (every ``*_s`` key but the
    parameters named in :data:`NOT_SECONDS`, which are compared like any value)."""
    if isinstance(obj, dict):
        return {k: strip_times(v) for k, v in obj.items() if not _is_time(k)}
    if isinstance(obj, list):
        return [strip_times(v) for v in obj]
    return obj


def vtu_without_run_data(path):
    """The bytes of a .vtu file without its ``parameters_json`` array, which holds the
    solver's own timings (they differ from run to run)."""
    text = open(path, "rb").read()
    return re.sub(rb'Name="parameters_json".*?</DataArray>', b"", text, flags=re.S)


def assert_same_files(a, b, names=None):
    """The PNGs of the output directories ``a`` and ``b`` are the same bytes, their .vtu
    files the same apart from timings (``names``: these files only, else all of ``a``'s,
    which must be ``b``'s)."""
    if names is None:
        names = files(a)
        assert names == files(b)
    for f in names:
        fa, fb = os.path.join(a, f), os.path.join(b, f)
        if f.endswith(".png"):
            assert open(fa, "rb").read() == open(fb, "rb").read(), f
        elif f.endswith(".vtu"):
            assert vtu_without_run_data(fa) == vtu_without_run_data(fb), f
