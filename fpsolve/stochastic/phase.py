"""Monte Carlo phase diagram of random-shift SGD (Yang–Tang–Tu Fig. 2, Figs. S2–S4).

Random-shift minibatch SGD (main text Eq. 1, 8; SM Eq. S1–S4)

.. math:: θ_{t+1} = θ_t − η\\,(∇L(θ_t) − H(θ_t) μ_t),\\qquad μ_t \\sim N(0, 2σ I),

on the paper's landscape L = ½ελ0x² + ½λ(x)y², λ = λ0 + λ1x² + λ2x⁴ with Fig. 2's
ε = 0.001, λ0 = 8, λ1 = −2, λ2 = 1 (:func:`fig2_landscape`), every walker started at
(1.5, 1.5).  Flatness F(x) = λ(x)^(−1/2); global minimum x* = 0, flattest solutions
x_F = ±1.

Observables of one (σ, η) grid point (``docs/phase_diagram.md`` gives the reasons)
----------------------------------------------------------------------------------
The paper defines x_ss as "the final steady-state solution", τ_s ≡ η⟨t_s⟩ with t_s
"the first passage time of reaching the solution x = x_ss", V_x ≡ ⟨x²⟩_ss − x_ss²,
V_y ≡ ⟨y²⟩_ss − y_ss² and phase III as "the system diverges".  It is silent on the
operational details, which are:

* **run**: every walker makes n = ⌈T/η⌉ steps (T in the paper's time unit τ = ηt, the
  same physical time at every η); the *window* is the last ``avg_fraction`` of them.
* **diverged**: |θ| > ``blowup`` or a non-finite state before the end of the run.
  Diverged walkers are left out of every other observable.
* **x_ss** = ⟨|x̄_w|⟩_w: x̄_w is walker w's time average of x over the window, the
  absolute value folds the two symmetric solutions ±x_ss (a walker settles on one
  side), the mean is over surviving walkers.  In phase I x̄_w → 0 (fluctuations
  average out), so x_ss is not biased by V_x as ⟨|x|⟩ would be.
* **F(x_ss)** = λ(x_ss)^(−1/2).
* **V_x** = ⟨x²⟩ − x_ss², **V_y** = ⟨y²⟩ − y_ss², with ⟨·⟩ the window and walker
  average and y_ss = ⟨ȳ_w⟩_w.
* **t_s** of a walker = the first step t with |x_t| ≤ x_ss + ``tol`` (walkers start
  above, |x0| = 1.5 > x_ss).  x_ss is known only at the end, so the kernel records the
  first-passage step to every level of a ladder ℓ_j = j·``level_step`` and t_s is read
  at the ladder level nearest to x_ss + tol.  A walker that never gets there is
  *censored* and counts with t_s = n (so τ_s is then a lower bound; the censored
  fraction is reported).  **τ_s** = η⟨t_s⟩_w.
* **phase**: III if the diverged fraction exceeds ``div_threshold``; else II if
  x_ss > ``x_threshold``; else I.

Reproducibility: the walkers of grid point (i, j) (η index i, σ index j) live in fixed
blocks of ``block_size``; block b draws from
``Generator(PCG64(SeedSequence(entropy, spawn_key=(*root_key, i, j, b))))``, the child
(i, j, b) of the root ``SeedSequence(seed)``.  Results are bit-identical for any
number of ``workers``.

>>> import fpsolve as fp
>>> g = fp.phase.run_grid([0.0, 0.2], [0.01], T=50.0, n_walkers=8, seed=1)
>>> g.x_ss.shape
(1, 2)
"""
from __future__ import annotations

from ._phase_common import FIG2, START, fig2_landscape
from ._phase_fit import ExponentFit, exponents, fit_exponents
from ._phase_grid import PhaseGrid, first_passage_steps, run_grid
from ._phase_theory import critical_sigma, divergence_sigma
from ._phase_traj import Trajectories, trajectories

__all__ = ["FIG2", "START", "fig2_landscape", "Trajectories", "trajectories", "PhaseGrid",
           "run_grid", "critical_sigma", "divergence_sigma", "ExponentFit", "fit_exponents",
           "exponents", "first_passage_steps"]
