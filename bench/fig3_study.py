"""End-to-end time of the headline command, before and after, in one run (benchmark).

Runs ``python -m fpsolve run studies/fig3.toml --force`` (a fresh interpreter each time,
so imports count) alternately from a "before" tree and from this tree, ``--repeat``
times each, and prints per run the wall time, the CPU time of the command and its
children, the load average, and the breakdown of the study's own timings
(summary.json ``timings_s``, provenance.json ``execution``):

* assembly, solves, flux (+ cycles), observables — numerical work of the main process;
* VTK, per-case figures — time the main process spent on them (with the background
  renderer: handing the data over; the renderer's own CPU is listed separately);
* panel + other outputs — after the last case until summary.json is written;
* start-up — interpreter, imports, study validation (wall minus the study's total).

Then it compares summary.json of the two trees value by value (timings excluded) and
reports the largest relative difference.  The Markdown table goes between the
``bench:fig3_study`` markers of docs/studies.md (``--no-doc``: print only).

Usage::

    python bench/fig3_study.py                       # before = BEFORE (a commit), 2 repeats
    python bench/fig3_study.py --before 409fd04      # before the estimate/renderer work
    python bench/fig3_study.py --before /path/to/tree --repeat 3 --no-doc

Run it on a quiet machine (load average ≤ 1) for the wall times; the load before and
after each run is printed, and the CPU rows stay meaningful on a loaded machine.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from _report import machine_meta, replace_block  # noqa: E402
from fpsolve.study.outputs import atomic_write  # noqa: E402

#: main before issue #18's changes
BEFORE = "c66fbf0"
DOC = os.path.join(ROOT, "docs", "studies.md")
RAW = os.path.join(HERE, "results", "fig3_study.json")
#: keys of summary.json that are measurements of time, not results
TIME_KEYS = ("runtime_s", "timings_s", "reused")
PARTS = [("start-up", "startup"), ("assembly", "assembly"), ("solves", "solve"),
         ("… of which the error estimate (issue #17)", "estimate"),
         ("flux + cycles", "flux"), ("observables", "observables"), ("VTK", "vtk"),
         ("per-case figures", "figure"), ("panel + other outputs", "outputs")]


def _checkout(ref: str, tmp: str) -> str:
    path = os.path.join(tmp, "before")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", path, ref],
                   check=True, capture_output=True)
    return path


def run_once(tree: str, out: str) -> dict:
    """One run of the study from ``tree``; wall, CPU and the breakdown."""
    env = dict(os.environ, PYTHONPATH=tree)
    load0 = os.getloadavg()[0]
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fpsolve", "run",
                           os.path.join(tree, "studies", "fig3.toml"), "--force", "--quiet",
                           "--out", out], cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"run from {tree} failed:\n{proc.stderr[-3000:]}")
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    with open(os.path.join(out, "provenance.json"), encoding="utf-8") as fh:
        ex = json.load(fh)["execution"]
    parts = dict.fromkeys([k for _, k in PARTS], 0.0)
    for c in summary["cases"]:
        t = c["timings_s"]
        parts["assembly"] += t.get("assembly_share", 0.0)
        for k in ("solve", "flux", "observables", "vtk", "figure"):
            parts[k] += t.get(k, 0.0)
        parts["estimate"] += c.get("diagnostics", {}).get("timings", {}).get("estimate_s", 0.0)
    parts["outputs"] = ex["wall_s"]["study_outputs"]
    parts["startup"] = wall - ex["wall_s"]["total"]
    render = ex.get("render") or {}
    cpu_main = ex.get("cpu_s") or {}
    return {"wall": wall, "cpu": (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime),
            "cpu_main": (cpu_main.get("main_cases", 0.0) + cpu_main.get("main_study_outputs", 0.0)
                         if cpu_main else None),
            "load": [load0, os.getloadavg()[0]], "parts": parts,
            "render_cpu": render.get("cpu_s"), "render_wait": render.get("wait_s"),
            "summary": summary}


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in TIME_KEYS
                and not k.endswith("_s")}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def compare(a, b, path="", out=None) -> list:
    """(path, relative difference) of every float; (path, None) for other mismatches."""
    out = [] if out is None else out
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            out.append((f"{path} keys {sorted(set(a) ^ set(b))}", None))
        for k in set(a) & set(b):
            compare(a[k], b[k], f"{path}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            compare(x, y, f"{path}[{i}]", out)
    elif isinstance(a, float) and isinstance(b, float):
        out.append((path, abs(a - b) / max(abs(a), abs(b), 1e-300)))
    elif a != b:
        out.append((path, None))
    return out


def _beyond_golden(before: dict, after: dict) -> int:
    """How many values of ``after`` differ from ``before`` beyond the tolerances of the
    golden Fig. 3 test (tests/fig3_golden.py: exact, 1e-9 relative or per-path rules for
    values at round-off, e.g. a mode of ~1e-17 whose sign is noise); keys present in one
    run only are not counted (reported apart)."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from fig3_golden import compare as golden_compare, golden_values

    def common(a, b):
        if isinstance(a, dict) and isinstance(b, dict):
            return {k: common(a[k], b[k]) for k in a if k in b}
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            return [common(x, y) for x, y in zip(a, b)]
        return a
    a, b = golden_values(before), golden_values(after)
    return len(golden_compare(common(b, a), common(a, b)))


