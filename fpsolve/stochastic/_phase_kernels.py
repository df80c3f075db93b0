"""numba kernel of :mod:`fpsolve.stochastic.phase` (imported lazily; numba is needed for phase runs).

:func:`run_block` advances one block of walkers of one (σ, η) grid point through the
whole run with that block's own ``np.random.Generator``.  It is walker-major over the
*entire* run: walkers are independent (no re-insertion, no population coupling), so
one walker's state stays in registers from the first step to the last and everything
the phase diagram needs is accumulated on the fly:

* the first step at which |x| ≤ ℓ_j for every level ℓ_j = j·dl of a fixed ladder
  (``hit``; the first-passage time to x_ss + tol is read off this ladder afterwards,
  when x_ss — an ensemble quantity — is known);
* window sums over the last part of the run (``acc``, columns ``A_*``);
* the step at which the walker diverged (``t_end``; ``n_steps`` if it did not).

Normals are drawn walker by walker, step by step, z1 then z2; a walker that diverges
stops drawing.  The stream of a block therefore depends only on its seed, never on the
thread that runs it.  With σ = 0 (plain gradient descent) nothing is drawn.

Step (random-shift SGD on L = ½ελ0x² + ½λ(x)y², λ = λ0 + λ1x² + λ2x⁴; Yang–Tang–Tu
Eq. 1, 8, S3):  θ ← θ − η∇L(θ) + c H(θ) z,  c = η√(2σ),  z ~ N(0, I),
which is θ − η(∇L − Hμ) with μ ~ N(0, 2σI).
"""
from __future__ import annotations

from numba import njit

ALIVE, DIVERGED = 0, 1
# window-sum columns: Σx (first half), Σx (second half), Σx², Σy, Σy², Σλ, Σλ², Σλ'², Σ|x|
A_X1, A_X2, A_XX, A_Y, A_YY, A_LAM, A_LAM2, A_DLAM2, A_ABSX = range(9)
N_ACC = 9

@njit(nogil=True, cache=True)
def run_block(rng, lp, eta, c, x0, y0, n_steps, avg_start, blow2, dl, hit, acc, status,
              t_end, rec, rec_every):  # pragma: no cover - compiled
    """Advance ``hit.shape[0]`` walkers from (x0, y0) for ``n_steps`` steps.

    Parameters
    ----------
    rng : numpy.random.Generator
        The block's generator.
    lp : float64[4]
        (ελ0, λ0, λ1, λ2).
    eta, c : float
        Learning rate and noise scale η√(2σ) (0: no draws).
    x0, y0 : float
        Start of every walker.
    n_steps, avg_start : int
        Run length; states θ_t with avg_start ≤ t < n_steps enter the window sums
        (first half: t < avg_start + (n_steps − avg_start) // 2).
    blow2 : float
        Squared divergence radius; |θ|² > blow2 or a non-finite state ends the walker.
    dl : float
        Level spacing of the first-passage ladder.
    hit : int32[nb, n_levels]
        Filled with −1 by the caller; hit[w, j] becomes the first t with |x_t| ≤ j·dl.
    acc : float64[nb, N_ACC]
        Zeroed by the caller; window sums.
    status : int8[nb], t_end : int64[nb]
        Outputs.
    rec : float64[n_frames, n_rec, 2]
        Positions every ``rec_every`` steps of the first n_rec walkers (frame 0 is set
        by the caller); untouched when ``rec_every`` is 0.
    """
    elam0 = lp[0]
    lam0 = lp[1]
    lam1 = lp[2]
    lam2 = lp[3]
    two1 = 2.0 * lam1
    four2 = 4.0 * lam2
    twelve2 = 12.0 * lam2
    nb = hit.shape[0]
    nlev = hit.shape[1]
    nrec = rec.shape[1]
    half = avg_start + (n_steps - avg_start) // 2
    noisy = c > 0.0
    for w in range(nb):
        x = x0
        y = y0
        ax = abs(x)
        jn = nlev - 1                       # highest level not yet reached
        while jn >= 0 and ax <= jn * dl:
            hit[w, jn] = 0
            jn -= 1
        sx1 = 0.0
        sx2 = 0.0
        sxx = 0.0
        sy = 0.0
        syy = 0.0
        sl = 0.0
        sll = 0.0
        sdd = 0.0
        sax = 0.0
        st = ALIVE
        te = n_steps
        recw = rec_every > 0 and w < nrec
        for t in range(n_steps):
            x2 = x * x
            lam = (lam0 + lam1 * x2) + lam2 * (x2 * x2)
            dlam = x * (two1 + four2 * x2)
            if t >= avg_start:              # statistics of the state θ_t
                if t < half:
                    sx1 += x
                else:
                    sx2 += x
                sxx += x2
                sy += y
                syy += y * y
                sl += lam
                sll += lam * lam
                sdd += dlam * dlam
                sax += ax
            y2 = y * y
            xn = x - eta * (elam0 * x + 0.5 * (dlam * y2))
            yn = y - eta * (lam * y)
            if noisy:
                z1 = rng.standard_normal()
                z2 = rng.standard_normal()
                hxx = elam0 + 0.5 * ((two1 + twelve2 * x2) * y2)
                hxy = dlam * y
                xn += c * (hxx * z1 + hxy * z2)
                yn += c * (hxy * z1 + lam * z2)
            x = xn
            y = yn
            if not (x * x + y * y <= blow2):   # also catches NaN and inf
                st = DIVERGED
                te = t + 1
                break
            ax = abs(x)
            if ax <= jn * dl:               # jn = −1 makes the right side negative
                while jn >= 0 and ax <= jn * dl:
                    hit[w, jn] = t + 1
                    jn -= 1
            if recw and (t + 1) % rec_every == 0:
                r = (t + 1) // rec_every
                rec[r, w, 0] = x
                rec[r, w, 1] = y
        status[w] = st
        t_end[w] = te
        acc[w, 0] = sx1
        acc[w, 1] = sx2
        acc[w, 2] = sxx
        acc[w, 3] = sy
        acc[w, 4] = syy
        acc[w, 5] = sl
        acc[w, 6] = sll
        acc[w, 7] = sdd
        acc[w, 8] = sax
