"""Make (``--write``) or check tests/data/fig3_summary_golden.json, the golden values of
the shipped Fig. 3 study that tests/test_study_fig3.py compares every run with.

How the file was made: on a clean checkout of main (the commit, date, versions and
command are stored in its ``_meta``)::

    python tests/data/make_fig3_golden.py --write

which runs ``python -m fpsolve run studies/fig3.toml --force --quiet --out TMP`` in a fresh
interpreter from this tree (the CLI's path: background renderer, forked error estimates)
and keeps ``fig3_golden.golden_values`` of its summary.json: every value but timings,
provenance, ``reused`` flags and warning texts.  Regenerate it only deliberately, when a
change of the numbers is intended and explained in the commit message.

Without ``--write`` it checks instead: it runs the study (or reads ``--summary FILE``,
e.g. the summary.json of your own run), prints every value that differs from the golden
file beyond its tolerance (the test's comparison) and, per tolerance rule, the largest
difference as a fraction of what the rule allows.  Exit status 1 if anything differs.
``--runs N`` repeats the run (and compares the runs with each other too).

    python tests/data/make_fig3_golden.py                          # run once, check
    python tests/data/make_fig3_golden.py --summary results/fig3/summary.json
"""
import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
sys.path[:0] = [TESTS, ROOT]

from fig3_golden import (GOLDEN, RTOL, RULES, compare, golden_values, matches,  # noqa: E402
                         pattern_of, tolerance)
from fpsolve.study.outputs import atomic_write  # noqa: E402

COMMAND = ["-m", "fpsolve", "run", "studies/fig3.toml", "--force", "--quiet", "--out"]


def _git(*args):
    return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def run_study(out):
    """summary.json of one CLI run of studies/fig3.toml from this tree into ``out``."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, *COMMAND, out], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"fpsolve run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        return json.load(fh)


def _leaves(tree, path=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, f"{path}.{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, tree


def margins(values, golden):
    """Per rule (and the default RTOL): the largest |difference| / allowed over the
    floats of two trees of the same shape."""
    ref = dict(_leaves(golden))
    worst = {}
    for path, a in _leaves(values):
        g = ref.get(path)
        if type(a) is not float or type(g) is not float or not math.isfinite(g):
            continue
        rtol, atol = tolerance(path)
        rule = next((p for p, *_ in RULES if matches(p, pattern_of(path))), "(RTOL)")
        ratio = abs(a - g) / (atol + rtol * abs(g)) if atol + rtol * abs(g) else 0.0
        if ratio >= worst.get(rule, (-1.0, ""))[0]:
            worst[rule] = (ratio, path)
    return worst


def meta():
    """Where and how the golden values were made."""
    versions = {}
    for name in ("numpy", "scipy", "scikit-fem", "pymetis", "numba"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"made_by": "python tests/data/make_fig3_golden.py --write",
            "commit": _git("rev-parse", "HEAD"),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": "python " + " ".join(COMMAND) + " TMP",
            "python": platform.python_version(), "machine": platform.machine(),
            "versions": versions, "default_rtol": RTOL,
            "tolerances": "tests/fig3_golden.py RULES"}


def _check(values, golden, label):
    bad = compare(values, golden)
    print(f"{label}: {len(bad)} value(s) differ beyond tolerance")
    for line in bad:
        print("   ", line)
    for rule, (ratio, path) in sorted(margins(values, golden).items(), key=lambda r: -r[1][0]):
        print(f"    {ratio:9.3g} of allowed  {rule:55s} {path}")
    return bad


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="regenerate the golden file")
    ap.add_argument("--summary", help="check this summary.json instead of running")
    ap.add_argument("--runs", type=int, default=1, help="runs (without --summary)")
    ap.add_argument("--allow-dirty", action="store_true",
                    help="--write from a tree with uncommitted changes to fpsolve/ or studies/")
    args = ap.parse_args(argv)
    if args.write and _git("status", "--porcelain", "fpsolve", "studies") \
            and not args.allow_dirty:
        raise SystemExit("fpsolve/ or studies/ has uncommitted changes: commit first "
                         "(or --allow-dirty)")
    if args.summary:
        with open(args.summary, encoding="utf-8") as fh:
            runs = [golden_values(json.load(fh))]
    else:
        with tempfile.TemporaryDirectory(prefix="fig3_golden_") as tmp:
            runs = [golden_values(run_study(os.path.join(tmp, f"run{i}")))
                    for i in range(args.runs)]
    for i, values in enumerate(runs[1:], 1):
        _check(values, runs[0], f"run {i} against run 0")
    if args.write:
        atomic_write(GOLDEN, json.dumps({"_meta": meta(), "values": runs[0]}, indent=1,
                                        ensure_ascii=False) + "\n")
        print(f"wrote {os.path.relpath(GOLDEN, ROOT)}")
        return 0
    with open(GOLDEN, encoding="utf-8") as fh:
        golden = json.load(fh)
    print(f"golden values of commit {golden['_meta']['commit'][:10]} "
          f"({golden['_meta']['date']})")
    bad = [b for i, values in enumerate(runs) for b in _check(values, golden["values"],
                                                               f"run {i} against the golden file")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
