"""CPU of the Fig. 3 study's figures and .vtu files, before and after, on the same data.

Runs ``studies/fig3.toml`` once (this tree) and keeps the jobs its main process hands to
the renderer process (:func:`fpsolve.study.render.case_job`: three full case jobs and
the last case's plot data).  Then it replays them in fresh interpreters, alternately
with a "before" tree and this tree, ``--repeat`` times each, as the renderer runs them:
each case's ``.vtu`` and figure, then the panel (with the last case's plot data).  It
prints the CPU seconds (``time.process_time``) of each part, the load average, and
whether the PNG files of the two trees are byte-identical (the ``.vtu`` files are
compared by their arrays, which a lower zlib level does not change).

Usage::

    python bench/fig3_render.py                        # before = BEFORE, 3 repeats
    python bench/fig3_render.py --before /path/to/tree --repeat 5

The numbers are the renderer's work only; ``bench/fig3_study.py`` times the whole run.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import tomllib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
#: main before issue #18's figure and .vtu work
BEFORE = "7e9670c"

CAPTURE = """
import pickle, sys
import fpsolve.study.render as R
from fpsolve.study import load_study, run_study
made = R.case_job
def keep(*a, **k):
    job = made(*a, **k)
    n = len(keep.jobs); keep.jobs.append(job)
    with open(f"{sys.argv[1]}/job{n}.pkl", "wb") as fh:
        pickle.dump(job, fh)
    return job
keep.jobs = []
R.case_job = keep
if __name__ == "__main__":
    run_study(load_study(sys.argv[2]), out=sys.argv[3], force=True)
"""

REPLAY = """
import glob, json, os, pickle, sys, time
T = time.process_time
c = T()
from fpsolve.study import render as R
R._warm_up()
out = {"imports": T() - c}
jobs = [pickle.load(open(f, "rb")) for f in sorted(glob.glob(sys.argv[1] + "/job*.pkl"))]
files = {}
full = [j for j in jobs if j["figure"]]
for j in full:
    c = T(); r = R._render_case(dict(j, figure=False, keep=False), keep=False)
    out["vtu"] = out.get("vtu", 0.0) + T() - c; files.update(r["files"])
    c = T(); r = R._render_case(dict(j, vtk=None))
    out["case figures"] = out.get("case figures", 0.0) + T() - c; files.update(r["files"])
last = [dict(j, vtk=None, figure=False, keep=True) for j in jobs if not j["figure"]]
names = json.loads(sys.argv[3])
c = T(); r = R._render_panel(names, names, 150, last)
out["panel"] = T() - c; files.update(r["files"])
for rel, data in files.items():
    with open(os.path.join(sys.argv[2], rel.replace("/", "_")), "wb") as fh:
        fh.write(data)
print(json.dumps(out))
"""


def _checkout(ref: str, tmp: str) -> str:
    path = os.path.join(tmp, "before")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", path, ref],
                   check=True, capture_output=True)
    return path


def _python(tree: str, code: str, *args) -> str:
    env = dict(os.environ, PYTHONPATH=tree)
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=tree, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"run in {tree} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def _vtu_arrays(path):
    import meshio
    m = meshio.read(path)
    return [m.points, m.cells[0].data] + list(m.point_data.values()) + \
        [v[0] for v in m.cell_data.values()]


def _same_files(a: str, b: str) -> str:
    notes = []
    for f in sorted(os.listdir(a)):
        pa, pb = os.path.join(a, f), os.path.join(b, f)
        if f.endswith(".png"):
            with open(pa, "rb") as fa, open(pb, "rb") as fb:
                notes.append(f"{f}: {'identical' if fa.read() == fb.read() else 'DIFFERENT'}")
        elif f.endswith(".vtu"):
            same = all(np.array_equal(x, y) for x, y in zip(_vtu_arrays(pa), _vtu_arrays(pb)))
            notes.append(f"{f}: arrays {'identical' if same else 'DIFFERENT'}, "
                         f"{os.path.getsize(pa) / 1e6:.2f} -> {os.path.getsize(pb) / 1e6:.2f} MB")
    return "\n".join(notes)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default=BEFORE,
                    help="a git commit of this repository or a directory holding a tree")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="fig3-render-")
    made_worktree = not os.path.isdir(args.before)
    try:
        before = _checkout(args.before, tmp) if made_worktree else os.path.abspath(args.before)
        jobs = os.path.join(tmp, "jobs")
        os.makedirs(jobs)
        study = os.path.join(ROOT, "studies", "fig3.toml")
        _python(ROOT, CAPTURE, jobs, study, os.path.join(tmp, "run"))
        with open(study, "rb") as fh:
            panel = tomllib.load(fh)["output"]["panel"]
        rows = {"before": [], "after": []}
        for i in range(args.repeat):
            for label, tree in (("before", before), ("after", ROOT)):
                out = os.path.join(tmp, f"{label}-{i}")
                os.makedirs(out)
                load = os.getloadavg()[0]
                r = json.loads(_python(tree, REPLAY, jobs, out, json.dumps(panel)))
                r["load"] = load
                rows[label].append(r)
                print(f"{label} #{i + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items()),
                      file=sys.stderr, flush=True)
        keys = ["imports", "vtu", "case figures", "panel"]
        print("| CPU seconds (median of %d, load %.1f-%.1f) | before | after | after/before |"
              % (args.repeat, min(r["load"] for v in rows.values() for r in v),
                 max(r["load"] for v in rows.values() for r in v)))
        print("| --- | ---: | ---: | ---: |")
        for k in keys + ["total"]:
            med = {lab: float(np.median([sum(r[x] for x in keys) if k == "total" else r[k]
                                         for r in rows[lab]])) for lab in rows}
            print(f"| {k} | {med['before']:.2f} | {med['after']:.2f} | "
                  f"{med['after'] / med['before']:.2f} |")
        print()
        print(_same_files(os.path.join(tmp, "before-0"), os.path.join(tmp, "after-0")))
    finally:
        if made_worktree:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force",
                            os.path.join(tmp, "before")], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
