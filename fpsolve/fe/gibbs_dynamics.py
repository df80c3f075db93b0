"""The time-dependent problem of a Gibbs-weighted :class:`~fpsolve.fe.solver.Problem`.

A problem in detailed balance that the solver discretises with the Gibbs weight
(:mod:`~fpsolve.fe.gibbs`, P = w·u) is evolved in u as well, on the same weighted pencil:

    M_w du/dt = −A_w u,    (M_w)_ij = ∫ w φ_j φ_i,   (A_w)_ij = ∫ w (δ∇φ_j + β̃φ_j)·∇φ_i,

the weak form of ∂P/∂t = −∇·J with J = −δ w ∇u (tested with v = φ_i: the same sign and
normalisation as the plain M dP/dt = −A P of :mod:`.dynamics`).  Its stationary state is
the solver's (reflecting: u = const; absorbing: the quasi-stationary u decays at the
pencil's μ).  On the mesh the adaptive loop made for u — coarse where P is exponentially
small — the plain semi-discretisation relaxes to a different state (radial OU, P3, L1
distance 3.5e-4 at δ = 0.02, 1.1e-3 at δ = 0.01, with an escape rate 1e5× too large;
docs/dynamics.md).

The weighted rows span e^(−ψ), so the stepper works on the symmetrically scaled pencil
S A_w S, S M_w S (S = diag(A_w)^(−1/2), :func:`~.gibbs.symmetric_scaling`, as the
stationary solve), u = S x, and its error is measured on the nodal density w·u.

The initial density is projected in the weighted L2 norm: M_w u₀ = ∫ P₀ φ_i, which never
divides by w.  Where P₀/w varies faster than the mesh (P₀ much wider than the Gibbs
density, on a mesh coarse where w is small), w·u₀ is not P₀: the relative L1 error of
the represented P₀ is measured at a finer quadrature (:data:`P0_WARN`, :data:`P0_REFUSE`).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .assembly import make_basis
from .gibbs import density_at_quadrature, nodal_density, symmetric_scaling

__all__ = ["WeightedSystem", "P0_WARN", "P0_REFUSE", "OUTFLOW_BARRIER"]

#: above this relative L1 error of the represented initial density (∫|P₀ − w·u₀| / ∫|P₀|)
#: the evolution is flagged untrusted, with a warning
P0_WARN = 1e-3
#: above this the initial density cannot be represented on the mesh: an error
P0_REFUSE = 0.1
#: an absorbing transient from a projected p0 whose boundary lies more than this many nats
#: of ψ above the minimum has its outflow rates flagged: radial OU on the Gibbs-adapted mesh
#: (tol 1e-6) from N(0, 2δI) and N(0, δ/2·I): 50 and 67 nats within ~2× of the free-space
#: estimate from t = 1 and to 0.5 % from t = 5; 80 nats 1e5·μ at t = 2 (estimate 4·μ);
#: 100 nats 28·μ at t = 20 and negative rates (docs/dynamics.md)
OUTFLOW_BARRIER = 70.0


class WeightedSystem:
    """The weighted pencil of a Gibbs-weighted problem at one strength, scaled for the
    time stepper.

    Parameters
    ----------
    problem : fpsolve.Problem
        A problem with ``problem.gibbs`` true.
    diffusion : DiffusionModel
        The diffusion at the strength evolved (the problem's own, or re-assembled: the
        weight depends on δ).

    Attributes
    ----------
    A, M : sparse matrices
        The unscaled weighted operator and mass of u (mass, outflow).
    As, Ms : sparse matrices
        S A S and S M S, the stepper's pencil (x = S⁻¹u).
    scale : ndarray
        The diagonal of S.
    weight : GibbsWeight
        w.
    nodal_weight : ndarray
        w at the dofs (P = w·u there).
    """

    def __init__(self, problem, diffusion):
        op = problem.operator
        if float(diffusion.strength) != problem.diffusion.strength:
            op = problem._assemble(diffusion)
        self.mesh, self.order, self.intorder = problem.mesh, problem.order, problem.intorder
        self.basis, self.weight = op.basis, op.gibbs
        self.A, self.M = op.A_fixed.tocsr(), op.M.tocsr()
        self.scale = symmetric_scaling(self.A)
        S = sp.diags(self.scale)
        self.As, self.Ms = (S @ self.A @ S).tocsr(), (S @ self.M @ S).tocsr()
        self.nodal_weight = self.weight(*self.basis.doflocs)

    def error_norm(self, dofs):
        """The stepper's error measure on ``dofs``: max |w·s·err| / max |w·s·x|, the error of
        the nodal density w·u relative to its largest value (the plain operator's measure).

        A componentwise relative measure on u as well (which sees the outflow, where w is
        tiny) took 60× the steps at δ = 0.005 and did not change the transient's outflow at
        t = 5 or 10 (the mesh, adapted for the quasi-stationary u, limits it there)."""
        ws = (self.nodal_weight * self.scale)[dofs]

        def norm(x, err):
            scale = np.max(np.abs(ws * x))
            return float(np.max(np.abs(ws * err)) / scale) if scale > 0 else 0.0

        return norm

    def density(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(w·u at the dofs, w·u at the quadrature points, w exact there)."""
        return (nodal_density(self.basis, self.weight, u),
                density_at_quadrature(self.basis, self.weight, u))

    def project(self, f, b, dofs, factorise) -> tuple[np.ndarray, float]:
        """The weighted L2 projection u₀ of the initial density ``f`` (free on ``dofs``, 0
        elsewhere), normalised to ∫w·u₀ = 1, and the relative L1 error of w·u₀ against f.

        Parameters
        ----------
        f : callable
            P₀(x, y), vectorised.
        b : ndarray
            Its load vector ∫ P₀ φ_i dA: M_w u₀ = b never divides by w.
        dofs : ndarray
            The free dofs (the interior ones when absorbing).
        factorise : callable
            ``factorise(K)`` → a factorisation of the sparse K with ``.solve``.

        Returns
        -------
        (ndarray, float)
            u₀ and ∫|P₀ − w·u₀| / ∫|P₀| (before normalising).
        """
        s = self.scale[dofs]
        u = np.zeros(self.basis.N)
        # scaled as the stationary solve: M_w's rows span e^(−ψ)
        u[dofs] = s * factorise(self.Ms[dofs][:, dofs].tocsc()).solve(s * b[dofs])
        error = self._represented_error(f, u)
        mass = (self.M @ u).sum()
        if not mass > 0:
            raise ValueError(f"p0: its projection has no positive mass ({mass:.3g}) on this "
                             "mesh")
        return u / mass, error

    def _represented_error(self, f, u) -> float:
        """∫|P₀ − w·u| / ∫|P₀| at a quadrature two orders finer than the assembly's."""
        order = self.order
        intorder = (2 * order + 1 if self.intorder is None else self.intorder) + 2
        fine = make_basis(self.mesh, order, intorder)
        x, y = (np.asarray(c) for c in fine.global_coordinates())
        fq = np.asarray(f(x, y), dtype=float)
        dx = np.asarray(fine.dx)
        total = np.sum(np.abs(fq) * dx)
        diff = np.sum(np.abs(fq - density_at_quadrature(fine, self.weight, u)) * dx)
        return float(diff / total) if total > 0 else float("inf")