def _key_changes(paths: list) -> str:
    """'.cases[2].diagnostics keys [...]' mismatches, summarised without case indices."""
    import re
    seen = dict.fromkeys(re.sub(r"\[\d+\]", "[*]", p) for p in paths)
    return "; ".join(seen) or "none"


def render_table(runs: dict, meta: dict, diff: dict) -> str:
    labels = list(runs)
    cols = [f"{lab} #{i + 1}" for lab in labels for i in range(len(runs[lab]))]
    flat = [r for lab in labels for r in runs[lab]]
    L = [f"Measured {meta['date']} on {meta['machine']} (Python {meta['python']}); "
         f"`python bench/fig3_study.py` (before = `{meta['before']}`), runs interleaved.",
         "", "| seconds | " + " | ".join(cols) + " |",
         "| --- | " + " | ".join("---:" for _ in cols) + " |",
         "| **wall, `fpsolve run studies/fig3.toml --force`** | "
         + " | ".join(f"**{r['wall']:.1f}**" for r in flat) + " |",
         "| CPU (all processes) | " + " | ".join(f"{r['cpu']:.1f}" for r in flat) + " |",
         "| … of which the main process (start-up included) | "
         + " | ".join("–" if r.get("cpu_main") is None else f"{r['cpu_main']:.1f}"
                      for r in flat) + " |",
         "| load average (1 min) before / after | "
         + " | ".join(f"{r['load'][0]:.1f} / {r['load'][1]:.1f}" for r in flat) + " |"]
    for name, key in PARTS:
        L.append(f"| {name} | " + " | ".join("–" if r["parts"].get(key) is None
                                             else f"{r['parts'][key]:.2f}" for r in flat) + " |")
    L.append("| renderer process CPU (overlapped) | "
             + " | ".join("–" if r["render_cpu"] is None else f"{r['render_cpu']:.1f}"
                          for r in flat) + " |")
    L.append("| waiting for the renderer at the end | "
             + " | ".join("–" if r["render_wait"] is None else f"{r['render_wait']:.2f}"
                          for r in flat) + " |")
    med = {lab: {k: float(np.median([r[k] for r in runs[lab]])) for k in ("wall", "cpu")}
           for lab in labels}
    if len(labels) == 2:
        a, b = labels
        L += ["", f"Medians, {b} / {a}: wall {med[b]['wall']:.1f} / {med[a]['wall']:.1f} s "
              f"(× {med[b]['wall'] / med[a]['wall']:.2f}), CPU {med[b]['cpu']:.1f} / "
              f"{med[a]['cpu']:.1f} s (× {med[b]['cpu'] / med[a]['cpu']:.2f}). Under load the wall "
              "times are the machine's, not the command's: compare the CPU rows."]
    L += ["", f"summary.json, after vs before, value by value (timings excluded): "
          f"{diff['floats']} numbers, largest relative difference {diff['max_rel']:.1e}"
          + (f" ({diff['where']})" if diff["where"] else "")
          + (f", {diff['beyond_golden']} beyond the golden test's tolerances"
             if "beyond_golden" in diff else "")
          + f"; other differences (keys present in one run only): "
          + f"{_key_changes(diff['other'])}."]
    return "\n".join(L)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default=BEFORE,
                    help="a git commit of this repository or a directory holding a tree")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-doc", action="store_true", help="print the table only")
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="fig3-bench-")
    made_worktree = not os.path.isdir(args.before)
    try:
        before = _checkout(args.before, tmp) if made_worktree else os.path.abspath(args.before)
        runs = {"before": [], "after": []}
        for i in range(args.repeat):
            for label, tree in (("before", before), ("after", ROOT)):
                r = run_once(tree, os.path.join(tmp, f"{label}-{i}"))
                runs[label].append(r)
                print(f"{label} #{i + 1}: {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU, "
                      f"load {r['load'][0]:.1f}", file=sys.stderr, flush=True)
        diffs = compare(_strip(runs["before"][-1]["summary"]),
                        _strip(runs["after"][-1]["summary"]))
        rel = [(p, d) for p, d in diffs if d is not None]
        worst = max(rel, key=lambda x: x[1], default=("", 0.0))
        diff = {"floats": len(rel), "max_rel": worst[1], "where": worst[0] if worst[1] else "",
                "other": [p for p, d in diffs if d is None],
                "beyond_golden": _beyond_golden(runs["before"][-1]["summary"],
                                                runs["after"][-1]["summary"])}
    finally:
        if made_worktree and os.path.isdir(os.path.join(tmp, "before")):
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force",
                            os.path.join(tmp, "before")], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    meta = machine_meta(before=args.before if made_worktree else "given tree")
    table = render_table(runs, meta, diff)
    print(table)
    if not args.no_doc:
        os.makedirs(os.path.dirname(RAW), exist_ok=True)
        raw = {"meta": meta, "diff": diff,
               "runs": {k: [{kk: vv for kk, vv in r.items() if kk != "summary"} for r in v]
                        for k, v in runs.items()}}
        atomic_write(RAW, json.dumps(raw, indent=1))
        if not replace_block(DOC, "fig3_study", table):
            print(f"(no bench:fig3_study markers in {DOC}: table not written)", file=sys.stderr)


if __name__ == "__main__":
    main()
