"""Construct fpsolve objects (landscape, diffusion, mesh) from resolved case sections."""
from __future__ import annotations

import numpy as np

from ..models import diffusion as _diffusion
from ..models import landscapes as _landscapes
from ..fe.mesh import Mesh, disk_mesh, load_mesh

__all__ = ["build_landscape", "build_noise", "build_mesh", "sample_points", "case_dofs",
           "case_peak_memory", "mesh_arrays", "case_mesh"]

# Meshes are deterministic functions of their section; building one per process is enough.
_MESHES: dict[str, Mesh] = {}


def build_landscape(cfg: dict) -> _landscapes.Landscape:
    """Landscape from a resolved ``[landscape]`` section."""
    kind = cfg["kind"]
    if kind == "paper":
        return _landscapes.paper(cfg["eps"], cfg["lam0"], cfg["lam1"], cfg["lam2"])
    if kind == "quadratic":
        return _landscapes.quadratic(cfg["A"], cfg["center"])
    if kind == "expression":
        return _landscapes.expression(cfg["expr"], cfg["params"])
    raise ValueError(f"landscape.kind: unknown kind {kind!r}")


def build_noise(cfg: dict, landscape) -> _diffusion.DiffusionModel:
    """Diffusion model from a resolved ``[noise]`` section."""
    kind = cfg["kind"]
    if kind == "sgd":
        return _diffusion.sgd(landscape, cfg["delta_s"], cfg["cross_diffusion"])
    if kind == "isotropic":
        return _diffusion.isotropic(cfg["delta"])
    if kind == "constant":
        return _diffusion.constant(cfg["matrix"])
    if kind == "expression":
        return _diffusion.expression(cfg["D11"], cfg["D22"], cfg["D12"], cfg["params"])
    raise ValueError(f"noise.kind: unknown kind {kind!r}")


def _mesh_key(cfg: dict) -> str:
    import json
    return json.dumps(cfg, sort_keys=True)


def build_mesh(cfg: dict) -> Mesh:
    """Mesh from a resolved ``[mesh]`` section (generated disk or file), cached per process."""
    key = _mesh_key(cfg)
    if key not in _MESHES:
        if "file" in cfg:
            _MESHES[key] = load_mesh(cfg["path"])
        else:
            _MESHES[key] = disk_mesh(cfg["radius"], cfg["h"], tuple(cfg["center"]), cfg["band"],
                                     cfg["band_levels"])
    return _MESHES[key]


def mesh_arrays(mesh: Mesh) -> dict:
    """The arrays that rebuild ``mesh`` exactly (:func:`case_mesh`), for a case's ``.npz``.

    An adaptive case (``solver.tol``) ends on its own refined mesh, which no section
    describes: its vertices and triangles travel with the coefficients, so the figures,
    the panel and a rerun's reuse draw on the mesh the solution lives on.

    Parameters
    ----------
    mesh : Mesh
        The case's (possibly adapted) mesh.

    Returns
    -------
    dict
        ``mesh_p`` (2, n) vertices, ``mesh_t`` (3, m) triangles, ``mesh_circle`` (radius,
        centre x, centre y; radius NaN for a mesh without a circle) and ``mesh_source``.
    """
    radius = np.nan if mesh.radius is None else float(mesh.radius)
    return {"mesh_p": np.asarray(mesh.p, dtype=float), "mesh_t": np.asarray(mesh.t),
            "mesh_circle": np.array([radius, *map(float, mesh.center)]),
            "mesh_source": np.array(mesh.source)}


def case_mesh(cfg: dict, arrays=None) -> Mesh:
    """The mesh of a case.

    Parameters
    ----------
    cfg : dict
        The case's validated configuration.
    arrays : mapping, optional
        An ``np.load`` of the case's ``.npz``, or a dict, possibly holding the arrays of
        :func:`mesh_arrays`.

    Returns
    -------
    Mesh
        The adapted mesh stored in ``arrays`` if there is one, else the mesh of the
        case's ``[mesh]`` section.
    """
    if arrays is None or "mesh_p" not in arrays:
        return build_mesh(cfg)
    from skfem import MeshTri
    r, cx, cy = (float(v) for v in arrays["mesh_circle"])
    # sort_t=False: the stored triangles as they were, so the dof numbering (and P) matches
    m = MeshTri(np.ascontiguousarray(arrays["mesh_p"], dtype=float),
                np.ascontiguousarray(arrays["mesh_t"]), sort_t=False)
    return Mesh(m, None if np.isnan(r) else r, (cx, cy), str(arrays["mesh_source"]))


def sample_points(cfg: dict):
    """Points covering the domain, to check user models before any assembly.

    The vertices of a mesh file, or a polar grid of the generated disk (cheaper
    than generating the mesh).
    """
    if "file" in cfg:
        p = build_mesh(cfg).p
        return p[0].copy(), p[1].copy()
    r = cfg["radius"] * np.sqrt(np.linspace(0.0, 1.0, 41))
    phi = np.linspace(0.0, 2 * np.pi, 72, endpoint=False)
    R, PHI = np.meshgrid(r, phi)
    return (cfg["center"][0] + (R * np.cos(PHI)).ravel(),
            cfg["center"][1] + (R * np.sin(PHI)).ravel())


def case_dofs(cfg: dict, flux: bool = True) -> float:
    """Unknowns of one case configuration, estimated without meshing a generated disk.

    Parameters
    ----------
    cfg
        A resolved case configuration.
    flux
        Whether the case computes the flux (it enters the default budget).

    Returns
    -------
    float
        The dofs; a mesh file is read and counted; an adaptive case (``solver.tol``)
        counts its ``max_dofs`` budget (the default budget fills the available memory).
    """
    from ..fe import budget
    mcfg, scfg = cfg["mesh"], cfg["solver"]
    order = scfg["order"]
    if scfg.get("tol") is not None:
        return scfg.get("max_dofs") or budget.default_max_dofs(order, flux, graded=True,
                                                               study=True)
    if "file" in mcfg:
        return budget.mesh_dofs(build_mesh(mcfg), order)
    return budget.estimate_dofs(mcfg["radius"], mcfg["h"], order, mcfg["band"],
                                mcfg["band_levels"])


def case_peak_memory(cfg: dict, flux: bool) -> float:
    """Estimated peak memory (bytes) of solving one case configuration (:func:`case_dofs`).

    Parameters
    ----------
    cfg
        A resolved case configuration.
    flux
        Whether the case computes the flux post-processing.

    Returns
    -------
    float
        Bytes, from :func:`fpsolve.fe.budget.peak_memory`.
    """
    from ..fe import budget
    graded = cfg["solver"].get("tol") is not None or cfg["mesh"].get("band") is not None
    return budget.peak_memory(case_dofs(cfg, flux), cfg["solver"]["order"], flux, graded,
                              study=True)
