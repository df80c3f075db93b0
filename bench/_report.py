"""Shared tail of the benchmark scripts: machine metadata, and the atomic write-out of
the raw JSON and the Markdown page rendered from it (a killed run leaves the old files)."""
from __future__ import annotations

import datetime
import json
import os
import platform
import re

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


def replace_block(doc: str, name: str, text: str) -> bool:
    """Replace the text between ``<!-- bench:<name>:begin -->`` and ``...:end -->`` in
    the Markdown page ``doc`` by ``text`` (atomically).  False if the page or its
    markers do not exist (nothing is written)."""
    if not os.path.exists(doc):
        return False
    with open(doc, encoding="utf-8") as f:
        page = f.read()
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.S)
    if not pattern.search(page):
        return False
    atomic_write(doc, pattern.sub(lambda _: f"{begin}\n{text}\n{end}", page))
    return True
