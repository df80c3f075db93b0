"""Resource guard: estimate the dofs and the peak memory of a solve before doing it.

A mesh size typo (``h = 1e-5``) must not end in the operating system killing the
process after minutes of meshing.  The estimates here are cheap (no mesh is built):

* vertices of :func:`~fpsolve.fe.mesh.disk_mesh` from the disk area and the
  hexagonal lattice density 2/(√3 h²), plus the boundary ring, plus the band
  refinement (each level quadruples the density in the band);
* dofs of P1–P3 from vertices, edges (3V − B − 3) and triangles (2V − B − 2);
* peak resident memory above the process's size before the request: a fixed part plus,
  per dof, the largest measured peak of each part (assembly + sparse LU + error estimate
  including the small-noise μ weight; the P_{k+1} duals on graded meshes; the flux
  post-processing; a study's renderer and forked estimate), times :data:`SAFETY`.
  ``bench/budget.py`` measures them and prints prediction against measurement
  (docs/budget.md).

:func:`check` compares a dof count with a ``max_dofs`` budget, whose default is the
largest problem whose estimated peak memory fits in a fraction of the available
memory (``MemAvailable`` of ``/proc/meminfo``, capped by a cgroup limit), and raises
:class:`BudgetError` otherwise.  The adaptive solver calls it before each level;
:func:`estimate_memory` and :func:`fits` decide whether a study forks a child for an
error estimate.
"""
from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["BudgetError", "MIN_DOFS", "BYTES_PER_DOF", "available_memory", "disk_vertices",
           "dofs_from_counts", "mesh_dofs", "estimate_dofs", "peak_memory",
           "estimate_memory", "fits",
           "default_max_dofs", "check_max_dofs", "check", "check_disk", "check_mesh_build",
           "parallel_workers", "format_bytes"]

#: The smallest ``max_dofs`` accepted (the coarsest disk mesh has ~20 vertices).
MIN_DOFS = 100
# Memory model (bench/budget.py measures it, docs/budget.md records prediction against
# measurement): the peak resident memory of a request above the process's resident size
# before it, planned as SAFETY × (BASE_BYTES + dofs × bytes per dof), the bytes per dof
# being the largest measured per-dof peak of each part, by element order:
#: assembly + sparse LU + error estimate on a quasi-uniform mesh, including the small-noise
#: μ weight (a second LU of the interior block and its double-double refinement: paper
#: landscape Δ_S = 0.004 and radial OU δ = 0.01; +25-30 % over Fig. 3's parameters) and
#: the boundary-layer re-solve of a stalled inverse iteration (Δ_S = 0.002: 9.2 kB/dof).
BYTES_PER_DOF = {1: 10400.0, 2: 10000.0, 3: 10500.0}
#: extra of graded meshes (adaptive levels, bands, graded files): the error estimate solves
#: its moment duals in P_{k+1}, one more assembly and LU on 4×, 2.25×, 1.8× the dofs for
#: P1, P2, P3 (banded P1/P2/P3 disks: 2.2×/1.9×/1.7× the uniform solve's peak).
GRADED_BYTES_PER_DOF = {1: 11000.0, 2: 6900.0, 3: 5500.0}
#: extra of the flux post-processing (the mesh-only mass and Laplacian LUs, the fields).
FLUX_BYTES_PER_DOF = {1: 4000.0, 2: 3600.0, 3: 4000.0}
#: the error estimate alone (what a forked child allocates beside its parent), small
#: noise included; on graded meshes plus GRADED_BYTES_PER_DOF.
ESTIMATE_BYTES_PER_DOF = {1: 6900.0, 2: 6000.0, 3: 6500.0}
#: extra of a study case: the background renderer process (its interpreter, matplotlib
#: and the case's fields), the forked estimate child, the results kept for the panel
#: (Fig. 3 study at 42k and 82k P3 dofs: up to 1.07 and 1.83 GB above `fpsolve validate`)
STUDY_BYTES = 256.0 * 2**20
STUDY_BYTES_PER_DOF = 4500.0
#: fixed part of any solve (quadrature tables, the first assembly's scratch)
BASE_BYTES = 48.0 * 2**20
#: Peak memory of disk_mesh per vertex (lattice, Delaunay, smoothing).
MESH_BYTES_PER_VERTEX = 950.0
#: Multiplies every estimate: the calibration's largest per-dof peaks of each part are
#: already in the constants; this covers sizes and problems between and beyond them
#: (the LU fill grows like N log N) and allocator slack.
SAFETY = 1.25
#: Fraction of the available memory a single solve may plan to use.
MEMORY_FRACTION = 0.8


