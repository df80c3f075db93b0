"""Shared tail of the benchmark scripts: machine metadata, and the atomic write-out of
the raw JSON and the Markdown page rendered from it (a killed run leaves the old files)."""
from __future__ import annotations

import datetime
import json
import os
import platform

from fpsolve.study.outputs import atomic_write


def machine_meta(**extra) -> dict:
    """Date, machine, Python, scikit-fem and SciPy versions (plus ``extra``)."""
    import scipy
    import skfem
    return dict(date=datetime.date.today().isoformat(),
                machine=f"{platform.machine()}, {os.cpu_count()} cores",
                python=platform.python_version(), skfem=skfem.__version__,
                scipy=scipy.__version__, **extra)


def write_report(doc: str, text: str, raw: str | None = None, data=None) -> None:
    """Write the raw numbers ``data`` to ``raw`` (unless None) and ``text`` to ``doc``."""
    if raw is not None:
        os.makedirs(os.path.dirname(raw), exist_ok=True)
        atomic_write(raw, json.dumps(data, indent=1))
    atomic_write(doc, text)
