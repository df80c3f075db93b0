"""Source of the numba walker kernel of :mod:`fpsolve.stochastic.montecarlo`.

One kernel, ``run_block``, advances one block of walkers with that block's own
``np.random.Generator(PCG64)`` through the whole run.  It is walker-major inside a chunk
of ``k`` steps: walkers go in groups of G lanes (``Compiled.lanes``, default 4) whose
states stay in registers for ``k`` steps; the lanes step in lockstep so that their
dependency chains (latency-bound, e.g. a square root) overlap, and the next group's
normals are drawn, in stream order, while a group steps.  The accumulators are sampled
at the end of every chunk, lane by lane in walker order.  The generator's PCG64
state enters as ``st`` (hi, lo, inc hi, inc lo; see ``_mc_blocks.pcg_state``) and the
kernel runs numpy's PCG64 and ziggurat itself (:data:`RNG`): the same numbers as
``Generator.standard_normal`` / ``random``, without a call per draw.

The kernel is specialised per model: :data:`TEMPLATE` is filled with a *prologue*
(coefficients read from the arrays ``lp`` — landscape — and ``bm`` — noise) and, once per
lane with its variables suffixed (:func:`lane_code`), a *step* that sets ``gx, gy`` (∇L)
and ``nx, ny`` (B z) from ``x, y, z1, z2``;
:mod:`._mc_codegen` writes the module, caches it and compiles it.  The built-in models
use the fixed texts below; expression models get code printed by sympy.

The kernel is the compiled twin of ``_mc_numpy.numpy_task``: both draw the normals in
the same order (per chunk, walker by walker, step by step, z1 then z2 — also for walkers
that are no longer alive, so the stream never depends on the population), evaluate the
step with the same floating-point operations in the same order (built-in models), add
to the float accumulators in walker order and draw Fleming–Viot donors the same way.

Built-in coefficients (kept in sync with ``_mc_models``):

* paper family: ``lp = (ε λ0, λ0, λ1, λ2, 2 λ1, 4 λ2, 12 λ2, 0)``;
* quadratic: ``lp = (A00, A01, A11, c0, c1, 0, 0, 0)``;
* constant noise factor ``bm = (B00, B01, B10, B11)``; B = H(θ) (SGD with
  cross-diffusion) or B = diag(√(H²)11, √(H²)22) (without) from the landscape's H.

Step: θ ← (θ − a ∇L(θ)) + c B(θ) z.
"""


#: numpy's PCG64 (XSL-RR 128/64) and its ziggurat ``standard_normal`` / ``random``, inlined
#: into the kernel: the same numbers as ``Generator(PCG64).standard_normal()`` bit for bit
#: (numba's own port of the ziggurat, with its tables), but the 128-bit state stays in
#: registers instead of behind an indirect call that spills every live float per draw.
RNG = """
PCG_MUL_HI = np.uint64(2549297995355413924)
PCG_MUL_LO = np.uint64(4865540595714422341)
M52 = np.uint64(0x000FFFFFFFFFFFFF)
M8 = np.uint64(0xFF)
U1 = np.uint64(1)
U8 = np.uint64(8)
U11 = np.uint64(11)
U58 = np.uint64(58)
U63 = np.uint64(63)
U64 = np.uint64(64)


@intrinsic
def mul128(typingctx, a, b):  # pragma: no cover
    # (low, high) 64-bit halves of the 128-bit product: one mulx
    sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64)

    def codegen(context, builder, sig, args):
        i64, i128 = ir.IntType(64), ir.IntType(128)
        p = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
        halves = [builder.trunc(p, i64), builder.trunc(builder.lshr(p, ir.Constant(i128, 64)), i64)]
        return context.make_tuple(builder, sig.return_type, halves)
    return sig, codegen


@njit(inline="always")
def next64(hi, lo, ihi, ilo):  # pragma: no cover
    # state <- state * MUL + inc (mod 2**128); output XSL-RR of the new state
    plo, carry = mul128(lo, PCG_MUL_LO)
    phi = hi * PCG_MUL_LO + lo * PCG_MUL_HI + carry
    nlo = plo + ilo
    nhi = phi + ihi + np.uint64(nlo < plo)
    rot = nhi >> U58
    v = nhi ^ nlo
    return (v >> rot) | (v << ((U64 - rot) & U63)), nhi, nlo


@njit(inline="always")
def next_double(hi, lo, ihi, ilo):  # pragma: no cover
    r, hi, lo = next64(hi, lo, ihi, ilo)
    return np.float64(r >> U11) * (1.0 / 9007199254740992.0), hi, lo


@njit(inline="always")
def normal(hi, lo, ihi, ilo):  # pragma: no cover
    while True:
        r, hi, lo = next64(hi, lo, ihi, ilo)
        idx = r & M8
        r >>= U8
        rabs = (r >> U1) & M52
        x = rabs * wi_double[idx]
        if r & U1:
            x = -x
        if rabs < ki_double[idx]:
            return x, hi, lo
        if idx == 0:
            while True:
                u, hi, lo = next_double(hi, lo, ihi, ilo)
                xx = -ziggurat_nor_inv_r * np.log1p(-u)
                u, hi, lo = next_double(hi, lo, ihi, ilo)
                yy = -np.log1p(-u)
                if yy + yy > xx * xx:
                    if (rabs >> U8) & U1:
                        return -(ziggurat_nor_r + xx), hi, lo
                    return ziggurat_nor_r + xx, hi, lo
        else:
            u, hi, lo = next_double(hi, lo, ihi, ilo)
            if ((fi_double[idx - 1] - fi_double[idx]) * u + fi_double[idx]) < np.exp(-0.5 * x * x):
                return x, hi, lo


@njit(nogil=True, cache=True)
def fill_normal(st, out):  # pragma: no cover
    hi = st[0]
    lo = st[1]
    for i in range(out.shape[0]):
        out[i], hi, lo = normal(hi, lo, st[2], st[3])
    st[0] = hi
    st[1] = lo
"""

