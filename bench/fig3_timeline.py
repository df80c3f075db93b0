"""When each process of the Fig. 3 study is busy: a CPU timeline of the two cores (benchmark).

Runs ``python -m fpsolve run studies/fig3.toml --force`` (from this tree, or the tree given
with ``--tree``) and samples the CPU time of every thread of the command and of its child
processes from ``/proc`` every ``--dt`` seconds (Linux only).  The lanes:

* ``main thread`` — the study's own thread (solves, flux, observables, ...);
* ``main, other threads`` — the flux-operator prefetch, the estimate caches, the
  matplotlib import, the renderer hand-over;
* ``renderer`` — the background process that draws figures and encodes ``.vtu`` files
  (forked before the first solve, or a spawned interpreter);
* ``forked`` — short-lived children forked by the main process (the error estimates).

Each lane is printed as one character per bin (`` .:-=+*#%@``: idle to one full core), then
the CPU seconds per lane and how much of the two cores stayed idle.  Run it on a quiet
machine: under load the lanes stretch and overlap differently.

Usage::

    python bench/fig3_timeline.py                  # 0.05 s samples, 0.25 s bins
    python bench/fig3_timeline.py --tree /path/to/other/tree --bin 0.5
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
SHADES = " .:-=+*#%@"


def _stat(path: str):
    """(ppid, CPU seconds) of /proc/<pid>[/task/<tid>]/stat, or None if gone."""
    try:
        with open(os.path.join(path, "stat")) as fh:
            s = fh.read()
    except OSError:
        return None
    rest = s[s.rfind(")") + 2:].split()
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / TICK


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _sample(root: int, kinds: dict) -> dict:
    """CPU seconds so far per (lane, id): the root's threads and its descendants."""
    out = {}
    for tid in os.listdir(f"/proc/{root}/task") if os.path.isdir(f"/proc/{root}/task") else ():
        st = _stat(f"/proc/{root}/task/{tid}")
        if st is not None:
            lane = "main thread" if int(tid) == root else "main, other threads"
            out[(lane, int(tid))] = st[1]
    parents = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            st = _stat(f"/proc/{p}")
            if st is not None:
                parents[int(p)] = st
    frontier, seen = [root], {root}
    while frontier:
        q = frontier.pop()
        for p, (pp, cpu) in parents.items():
            if pp == q and p not in seen:
                seen.add(p)
                frontier.append(p)
                if p not in kinds:
                    # a fork runs the parent's command line: the first one is the renderer
                    # (forked before the first solve), the later ones the estimates; a
                    # spawned renderer runs multiprocessing's command line
                    if _cmdline(p) == _cmdline(root):
                        first = "renderer" not in set(kinds.values())
                        kinds[p] = "renderer" if first else "forked"
                    else:
                        kinds[p] = ("renderer" if "multiprocessing" in _cmdline(p)
                                    else "other")
                out[(kinds[p], p)] = cpu
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", default=os.path.dirname(HERE), help="the fpsolve tree to run")
    ap.add_argument("--dt", type=float, default=0.05, help="sampling interval (s)")
    ap.add_argument("--bin", type=float, default=0.25, help="width of a character (s)")
    args = ap.parse_args()
    if not os.path.isdir("/proc/self/task"):
        raise SystemExit("fig3_timeline: needs Linux /proc")
    env = dict(os.environ, PYTHONPATH=args.tree)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fig3-timeline-") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "fpsolve", "run",
                                 os.path.join(args.tree, "studies", "fig3.toml"), "--force",
                                 "--quiet", "--out", out], cwd=args.tree, env=env)
        kinds, last, rows = {}, {}, []
        while proc.poll() is None:
            time.sleep(args.dt)
            cur = _sample(proc.pid, kinds)
            rows.append((time.perf_counter() - t0,
                         {k: v - last.get(k, 0.0) for k, v in cur.items()}))
            last.update(cur)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the study failed (exit {proc.returncode})")
    lanes = ["main thread", "main, other threads", "renderer", "forked", "other"]
    nb = int(wall / args.bin) + 1
    busy = {lane: [0.0] * nb for lane in lanes}
    for t, delta in rows:
        for (lane, _), v in delta.items():
            busy[lane][min(int(t / args.bin), nb - 1)] += v
    print(f"wall {wall:.2f} s, load {load0:.2f} -> {os.getloadavg()[0]:.2f}, "
          f"one character = {args.bin:g} s")
    for lane in lanes:
        if sum(busy[lane]) > 0:
            line = "".join(SHADES[min(9, int(round(v / args.bin * 9)))] for v in busy[lane])
            print(f"{lane:>20} |{line}|")
    ticks = "".join(str(int(i * args.bin) % 10) if int(i * args.bin) != int((i - 1) * args.bin)
                    or i == 0 else " " for i in range(nb))
    print(f"{'seconds':>20} |{ticks}|")
    total = 0.0
    for lane in lanes:
        s = sum(busy[lane])
        total += s
        if s > 0:
            print(f"{lane:>20}: {s:6.2f} s CPU")
    print(f"{'two cores idle':>20}: {2 * wall - total:6.2f} s of {2 * wall:.2f}")


if __name__ == "__main__":
    main()