class BudgetError(ValueError):
    """A request exceeds the dof budget (``max_dofs``) or the available memory."""


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().split()[0]
        return int(text)
    except (OSError, ValueError, IndexError):
        return None


def available_memory() -> int:
    """Bytes of memory available to this process now.

    ``MemAvailable`` of ``/proc/meminfo``, capped by the cgroup (v2 or v1) limit
    minus its usage when one is set; ``sysconf`` elsewhere.
    """
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 8 << 30      # unknown platform: assume a small workstation
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < (1 << 60):
            avail = min(avail, max(limit - usage, 0))
    return int(avail)


def _band_area(radius: float, half_width: float) -> float:
    """Area of the part |y| < half_width of a disk of ``radius``."""
    b = min(half_width, radius)
    return 2.0 * (b * math.sqrt(radius * radius - b * b) + radius * radius * math.asin(b / radius))


def disk_vertices(radius: float, h: float, band: float | None = None,
                  band_levels: int = 1) -> tuple[float, float]:
    """Estimated (vertices, boundary vertices) of ``disk_mesh(radius, h, band=...)``.

    Within 4 % for uniform meshes of 20 to 370 000 vertices; the band estimate
    errs on the large side (up to +10 % for three levels).  Returns floats: the
    estimate may exceed any integer size a machine could hold.
    """
    density = 2.0 / (math.sqrt(3.0) * h * h)
    area = math.pi * radius * radius
    if band is not None and band_levels > 0:
        # elements whose midpoint is in the band are refined: widen it by h/2
        area += (4.0 ** band_levels - 1.0) * _band_area(radius, band + 0.5 * h)
    nb = float(math.ceil(2 * math.pi * radius / h))
    if band is not None and band_levels > 0:     # the ring is refined inside the band too
        frac = 2.0 * math.asin(min(band / radius, 1.0)) / math.pi
        nb *= 1.0 + frac * (2.0 ** band_levels - 1.0)
    return density * area + 0.5 * nb, nb


def dofs_from_counts(nvertices: float, nboundary: float, order: int) -> float:
    """Lagrange dofs of order 1–3 on a triangulated disk-like domain (Euler's formula)."""
    if order == 1:
        return nvertices
    edges = 3 * nvertices - nboundary - 3
    if order == 2:
        return nvertices + edges
    if order == 3:
        return nvertices + 2 * edges + (2 * nvertices - nboundary - 2)
    raise ValueError(f"order: expected 1, 2 or 3, got {order!r}")


def mesh_dofs(mesh, order: int) -> int:
    """Exact dofs of an order-``order`` basis on ``mesh`` (no basis is built)."""
    e, bnd = mesh.edges()
    nv, ne, nedges = mesh.nvertices, mesh.nelements, e.shape[1]
    return int({1: nv, 2: nv + nedges, 3: nv + 2 * nedges + ne}[order])


def estimate_dofs(radius: float, h: float, order: int, band: float | None = None,
                  band_levels: int = 1) -> float:
    """Estimated dofs of an order-``order`` solve on ``disk_mesh(radius, h, ...)``."""
    nv, nb = disk_vertices(radius, h, band, band_levels)
    return dofs_from_counts(nv, nb, order)


def _per_dof(order: int, flux: bool, graded: bool, study: bool) -> float:
    """Planned bytes per dof (before :data:`SAFETY`)."""
    if order not in BYTES_PER_DOF:
        raise ValueError(f"order: expected 1, 2 or 3, got {order!r}")
    return (BYTES_PER_DOF[order] + (GRADED_BYTES_PER_DOF[order] if graded else 0.0)
            + (FLUX_BYTES_PER_DOF[order] if flux else 0.0)
            + (STUDY_BYTES_PER_DOF if study else 0.0))