HEADER = """import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic
from numba.np.random._constants import (fi_double, ki_double, wi_double, ziggurat_nor_inv_r,
                                        ziggurat_nor_r)

ALIVE, EXITED, DIVERGED, REMOVED = 0, 1, 2, 3
# counters layout: exits during burn-in, exits, diverged, alive steps during burn-in,
# alive steps while accumulating, walkers removed (exited and not re-inserted)
C_EXITS_BURN, C_EXITS, C_DIVERGED, C_STEPS_BURN, C_STEPS, C_REMOVED = range(6)
""" + RNG + """

"""

#: run_block with ``{prologue}`` (4-space indent), ``{lanes}`` (G) and the per-lane code
#: ``{lane_init}``, ``{lane_step}`` and ``{lane_post}`` (:func:`lane_code`)
TEMPLATE = HEADER + """@njit(nogil=True, cache=True)
def run_block(st, X, Y, status, lp, bm, a, c, R2, blow2, absorbing, reinsert,
              k, n_chunks, n_burn_chunks, n_batches, grid, mgrid, shift,
              hist, margx, margy, cur, mom, counters, rec, rec_every):  # pragma: no cover
    hi = st[0]                  # PCG64 state (st[:2]) and increment (st[2:])
    lo = st[1]
    ihi = st[2]
    ilo = st[3]
{prologue}
    gx0 = grid[0]
    gsx = grid[1]
    gy0 = grid[2]
    gsy = grid[3]
    gnx = hist.shape[0]
    gny = hist.shape[1]
    mx0 = mgrid[0]
    msx = mgrid[1]
    my0 = mgrid[2]
    msy = mgrid[3]
    mnx = margx.shape[0]
    mny = margy.shape[0]
    sx0 = shift[0]
    sy0 = shift[1]
    nb = X.shape[0]
    nrec = rec.shape[1]
    n_acc = n_chunks - n_burn_chunks
    alive_idx = np.empty(nb, np.int64)
    G = {lanes}
    zb = np.empty((2, G * 2 * k))

    for ch in range(n_chunks):
        acc = ch >= n_burn_chunks
        batch = 0
        if acc:
            batch = ((ch - n_burn_chunks) * n_batches) // n_acc
        # the batch's moment sums and the step counter live in registers during the chunk
        # (same additions in the same order as in memory: bit-identical)
        m0 = mom[batch, 0]
        m1 = mom[batch, 1]
        m2 = mom[batch, 2]
        m3 = mom[batch, 3]
        m4 = mom[batch, 4]
        m5 = mom[batch, 5]
        n_st = 0
        # Walkers go in groups of G lanes that step in lockstep (independent dependency
        # chains overlap).  Every walker takes 2k normals of the stream per chunk (also a
        # dead or exiting one), walker by walker, step by step, z1 then z2; the group's
        # normals are in zc, and the next group's are drawn into zn while this one steps.
        for q in range(min(G, nb) * 2 * k):
            zb[0, q], hi, lo = normal(hi, lo, ihi, ilo)
        cb = 0
        for w0 in range(0, nb, G):
            nd = 2 * max(0, min(G, nb - w0 - G))
            zc = zb[cb]
            zn = zb[1 - cb]
            cb = 1 - cb
{lane_init}
            for s in range(k):
                for q in range(nd):
                    zn[s * nd + q], hi, lo = normal(hi, lo, ihi, ilo)
{lane_step}
{lane_post}
        if acc:
            counters[C_STEPS] += n_st
            mom[batch, 0] = m0
            mom[batch, 1] = m1
            mom[batch, 2] = m2
            mom[batch, 3] = m3
            mom[batch, 4] = m4
            mom[batch, 5] = m5
        else:
            counters[C_STEPS_BURN] += n_st
        if absorbing:
            n_alive = 0
            for w in range(nb):
                if status[w] == ALIVE:
                    alive_idx[n_alive] = w
                    n_alive += 1
            for w in range(nb):
                if status[w] == EXITED:
                    if reinsert and n_alive > 0:   # Fleming–Viot: clone a random survivor
                        u01, hi, lo = next_double(hi, lo, ihi, ilo)
                        j = int(u01 * n_alive)
                        if j >= n_alive:
                            j = n_alive - 1
                        d = alive_idx[j]
                        X[w] = X[d]
                        Y[w] = Y[d]
                        status[w] = ALIVE
                    else:
                        status[w] = REMOVED
                        counters[C_REMOVED] += 1
        if rec_every > 0 and (ch + 1) % rec_every == 0:
            r = (ch + 1) // rec_every
            for w in range(nrec):
                if status[w] == ALIVE:
                    rec[r, w, 0] = X[w]
                    rec[r, w, 1] = Y[w]
                else:
                    rec[r, w, 0] = np.nan
                    rec[r, w, 1] = np.nan
    st[0] = hi
    st[1] = lo
"""

