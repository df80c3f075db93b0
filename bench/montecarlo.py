"""Monte Carlo throughput: walker-steps per second against the RNG floor, one table.

Rows (all float64, ``sample_every=10``, absorbing disk of radius 2 unless noted):

* **RNG floor** — numpy merely drawing the two normals a step needs,
  ``Generator(PCG64).standard_normal(out=buf)``, one thread (one core);
* **ceiling** — a minimal walker-major ``@njit(nogil=True)`` kernel (paper step, normals
  drawn inline with ``Generator.standard_normal``, one walker at a time, no exit test, no
  statistics) fed per-block Generators on a thread pool: the reference design.  The
  production kernel can beat it: it runs PCG64 and the ziggurat itself (no call per
  draw) and steps four walkers in lockstep;
* ``montecarlo.sgd`` on the paper landscape, ``langevin`` on a quadratic, on an expression
  OU landscape (constant D), with expression noise (an expression tensor), ``sgd`` on the
  paper landscape written as an expression, and the numpy fallback for reference.

Every row is measured ``--repeat`` times, alternating with the floor so that both see the
same machine load; the best of each is kept.  Columns: wall-clock rate with all cores
(``workers`` = CPUs) and its ratio to the one-core floor, and the rate per CPU-second
(process CPU time; insensitive to other jobs on the machine) with its ratio to the
floor's rate per CPU-second.  The load average is printed with the table.

Usage::

    python bench/montecarlo.py            # 16384 walkers x 4000 steps; rewrites the table
                                          # in docs/montecarlo.md
    python bench/montecarlo.py --quick    # 4096 x 1000, prints only
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import fpsolve as fp
from fpsolve.stochastic import montecarlo as mcm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import replace_block  # noqa: E402

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   "docs", "montecarlo.md")


def rng_floor(walker_steps: int, buf_size: int = 1 << 15):
    """(wall, CPU) walker-steps/s of drawing 2 normals per step with numpy, one thread."""
    g = np.random.Generator(np.random.PCG64(12345))
    buf = np.empty(buf_size)
    calls = max(1, 2 * walker_steps // buf_size)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(calls):
        g.standard_normal(out=buf)
    ws = calls * buf_size / 2
    return ws / (time.perf_counter() - t0), ws / (time.process_time() - c0)


def _ceiling_kernel():
    from numba import njit

    @njit(nogil=True)
    def kernel(rng, X, Y, k, n_chunks, a, c, p):  # pragma: no cover - compiled
        p0, p1, p2, p3, p4, p5, p6 = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
        for _ in range(n_chunks):
            for w in range(X.shape[0]):
                x = X[w]
                y = Y[w]
                for _s in range(k):
                    z1 = rng.standard_normal()
                    z2 = rng.standard_normal()
                    x2 = x * x
                    y2 = y * y
                    lam = (p1 + p2 * x2) + p3 * (x2 * x2)
                    dlam = p4 * x + p5 * (x * x2)
                    gx = p0 * x + 0.5 * (dlam * y2)
                    gy = lam * y
                    hxx = p0 + 0.5 * ((p4 + p6 * x2) * y2)
                    hxy = dlam * y
                    x = (x - a * gx) + c * (hxx * z1 + hxy * z2)
                    y = (y - a * gy) + c * (hxy * z1 + lam * z2)
                X[w] = x
                Y[w] = y
    return kernel


def ceiling(n_walkers, n_steps, workers, block_size=256):
    """(wall, CPU) rate of the minimal walker-major kernel on ``workers`` threads."""
    L = fp.landscapes.paper()
    p = np.array([L.eps * L.lam0, L.lam0, L.lam1, L.lam2, 2 * L.lam1, 4 * L.lam2, 12 * L.lam2])
    K = ceiling.kernel
    nb = -(-n_walkers // block_size)
    rngs = [np.random.Generator(np.random.PCG64(i)) for i in range(nb)]
    X = [np.random.default_rng(i).normal(0, 0.05, block_size) for i in range(nb)]
    Y = [x.copy() for x in X]
    a, c = 0.01, 0.01 * math.sqrt(2 * 1.2)

    def one(i):
        K(rngs[i], X[i], Y[i], 10, n_steps // 10, a, c, p)

    t0, c0 = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(nb)))
    ws = nb * block_size * n_steps
    return ws / (time.perf_counter() - t0), ws / (time.process_time() - c0)


def cases():
    """(name, function(n_walkers, n_steps, workers) -> MonteCarloResult, step fraction)."""
    L = fp.landscapes.paper()
    Q = fp.landscapes.quadratic([[1.0, 0.3], [0.3, 0.5]])
    OU = fp.landscapes.expression("0.5*(a*x**2 + 2*b*x*y + c*y**2)", a=1.0, b=0.3, c=0.5)
    E = fp.landscapes.expression(
        "0.5*eps*lam0*x**2 + 0.5*(lam0 + lam1*x**2 + lam2*x**4)*y**2",
        eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)
    Dc = [[0.05, -0.02], [-0.02, 0.02]]
    De = fp.diffusion.expression("0.02*(1 + x**2)", "0.02 + 0.01*sin(y)**2", "0.005*x")

    def run(f, **kw):
        return lambda n, s, w: f(n_walkers=n, n_steps=s, seed=1, workers=w, **kw)

    return [
        ("sgd, paper landscape (built-in)", run(lambda **k: mcm.sgd(L, 0.01, 1.2, **k)), 1),
        ("langevin, quadratic, constant D (built-in)",
         run(lambda **k: mcm.langevin(Q, Dc, dt=0.01, radius=None, **k)), 1),
        ("langevin, expression OU landscape, constant D",
         run(lambda **k: mcm.langevin(OU, Dc, dt=0.01, radius=None, **k)), 1),
        ("langevin, expression OU landscape, expression noise",
         run(lambda **k: mcm.langevin(OU, De, dt=0.01, radius=None, **k)), 1),
        ("sgd, paper landscape as an expression",
         run(lambda **k: mcm.sgd(E, 0.01, 1.2, **k)), 1),
        ("sgd, paper as an expression, numpy fallback (1/8 of the steps)",
         run(lambda **k: mcm.sgd(E, 0.01, 1.2, backend="numpy", **k)), 8),
    ]


def measure(n_walkers, n_steps, repeat, workers):
    """Best (wall, CPU) rate of every row, alternating with the floor."""
    ceiling.kernel = _ceiling_kernel()
    ceiling(512, 20, 1)                               # compile
    rows = cases()
    for _, f, _ in rows:                              # compile / load the kernel caches
        f(256, 20, 1)
    best = {"RNG floor (numpy, 1 thread)": (0.0, 0.0)}
    for _ in range(repeat):
        for name, f, frac in [("ceiling (minimal kernel)", None, 1)] + rows:
            fl = rng_floor(n_walkers * n_steps)
            old = best["RNG floor (numpy, 1 thread)"]
            best["RNG floor (numpy, 1 thread)"] = (max(old[0], fl[0]), max(old[1], fl[1]))
            steps = max(10, n_steps // frac // 10 * 10)
            if f is None:
                r = ceiling(n_walkers, steps, workers)
            else:
                c0 = time.process_time()
                res = f(n_walkers, steps, workers)
                cpu = time.process_time() - c0
                ws = n_walkers * steps
                r = (res.throughput, ws / cpu)
            old = best.get(name, (0.0, 0.0))
            best[name] = (max(old[0], r[0]), max(old[1], r[1]))
    return best


def table(best, args, workers, load0, load1) -> str:
    fw, fc = best["RNG floor (numpy, 1 thread)"]
    lines = [f"{args.walkers} walkers × {args.steps} steps, `sample_every=10`, best of "
             f"{args.repeat}, {workers} worker threads on {os.cpu_count()} CPUs; load average "
             f"{load0:.2f} before, {load1:.2f} after; numpy {np.__version__}.", "",
             "| run | M walker-steps/s (wall) | × floor | M per CPU-second | × floor (CPU) |",
             "|---|---:|---:|---:|---:|"]
    for name, (w, c) in best.items():
        lines.append(f"| {name} | {w / 1e6:.1f} | {w / fw:.2f} | {c / 1e6:.1f} | "
                     f"{c / fc:.2f} |")
    p = best["sgd, paper landscape (built-in)"]
    e = best["sgd, paper landscape as an expression"]
    ce = best["ceiling (minimal kernel)"]
    lines += ["", f"Paper / ceiling: {p[0] / ce[0]:.2f} (wall), {p[1] / ce[1]:.2f} (CPU); "
              f"paper as an expression / built-in paper: {e[0] / p[0]:.2f} (wall), "
              f"{e[1] / p[1]:.2f} (CPU)."]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--walkers", type=int, default=16384)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--quick", action="store_true", help="4096 walkers x 1000 steps, print only")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = ap.parse_args(argv)
    if args.quick:
        args.walkers, args.steps = 4096, 1000
    workers = os.cpu_count() or 1
    load0 = os.getloadavg()[0]
    best = measure(args.walkers, args.steps, args.repeat, workers)
    text = table(best, args, workers, load0, os.getloadavg()[0])
    print(text)
    if not args.quick and replace_block(DOC, "throughput", text):
        print(f"\nupdated {DOC}")


if __name__ == "__main__":
    main()