def peak_memory(dofs: float, order: int, flux: bool = False, graded: bool = False,
                study: bool = False) -> float:
    """Estimated peak memory (bytes) of assembling and solving ``dofs`` unknowns.

    Parameters
    ----------
    dofs
        Number of unknowns.
    order
        Element order 1–3.
    flux
        Add the flux post-processing (:data:`FLUX_BYTES_PER_DOF`).
    graded
        The mesh is graded: the error estimate's P_{k+1} duals
        (:data:`GRADED_BYTES_PER_DOF`).
    study
        A study case: its renderer process, forked estimate and kept results
        (:data:`STUDY_BYTES`, :data:`STUDY_BYTES_PER_DOF`).

    Returns
    -------
    float
        Bytes above the resident size before the request, :data:`SAFETY` included.
    """
    fixed = BASE_BYTES + (STUDY_BYTES if study else 0.0)
    return SAFETY * (fixed + _per_dof(order, flux, graded, study) * float(dofs))


def estimate_memory(dofs: float, order: int, graded: bool = False, flux: bool = False) -> float:
    """Estimated peak memory (bytes) of a solve's error estimate alone.

    What a forked child (:mod:`fpsolve.study.forked`) allocates beside its parent, which
    holds the assembled operators and the LU the estimate reuses.

    Parameters
    ----------
    dofs
        Number of unknowns of the solve.
    order
        Element order 1–3.
    graded
        The mesh is graded (the duals are solved in P_{k+1}).
    flux
        Add the flux post-processing that the parent computes meanwhile.

    Returns
    -------
    float
        Bytes, :data:`SAFETY` included.
    """
    if order not in ESTIMATE_BYTES_PER_DOF:
        raise ValueError(f"order: expected 1, 2 or 3, got {order!r}")
    per = (ESTIMATE_BYTES_PER_DOF[order] + (GRADED_BYTES_PER_DOF[order] if graded else 0.0)
           + (FLUX_BYTES_PER_DOF[order] if flux else 0.0))
    return SAFETY * (BASE_BYTES + per * float(dofs))


def fits(need: float, available: int | None = None) -> bool:
    """Whether ``need`` bytes fit in :data:`MEMORY_FRACTION` of the available memory.

    Parameters
    ----------
    need
        Planned bytes, e.g. from :func:`peak_memory` or :func:`estimate_memory`.
    available
        Available bytes (default: :func:`available_memory`, read now).

    Returns
    -------
    bool
        True if ``need`` ≤ :data:`MEMORY_FRACTION` × ``available``.
    """
    avail = available_memory() if available is None else available
    return need <= MEMORY_FRACTION * avail


def default_max_dofs(order: int, flux: bool = False, available: int | None = None,
                     graded: bool = False, study: bool = False) -> int:
    """The default budget: the largest solve whose peak fits in the available memory.

    Parameters
    ----------
    order, flux, graded, study
        As for :func:`peak_memory`.
    available
        Available memory in bytes (default :func:`available_memory`).

    Returns
    -------
    int
        The largest n with ``peak_memory(n, ...)`` ≤ :data:`MEMORY_FRACTION` × available
        (0 if not even the fixed part fits).
    """
    avail = available_memory() if available is None else available
    fixed = BASE_BYTES + (STUDY_BYTES if study else 0.0)
    room = MEMORY_FRACTION * avail / SAFETY - fixed
    return max(int(room / _per_dof(order, flux, graded, study)), 0)


def parallel_workers(peaks, workers: int, available: int | None = None) -> int:
    """How many of ``workers`` can run at once without exceeding the memory.

    Parameters
    ----------
    peaks
        Estimated peak memories (bytes) of the jobs; the largest ones are assumed to
        run together.
    workers
        Workers asked for.
    available
        Available memory in bytes (default :func:`available_memory`).

    Returns
    -------
    int
        The largest k ≤ ``workers`` whose k largest peaks fit in
        :data:`MEMORY_FRACTION` of the memory; at least 1 (each job alone passed
        :func:`check`).
    """
    avail = available_memory() if available is None else available
    peaks = sorted((float(p) for p in peaks), reverse=True)
    k = max(1, int(workers))
    while k > 1 and sum(peaks[:k]) > MEMORY_FRACTION * avail:
        k -= 1
    return k


def check_max_dofs(max_dofs, name: str = "max_dofs") -> int | None:
    """Validate a ``max_dofs`` argument: None or an integer ≥ :data:`MIN_DOFS`."""
    if max_dofs is None:
        return None
    ok = isinstance(max_dofs, (int, np.integer)) or (
        isinstance(max_dofs, (float, np.floating)) and float(max_dofs).is_integer())
    if isinstance(max_dofs, (bool, np.bool_)) or not ok or max_dofs < MIN_DOFS:
        raise BudgetError(f"{name}: expected an integer >= {MIN_DOFS} or None, got {max_dofs!r}")
    return int(max_dofs)