#: per-lane code: ``__L`` becomes the lane suffix ``_0``, ``_1``, ..., ``__N`` the lane number
LANE_INIT = """w__L = w0 + __N
live__L = w__L < nb and status[w__L] == ALIVE
on__L = live__L
x__L = 0.0
y__L = 0.0
if live__L:
    x__L = X[w__L]
    y__L = Y[w__L]
xp__L = x__L
yp__L = y__L
s__L = k                # steps taken: k unless the walker leaves
out__L = False
o__L = __N * 2 * k"""

#: one step of lane __L (the model's step, renamed, goes at ``{step}``)
LANE_STEP = """if on__L:
    z1__L = zc[o__L + 2 * s]
    z2__L = zc[o__L + 2 * s + 1]
    xp__L = x__L
    yp__L = y__L
{step}
    x__L = (x__L - a * gx__L) + c * nx__L
    y__L = (y__L - a * gy__L) + c * ny__L
    if not (x__L * x__L + y__L * y__L <= R2):   # also catches NaN
        on__L = False
        out__L = True
        s__L = s + 1"""

#: exit bookkeeping and statistics of lane __L, in walker order
LANE_POST = """if live__L:
    w = w__L
    x = x__L
    y = y__L
    xp = xp__L
    yp = yp__L
    n_st += s__L
    if out__L:
        if absorbing and math.isfinite(x) and math.isfinite(y) and x * x + y * y <= blow2:
            status[w] = EXITED
            if acc:
                counters[C_EXITS] += 1
            else:
                counters[C_EXITS_BURN] += 1
        else:
            status[w] = DIVERGED
            counters[C_DIVERGED] += 1
    X[w] = x
    Y[w] = y
    if acc:
        # current: displacement of the chunk's last step, binned at its midpoint
        if s__L == k and status[w] != DIVERGED:
            u = ((xp + x) * 0.5 - gx0) * gsx
            v = ((yp + y) * 0.5 - gy0) * gsy
            if u >= 0.0 and u < gnx and v >= 0.0 and v < gny:
                i = int(u)
                j = int(v)
                cur[0, i, j] += x - xp
                cur[1, i, j] += y - yp
        if status[w] == ALIVE:
            u = (x - gx0) * gsx
            v = (y - gy0) * gsy
            if u >= 0.0 and u < gnx and v >= 0.0 and v < gny:
                hist[int(u), int(v)] += 1
            u = (x - mx0) * msx
            if u >= 0.0 and u < mnx:
                margx[int(u)] += 1
            v = (y - my0) * msy
            if v >= 0.0 and v < mny:
                margy[int(v)] += 1
            dx = x - sx0
            dy = y - sy0
            m0 += 1.0
            m1 += dx
            m2 += dy
            m3 += dx * dx
            m4 += dx * dy
            m5 += dy * dy"""


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + ln if ln else ln for ln in text.split("\n"))


