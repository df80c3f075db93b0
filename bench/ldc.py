"""Run the shipped LDC study and update docs/ldc.md (table, runtime) and its figures.

    python bench/ldc.py                 # runs studies/ldc.toml into results/ldc/ (or reuses it)
    python bench/ldc.py --force         # recompute even if results/ldc/ is up to date
    python bench/ldc.py --out DIR       # another output directory

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
    args = ap.parse_args(argv)
    from fpsolve.cli import main as cli

    load0 = os.getloadavg()
    t0 = time.perf_counter()
    code = cli(["run", os.path.join(ROOT, "studies", "ldc.toml"), "--out", args.out,
                *(["--force"] if args.force else [])])
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
    ok = replace_block(doc, "ldc-table", table) and replace_block(doc, "ldc-runtime", runtime)
    print(runtime)
    if not ok:
        print(f"{doc}: markers <!-- bench:ldc-table/ldc-runtime:begin/end --> not found; "
              "table not updated", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