def _count(dofs: float) -> str:
    return f"{int(dofs):,}" if dofs < 1e9 else f"{dofs:.3g}"


def format_bytes(nbytes: float) -> str:
    """Bytes as GiB with three significant digits, for messages."""
    return f"{nbytes / 2**30:.3g} GiB"


def check(dofs: float, order: int, max_dofs: int | None = None, what: str = "the solve",
          flux: bool = False, graded: bool = False, study: bool = False) -> int:
    """Raise :class:`BudgetError` unless ``dofs`` unknowns of ``order`` fit the budget.

    Parameters
    ----------
    dofs
        Number of unknowns (exact or estimated).
    order
        Element order 1–3 (the memory per dof depends on it).
    max_dofs
        Explicit budget (None: :func:`default_max_dofs` of the available memory).
        The memory check applies in either case.
    what
        Names the request in the message, e.g. ``"disk_mesh(radius=2, h=1e-05)"``
        or ``"adaptive level 4"``.
    flux
        Include the flux post-processing in the memory estimate.
    graded
        The mesh is graded (an adaptive level, a band): the error estimate's P_{k+1}
        duals count (:data:`GRADED_BYTES_PER_DOF`).
    study
        A study case (renderer process, forked estimate: :func:`peak_memory`).

    Returns
    -------
    int
        The budget that was applied (``max_dofs`` or the default).
    """
    if order not in BYTES_PER_DOF:
        raise ValueError(f"order: expected 1, 2 or 3, got {order!r}")
    max_dofs = check_max_dofs(max_dofs)
    avail = available_memory()
    need = peak_memory(dofs, order, flux, graded, study)
    limit = (max_dofs if max_dofs is not None
             else default_max_dofs(order, flux, avail, graded, study))
    origin = ("max_dofs" if max_dofs is not None
              else f"max_dofs (default for {format_bytes(avail)} of available memory)")
    if dofs > limit:
        raise BudgetError(f"{what}: {_count(dofs)} P{order} dofs exceed {origin} = {limit:,} "
                          f"(estimated peak memory {format_bytes(need)}); use a coarser mesh (larger h), "
                          "a lower order or a smaller domain")
    if need > MEMORY_FRACTION * avail:
        raise BudgetError(f"{what}: {_count(dofs)} P{order} dofs need an estimated "
                          f"{format_bytes(need)} of memory, but only {format_bytes(avail)} are available; use "
                          "a coarser mesh (larger h), a lower order or a smaller domain")
    return int(limit)


def check_disk(radius: float, h: float, order: int, band: float | None = None,
               band_levels: int = 1, max_dofs: int | None = None, what: str | None = None,
               flux: bool = False, study: bool = False) -> int:
    """:func:`check` for a solve on ``disk_mesh(radius, h, ...)`` before meshing it.

    Returns the estimated number of dofs.
    """
    what = what or f"disk_mesh(radius={radius:g}, h={h:g}) (estimated)"
    dofs = estimate_dofs(radius, h, order, band, band_levels)
    check(dofs, order, max_dofs, what, flux, graded=band is not None, study=study)
    return int(dofs)


def check_mesh_build(radius: float, h: float, band: float | None = None,
                     band_levels: int = 1, max_dofs: int | None = None) -> None:
    """Guard of :func:`~fpsolve.fe.mesh.disk_mesh` itself, before the lattice is made.

    The mesh must fit in memory, and its vertex count (the P1 dofs, the fewest of
    any order) must be within ``max_dofs`` (default: the P1 budget of the memory).
    """
    what = f"disk_mesh(radius={radius:g}, h={h:g})"
    max_dofs = check_max_dofs(max_dofs, "disk_mesh: max_dofs")
    nv, _ = disk_vertices(radius, h, band, band_levels)
    check(nv, 1, max_dofs, what + " (estimated)")
    avail = available_memory()
    need = SAFETY * MESH_BYTES_PER_VERTEX * nv
    if need > MEMORY_FRACTION * avail:
        raise BudgetError(f"{what}: {_count(nv)} vertices need an estimated {format_bytes(need)} "
                          f"to mesh, but only {format_bytes(avail)} are available; use a larger h")