def lane_code(step: tuple, lanes: int, rename) -> dict:
    """``lane_init``, ``lane_step``, ``lane_post`` of ``lanes`` lanes for TEMPLATE.

    ``rename(lines, suffix)`` gives the model's step lines with its variables suffixed."""
    init, stp, post = [], [], []
    for n in range(lanes):
        sfx = f"_{n}"
        body = _indent("\n".join(rename(step, sfx)), 4)
        init.append(LANE_INIT.replace("__L", sfx).replace("__N", str(n)))
        stp.append(LANE_STEP.replace("{step}", body).replace("__L", sfx))
        post.append(LANE_POST.replace("__L", sfx))
    return {"lane_init": _indent("\n".join(init), 12), "lane_step": _indent("\n".join(stp), 16),
            "lane_post": _indent("\n".join(post), 12)}


PAPER_PROLOGUE = ("p0 = lp[0]", "p1 = lp[1]", "p2 = lp[2]", "p3 = lp[3]", "p4 = lp[4]",
                  "p5 = lp[5]", "p6 = lp[6]")
QUADRATIC_PROLOGUE = ("p0 = lp[0]", "p1 = lp[1]", "p2 = lp[2]", "p3 = lp[3]", "p4 = lp[4]")
CONST_PROLOGUE = ("b00 = bm[0]", "b01 = bm[1]", "b10 = bm[2]", "b11 = bm[3]")

#: the paper family: ∇L, and H = [[hxx, hxy], [hxy, hyy]] when the noise needs it
PAPER_GRADIENT = ("x2 = x * x", "y2 = y * y", "lam = (p1 + p2 * x2) + p3 * (x2 * x2)",
                  "dlam = p4 * x + p5 * (x * x2)", "gx = p0 * x + 0.5 * (dlam * y2)",
                  "gy = lam * y")
PAPER_HESSIAN = ("hxx = p0 + 0.5 * ((p4 + p6 * x2) * y2)", "hxy = dlam * y", "hyy = lam")
QUADRATIC_GRADIENT = ("u = x - p3", "v = y - p4", "gx = p0 * u + p1 * v", "gy = p1 * u + p2 * v")

NOISE_CONST = ("nx = b00 * z1 + b01 * z2", "ny = b10 * z1 + b11 * z2")
NOISE_HESS = ("nx = hxx * z1 + hxy * z2", "ny = hxy * z1 + hyy * z2")
NOISE_HESS_DIAG = ("nx = math.sqrt(hxx * hxx + hxy * hxy) * z1",
                   "ny = math.sqrt(hxy * hxy + hyy * hyy) * z2")
#: B = √D of a diagonal D (the closed-form root below reduces to it when d12 = 0)
NOISE_SQRT_DIAG = ("nx = math.sqrt(max(d11, 0.0)) * z1", "ny = math.sqrt(max(d22, 0.0)) * z2")
NOISE_SQRT_ISO = ("rq = math.sqrt(max(d11, 0.0))", "nx = rq * z1", "ny = rq * z2")
#: B = √D (closed-form symmetric root of [[d11, d12], [d12, d22]], as diffusion.sqrt_psd)
NOISE_SQRT_PSD = ("rs = math.sqrt(max(d11 * d22 - d12 * d12, 0.0))",
                  "rt = math.sqrt(max(d11 + d22 + 2.0 * rs, 0.0))",
                  "ri = 1.0 / rt if rt > 0.0 else 0.0",
                  "nx = ((d11 + rs) * ri) * z1 + (d12 * ri) * z2",
                  "ny = (d12 * ri) * z1 + ((d22 + rs) * ri) * z2")
