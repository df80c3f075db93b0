"""Monte Carlo throughput: walker-steps per second per simulator and backend.

Each row is set against the "RNG floor" measured in the same run: the rate at which
numpy merely draws the two standard normals a step needs
(``Generator(PCG64).standard_normal(out=buf)``), with the same number of threads,
measured right next to it (best of ``--repeat`` alternating runs of each, so that both
see the same machine load).
The numba kernel draws its normals inline and should reach well over 50 % of it.

Usage::

    python bench/montecarlo.py             # default size, ~1 minute on 2 cores
    python bench/montecarlo.py --quick     # smaller, a few seconds
"""
from __future__ import annotations

import argparse
import os
import platform
import threading
import time

import numpy as np

import fpsolve as fp
from fpsolve.stochastic import montecarlo as mcm


def rng_floor(walker_steps: int, threads: int, buf_size: int = 1 << 15) -> float:
    """Walker-steps/s of drawing 2 normals per step with numpy, ``threads`` generators."""
    per_thread = 2 * walker_steps // threads
    calls = max(1, per_thread // buf_size)

    def work(seed, out):
        g = np.random.Generator(np.random.PCG64(seed))
        buf = np.empty(buf_size)
        for _ in range(calls):
            g.standard_normal(out=buf)

    ts = [threading.Thread(target=work, args=(i, None)) for i in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    return threads * calls * buf_size / 2 / dt


def cases(n_walkers, n_steps):
    L = fp.landscapes.paper()
    Q = fp.landscapes.quadratic([[1.0, 0.3], [0.3, 0.5]])
    E = fp.landscapes.expression(
        "0.5*eps*lam0*x**2 + 0.5*(lam0 + lam1*x**2 + lam2*x**4)*y**2",
        eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)
    kw = dict(n_walkers=n_walkers, n_steps=n_steps, seed=1)
    return [
        ("sgd, paper, cross-diffusion", "numba",
         lambda w: mcm.sgd(L, 0.01, 1.2, backend="numba", workers=w, **kw)),
        ("sgd, paper, no cross-diffusion", "numba",
         lambda w: mcm.sgd(L, 0.01, 1.2, cross_diffusion=False, backend="numba", workers=w, **kw)),
        ("langevin, paper, D = sgd(Δ_S)", "numba",
         lambda w: mcm.langevin(L, fp.diffusion.sgd(L, 0.012), dt=0.01, backend="numba",
                                workers=w, **kw)),
        ("langevin, paper, isotropic", "numba",
         lambda w: mcm.langevin(L, 0.05, dt=0.005, backend="numba", workers=w, **kw)),
        ("langevin, quadratic, constant D", "numba",
         lambda w: mcm.langevin(Q, [[0.05, -0.02], [-0.02, 0.02]], dt=0.01, radius=None,
                                backend="numba", workers=w, **kw)),
        ("sgd, paper, cross-diffusion", "numpy",
         lambda w: mcm.sgd(L, 0.01, 1.2, backend="numpy", workers=w, **kw)),
        ("langevin, quadratic, constant D", "numpy",
         lambda w: mcm.langevin(Q, [[0.05, -0.02], [-0.02, 0.02]], dt=0.01, radius=None,
                                backend="numpy", workers=w, **kw)),
        ("sgd, expression landscape (generic)", "numpy",      # slow: an eighth of the steps
         lambda w: mcm.sgd(E, 0.01, 1.2, backend="numpy", workers=w,
                           **{**kw, "n_steps": max(10, n_steps // 80 * 10)})),
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--walkers", type=int, default=16384)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--quick", action="store_true", help="4096 walkers x 1000 steps")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = ap.parse_args(argv)
    if args.quick:
        args.walkers, args.steps = 4096, 1000
    ncpu = os.cpu_count() or 1
    thread_counts = sorted({1, min(2, ncpu)})
    ws = args.walkers * args.steps
    print(f"# fpsolve Monte Carlo benchmark: {args.walkers} walkers x {args.steps} steps, "
          f"sample_every=10, {platform.processor() or platform.machine()}, {ncpu} CPUs, "
          f"numpy {np.__version__}, numba available: {mcm.numba_available()}, "
          f"load average before: {os.getloadavg()[0]:.2f}")
    print()
    print("| simulator | backend | threads | M walker-steps/s | RNG floor (M/s) | % of floor |")
    print("|---|---|---|---|---|---|")
    for name, backend, run in cases(args.walkers, args.steps):
        if backend == "numba" and not mcm.numba_available():
            continue
        if backend == "numba":
            run(1)                                      # compile / load the kernel cache
        for t in thread_counts:
            # alternate simulation and floor so that both see the same machine load
            best, floor = 0.0, 0.0
            for _ in range(args.repeat):
                best = max(best, run(t).throughput)
                floor = max(floor, rng_floor(ws, t))
            print(f"| {name} | {backend} | {t} | {best / 1e6:.1f} | {floor / 1e6:.1f} | "
                  f"{100 * best / floor:.0f} % |", flush=True)

if __name__ == "__main__":
    main()
