"""Error estimates of the relaxation spectrum against exact rates (docs/dynamics.md).

Reflecting radial OU L = |x|²/2, D = I/4 in the disk of radius 4 (rates 0, 1, 1, 2, 2, 2
to ~e^(−32)) and the absorbing radial OU escape rate μ (Kummer root) on coarse meshes:
the true error of each rate, its estimate (P_k against P_{k+1}) and their ratio.
Run: ``python bench/spectrum_estimate.py`` (prints a markdown table, a few seconds).
"""
import os
import warnings

import numpy as np

import fpsolve as fp
from fpsolve.theory.exact import radial_ou_escape_rate

EXACT = np.array([0.0, 1.0, 1.0, 2.0, 2.0, 2.0])


def _spec(order, h, boundary, delta, R, k, weighting="auto"):
    prob = fp.Problem(fp.landscapes.quadratic(np.eye(2)), fp.diffusion.isotropic(delta),
                      fp.disk_mesh(R, h), boundary=boundary, order=order, weighting=weighting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prob, prob.spectrum(k)


def main():
    print("| case | dofs | rate | FE | true error | estimate | estimate / error | flagged |")
    print("|---|---|---|---|---|---|---|---|")
    for order, h in [(1, 1.0), (1, 0.8), (2, 0.8), (3, 1.0), (3, 0.5)]:
        prob, spec = _spec(order, h, "reflecting", 0.25, 4.0, 6)
        err = np.abs(spec.rates.real - EXACT)
        err[1:] /= EXACT[1:]
        for i in range(1, 6):
            e, est = err[i], spec.error_estimate[i]
            print(f"| reflecting P{order} h = {h} | {prob.dofs} | λ{i + 1} | "
                  f"{spec.rates[i].real:.5f} | {e:.1e} | {est:.1e} | {est / e:.2f} | "
                  f"{'yes' if est > 0.1 else ''} |")
    for order, h, delta, w in [(1, 0.15, 0.1, "none"), (2, 0.2, 0.1, "none"),
                               (2, 0.1, 0.05, "gibbs"), (3, 0.1, 0.02, "none")]:
        prob, spec = _spec(order, h, "absorbing", delta, 1.0, 3, w)
        mu = radial_ou_escape_rate(delta)
        e, est = abs(spec.rates[0].real - mu) / mu, spec.error_estimate[0]
        print(f"| absorbing δ = {delta}, P{order} h = {h} ({w}) | {prob.dofs} | μ | "
              f"{spec.rates[0].real:.5g} | {e:.1e} | {est:.1e} | {est / e:.2f} | "
              f"{'yes' if not est <= 0.1 else ''} |")
    print(f"\n(load average {', '.join(f'{x:.1f}' for x in os.getloadavg())})")


if __name__ == "__main__":
    main()
