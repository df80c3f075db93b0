"""Run the shipped LDC study and update docs/ldc.md (table, runtime) and its figures.

    python bench/ldc.py                 # runs studies/ldc.toml into results/ldc/ (or reuses it)
    python bench/ldc.py --force         # recompute even if results/ldc/ is up to date
    python bench/ldc.py --out DIR       # another output directory
    python bench/ldc.py --redraw        # only redraw figures and table from DIR/summary.json

The numbers come from the study (seeded: the same file gives the same table); this
script only copies ``ldc_S13.png`` and ``ldc_S14.png`` to docs/figures/ and replaces the
``<!-- bench:ldc-table -->`` and ``<!-- bench:ldc-runtime -->`` blocks of docs/ldc.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from _report import replace_block  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "ldc"))
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--redraw", action="store_true",
                    help="no run: redraw the figures and table.md of --out from its summary.json")
    args = ap.parse_args(argv)
    from fpsolve.cli import main as cli

    if args.redraw:
        _redraw(args.out)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    code = cli(["run", os.path.join(ROOT, "studies", "ldc.toml"), "--out", args.out,
                *(["--force"] if args.force else [])]) if not args.redraw else 0
    if code:
        return code
    wall = time.perf_counter() - t0
    with open(os.path.join(args.out, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    with open(os.path.join(args.out, "provenance.json"), encoding="utf-8") as fh:
        prov = json.load(fh)
    ex = prov.get("execution", {})
    cpu = ex.get("cpu_s", {})
    runtime = (f"Last run: {summary['runtime_s']:.0f} s wall on {ex.get('workers', '?')} "
               f"workers, CPU {cpu.get('main', float('nan')):.0f} s (main) + "
               f"{cpu.get('workers', float('nan')):.0f} s (worker processes); load average "
               f"{load0[0]:.1f} before and {os.getloadavg()[0]:.1f} after the run "
               f"(this invocation: {wall:.0f} s, including any reuse).")
    figs = os.path.join(ROOT, "docs", "figures")
    for f in ("ldc_S13.png", "ldc_S14.png"):
        shutil.copyfile(os.path.join(args.out, f), os.path.join(figs, f))
    doc = os.path.join(ROOT, "docs", "ldc.md")
    with open(os.path.join(args.out, "table.md"), encoding="utf-8") as fh:
        table = fh.read().rstrip()
    ok = replace_block(doc, "ldc-table", table) and (
        args.redraw or replace_block(doc, "ldc-runtime", runtime))   # a redraw is no run
    print(runtime if not args.redraw else f"redrew {args.out} and docs/ldc.md's table")
    if not ok:
        print(f"{doc}: markers <!-- bench:ldc-table/ldc-runtime:begin/end --> not found; "
              "table not updated", file=sys.stderr)
        return 1
    return 0


def _redraw(out: str) -> None:
    """Figures and table.md of ``out`` drawn again from its summary.json (same numbers)."""
    from fpsolve.study.analyses import ldc as drv
    from fpsolve.study.outputs import atomic_path, atomic_write
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        r = json.load(fh)["results"]
    res = {"params": r["params"], "cases": r["cases"]}
    for name, draw in (("ldc_S13.png", drv.figure_s13), ("ldc_S14.png", drv.figure_s14)):
        with atomic_path(os.path.join(out, name)) as tmp:
            draw(res).savefig(tmp, dpi=120)
    atomic_write(os.path.join(out, "table.md"), drv.table(res, drv.verdicts(res)))


if __name__ == "__main__":
    sys.exit(main())
