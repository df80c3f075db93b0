"""VTK / ParaView export: one ``.vtu`` per solution, ``.pvd`` collections for series.

Layout of a ``.vtu`` written by :func:`export_vtk` (docs/flux.md):

* points = the dof locations of the solution's basis, so every point value is an FE
  dof and nothing is interpolated.  Cells:

  - P1: ``triangle`` (VTK type 5).
  - P2: ``triangle6`` (VTK_QUADRATIC_TRIANGLE, type 22).  scikit-fem's P2 local order
    (vertices 0, 1, 2, then edges 01, 12, 20) is VTK's, so ParaView's quadratic
    interpolation reproduces the P2 function, curved (isoparametric) boundary elements
    included.
  - P3: ``VTK_LAGRANGE_TRIANGLE`` (type 69, 10 nodes): vertices 0, 1, 2, two nodes on
    each of the edges 0→1, 1→2, 2→0 (each pair running from the edge's first to its
    second vertex), then the centroid node.  scikit-fem's P3 places its third edge's
    dofs along 0→2, so that pair is swapped.  VTK's cubic (isoparametric) map through
    the 10 dof locations reproduces the quadratic geometry of the curved disk boundary
    exactly (P3 is subparametric there) and its cubic interpolation reproduces the P3
    function, so ParaView shows the FE solution itself.  Lagrange cells need
    ParaView ≥ 5.5 (VTK ≥ 8.1); ParaView draws them with "Nonlinear Subdivision
    Level" ≥ 1 (Properties panel) or after the Tessellate filter.
* point data: ``P``; ``J`` (3 components, J_z = 0, so Glyph and Stream Tracer treat it
  as a vector), ``J_magnitude``, ``psi`` (stream function), ``phi`` (potential of the
  curl-free part), ``L`` (loss, when the problem has a landscape), ``D11``, ``D12``,
  ``D22`` (11 values per point: ParaView's Tessellate filter passes at most 18).
* cell data: ``J_cell`` (3 components: element average of the FE flux), ``J_cell_magnitude``
  and ``P_cell`` (element averages).
* field data: ``escape_rate``, ``strength``, ``order``, ``dofs``, ``psi_max_abs``,
  ``entropy_production`` (omitted when not defined), ``cycle_centers`` (n × 3),
  ``cycle_circulations`` (n) (both present when cycles were found) and
  ``parameters_json``: problem parameters, flux summary and solver diagnostics as JSON,
  stored as UTF-8 bytes (UInt8) because meshio cannot read VTK string arrays; decode
  with ``json.loads(bytes(array).decode())``.

All files are written atomically (temporary file in the target directory, then
``os.replace``): a reader never sees a half-written file.
"""
from __future__ import annotations

import json
import math
import os
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from ._json import jsonable

__all__ = ["export_vtk", "write_pvd", "vtk_content", "vtu_bytes"]


def _tmp_name(path: str) -> str:
    d, base = os.path.split(path)
    return os.path.join(d, f".{base}.tmp-{os.getpid()}")


def _atomic_write_bytes(path: str, data: bytes) -> None:
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _check_target(path, suffix: str, what: str) -> str:
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"{what}: expected a file path, got {type(path).__name__}") from None
    if not path.lower().endswith(suffix):
        raise ValueError(f"{what}: expected a file name ending in {suffix}, got {path!r}")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise FileNotFoundError(f"{what}: directory {d!r} does not exist")
    return path


def _field_data_xml(fields: dict, strings: dict) -> str:
    """<FieldData> block (ASCII arrays; strings as UTF-8 bytes)."""
    out = ["<FieldData>"]
    for name, arr in fields.items():
        a = np.atleast_1d(np.asarray(arr, dtype=float))
        ncomp = a.shape[1] if a.ndim == 2 else 1
        ntup = a.shape[0]
        comp = f' NumberOfComponents="{ncomp}"' if ncomp > 1 else ""
        # VTK's ASCII parser rejects "nan" (the whole file then reads as empty)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"field data {name!r} is not finite")
        vals = " ".join(repr(float(v)) for v in a.ravel())
        out.append(f'<DataArray type="Float64" Name={quoteattr(name)}{comp} '
                   f'NumberOfTuples="{ntup}" format="ascii">{vals}</DataArray>')
    for name, text in strings.items():
        # UTF-8 bytes as UInt8, not a VTK String array: meshio (and so load_mesh) aborts
        # on String arrays; decode with bytes(array).decode()
        data = text.encode("utf-8")
        codes = " ".join(str(b) for b in data)
        out.append(f'<DataArray type="UInt8" Name={quoteattr(name)} '
                   f'NumberOfTuples="{len(data)}" format="ascii">{codes}</DataArray>')
    out.append("</FieldData>")
    return "\n".join(out)


# VTK node k of a cell is scikit-fem local dof _VTK_NODES[order][k]
_VTK_NODES = {1: ("triangle", [0, 1, 2]),
              2: ("triangle6", [0, 1, 2, 3, 4, 5]),
              # skfem P3: edge dofs 3, 4 on 0→1, 5, 6 on 1→2, 7, 8 on 0→2 (7 next to
              # vertex 0); VTK's third edge runs 2→0: nodes 8, 7
              3: ("VTK_LAGRANGE_TRIANGLE", [0, 1, 2, 3, 4, 5, 6, 8, 7, 9])}


def _vtk_cells(basis, order: int):
    """VTK cell type name (meshio's) and connectivity (nelements, nnodes) of ``basis``.

    Points are the global dofs.  For P3 the exporter checks that every element's own
    map of its reference nodes lands on the shared dof locations: this is where an edge
    whose two dofs were ordered against the element's local orientation would show up
    (scikit-fem orders them by the global edge orientation, which agrees with the local
    one because its triangles are stored with sorted vertex indices).
    """
    if order not in _VTK_NODES:
        raise ValueError(f"sol: order {order} cannot be exported (1, 2 or 3 supported)")
    name, perm = _VTK_NODES[order]
    if basis.Nbfun != len(perm):
        raise ValueError(f"sol: a P{order} solution should have {len(perm)} dofs per "
                         f"element, its basis has {basis.Nbfun}")
    cells = np.ascontiguousarray(basis.element_dofs[perm].T, dtype=np.int64)
    if order == 3:
        X = np.asarray(basis.elem.doflocs, dtype=float)[perm].T          # (2, 10)
        own = np.asarray(basis.mapping.F(X))                               # (2, ne, 10)
        shared = basis.doflocs[:, cells]                                   # (2, ne, 10)
        scale = max(float(np.ptp(basis.doflocs)), 1e-300)
        bad = np.max(np.abs(own - shared)) > 1e-10 * scale
        if bad:
            raise ValueError("sol: the P3 edge dofs of some elements are not where their "
                             "element places them (mesh triangles with unsorted vertex "
                             "indices?); the P3 function is not conforming and cannot be "
                             "exported")
    return name, cells


def export_vtk(sol, path, flux=None) -> str:
    """Write a solution (and its flux fields) to a VTK ``.vtu`` file for ParaView.

    Parameters
    ----------
    sol : fpsolve.Solution
    path : str or os.PathLike
        Target file name, ending in ``.vtu``; its directory must exist.
    flux : fpsolve.flux.Flux, False or None
        Flux of ``sol`` to export (J, |J|, ψ, φ, cycles); None computes it with
        :func:`fpsolve.flux.flux`; False exports only P, L and D.

    Returns
    -------
    str
        ``path``.

    Notes
    -----
    P2 solutions are written as quadratic triangles (VTK type 22) and P3 solutions as
    cubic Lagrange triangles (VTK type 69), both on the dof locations, so nothing is
    lost; see the module docstring for the full layout.
    """
    path = _check_target(path, ".vtu", "path")
    _atomic_write_bytes(path, vtu_bytes(vtk_content(sol, flux)))
    return path


def vtk_content(sol, flux=None) -> dict:
    """Everything :func:`export_vtk` writes, as plain arrays (picklable; no file I/O).

    Returns a dict with ``points``, ``cell_type``, ``cells``, ``point_data``,
    ``cell_data``, ``fields`` and ``params_json``, to be written by :func:`vtu_bytes`
    (possibly in another process).  ``flux`` as for :func:`export_vtk`.
    """
    from .fe.flux import Flux
    from .fe.flux import flux as compute_flux
    from .fe.solution import Solution

    if not isinstance(sol, Solution):
        raise TypeError(f"sol: expected a fpsolve Solution, got {type(sol).__name__}")
    if flux is None:
        flux = compute_flux(sol)
    elif flux is not False:
        if not isinstance(flux, Flux):
            raise TypeError(f"flux: expected a Flux from fpsolve.flux(sol), None or False, "
                            f"got {type(flux).__name__}")
        if flux.solution is not sol:
            raise ValueError("flux: was computed for another solution")
    basis = sol.basis
    x, y = basis.doflocs
    cell_type, cells = _vtk_cells(basis, sol.order)
    point_data, tail, cell_data = _solution_arrays(sol)
    fields = {"escape_rate": sol.escape_rate, "strength": float(sol.diffusion.strength),
              "order": float(sol.order), "dofs": float(basis.N)}
    params = _parameters(sol)
    if flux is not False:
        _add_flux(flux, point_data, cell_data, fields)
        params["flux"] = flux.summary()
    point_data.update(tail)       # the order of the arrays in the file as before
    # no 9-component tensor: ParaView's Tessellate filter passes at most 18 values per
    # point and would drop fields
    for name, arr in list(point_data.items()) + list(cell_data.items()):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"sol: field {name!r} has non-finite values; refusing to export")
    fields = {k: v for k, v in fields.items()
              if np.size(v) > 0 and np.all(np.isfinite(v))}
    return {"points": np.column_stack([x, y, np.zeros_like(x)]), "cell_type": cell_type,
            "cells": cells, "point_data": point_data, "cell_data": cell_data,
            "fields": fields, "params_json": json.dumps(jsonable(params))}


def _solution_arrays(sol):
    """Point data P and L, D11, D12, D22 (written after the flux) and cell data P_cell."""
    x, y = sol.basis.doflocs
    D = np.asarray(sol.diffusion.tensor(x, y), dtype=float)
    _, _, Pq, dx = sol._quadrature()
    tail = {}
    if sol.landscape is not None:
        tail["L"] = np.asarray(sol.landscape.value(x, y), dtype=float)
    tail.update(D11=D[0, 0], D12=D[0, 1], D22=D[1, 1])
    return ({"P": np.asarray(sol.P, dtype=float)}, tail,
            {"P_cell": (Pq * dx).sum(-1) / dx.sum(-1)})


def _parameters(sol) -> dict:
    return {"boundary": sol.boundary, "order": sol.order,
            "stabilisation": sol.stabilisation,
            "escape_rate": sol.escape_rate,
            "diffusion": {"kind": sol.diffusion.kind, **sol.diffusion.params},
            "landscape": (None if sol.landscape is None else
                          {"kind": type(sol.landscape).__name__, **sol.landscape.params}),
            "user_drift": sol.drift is not None,
            "mesh": {"radius": sol.mesh.radius, "center": list(sol.mesh.center),
                     "h": sol.mesh.h, "source": sol.mesh.source},
            "diagnostics": {k: v for k, v in sol.diagnostics.items()}}


def _add_flux(flux, point_data: dict, cell_data: dict, fields: dict) -> None:
    """J, |J|, ψ, φ (points), element-averaged J (cells), ψ scale, entropy, cycles."""
    n = flux.J.shape[1]
    point_data["J"] = np.column_stack([flux.J[0], flux.J[1], np.zeros(n)])
    point_data["J_magnitude"] = flux.magnitude
    point_data["psi"] = flux.psi
    point_data["phi"] = flux.phi
    Jc = flux.cell_average()
    cell_data["J_cell"] = np.column_stack([Jc[0], Jc[1], np.zeros(Jc.shape[1])])
    cell_data["J_cell_magnitude"] = np.hypot(Jc[0], Jc[1])
    fields["psi_max_abs"] = flux.diagnostics["psi_max_abs"]
    if flux.entropy_production is not None:     # omitted where not defined
        fields["entropy_production"] = flux.entropy_production
    cyc = flux.cycles
    fields["cycle_centers"] = (np.array([[*c["center"], 0.0] for c in cyc])
                               if cyc else np.zeros((0, 3)))
    fields["cycle_circulations"] = np.array([c["circulation"] for c in cyc])


def vtu_bytes(content: dict) -> bytes:
    """The ``.vtu`` file of :func:`vtk_content`'s ``content`` (meshio + field data)."""
    import tempfile

    import meshio

    mesh = meshio.Mesh(content["points"], [(content["cell_type"], content["cells"])],
                       point_data=content["point_data"],
                       cell_data={k: [v] for k, v in content["cell_data"].items()})
    fd, tmp = tempfile.mkstemp(suffix=".vtu", prefix="fpsolve-")
    os.close(fd)
    try:
        # uncompressed, then compressed here at a lower zlib level (meshio's default
        # level takes 1.7x the time for 0.6 % less on these float arrays)
        meshio.write(tmp, mesh, file_format="vtu", compression=None)
        with open(tmp, "rb") as f:
            text = f.read()
        if text.count(_VTU_ROOT) == 1:
            text = _zlib_vtu(text, VTU_ZLIB_LEVEL,
                             dict(content["point_data"], **content["cell_data"],
                                  Points=content["points"]))
        else:       # another layout (big-endian machine, other meshio): meshio's zlib
            meshio.write(tmp, mesh, file_format="vtu")
            with open(tmp, "rb") as f:
                text = f.read()
    finally:
        os.remove(tmp)
    marker = b"<UnstructuredGrid>"
    if text.count(marker) != 1:
        raise RuntimeError("export_vtk: unexpected meshio VTU layout (no unique "
                           "<UnstructuredGrid> element); cannot add field data")
    block = _field_data_xml(content["fields"], {"parameters_json": content["params_json"]})
    return text.replace(marker, marker + b"\n" + block.encode("utf-8"), 1)


#: zlib level of the .vtu data blocks (1: fastest; the arrays are mostly float64 noise
#: in their low bits, so higher levels gain < 1 %)
VTU_ZLIB_LEVEL = 1
_VTU_ROOT = b'<VTKFile type="UnstructuredGrid" version="0.1" byte_order="LittleEndian">'
_VTU_BLOCK = 32768


def _zlib_vtu(text: bytes, level: int, arrays: dict | None = None) -> bytes:
    """meshio's uncompressed binary ``.vtu`` (UInt32 headers, little endian) as its
    ``vtkZLibDataCompressor`` layout, the blocks compressed at zlib ``level`` (with
    level 6, zlib's default, the bytes meshio itself writes).

    ``arrays``: {DataArray name: array written there}; their bytes are taken from the
    arrays instead of decoding the base64 text (checked against its length header).
    """
    import base64
    import re
    import zlib

    if text.count(_VTU_ROOT) != 1:
        raise RuntimeError("export_vtk: unexpected meshio VTU layout (VTKFile element); "
                           "cannot compress it")
    arrays = arrays or {}

    def compress(b64: bytes, name: bytes) -> bytes:
        n = int.from_bytes(base64.b64decode(b64[:8])[:4], "little")
        data = arrays.get(name.decode())
        data = None if data is None else np.ascontiguousarray(data).tobytes()
        if data is None or len(data) != n:
            data = base64.b64decode(b64)[4:4 + n]
        blocks = [zlib.compress(data[i:i + _VTU_BLOCK], level)
                  for i in range(0, len(data), _VTU_BLOCK)]
        last = len(data) - (len(blocks) - 1) * _VTU_BLOCK if blocks else 0
        header = np.array([len(blocks), _VTU_BLOCK, last] + [len(b) for b in blocks],
                          dtype="<u4")
        return base64.b64encode(header.tobytes()) + base64.b64encode(b"".join(blocks))

    # the binary DataArrays' text, found by plain search (a regex over the megabytes of
    # base64 costs more than the compression)
    out, pos = [], 0
    opening, closing = b'format="binary">', b"</DataArray>"
    while (i := text.find(opening, pos)) >= 0:
        tag = text[text.rfind(b"<DataArray", 0, i):i]
        name = re.search(rb' Name="([^"]*)"', tag)
        i += len(opening)
        j = text.index(closing, i)
        blk = text[i:j]
        k, m = i + len(blk) - len(blk.lstrip()), j - len(blk) + len(blk.rstrip())
        # the whitespace around the data is kept
        out += [text[pos:k], compress(text[k:m], name.group(1) if name else b"")]
        pos = m
    out.append(text[pos:])
    return b"".join(out).replace(
        _VTU_ROOT, _VTU_ROOT[:-1] + b' compressor="vtkZLibDataCompressor">', 1)


def write_pvd(path, entries) -> str:
    """Write a ParaView collection (``.pvd``) of ``.vtu`` files, e.g. a Δ_S sweep.

    Parameters
    ----------
    path : str or os.PathLike
        Target file name ending in ``.pvd``; its directory must exist.
    entries : iterable of (float, str)
        ``(time_value, file)`` pairs; the parameter of the series (Δ_S, ...) becomes
        ParaView's time value.  A relative ``file`` is looked up relative to the
        directory of ``path`` first (that is how ParaView reads it), then relative to
        the working directory; the collection always stores names relative to the
        ``.pvd``'s directory, so the series can be moved as a whole.

    Returns
    -------
    str
        ``path``.
    """
    path = _check_target(path, ".pvd", "path")
    base = os.path.dirname(os.path.abspath(path))
    try:
        entries = list(entries)
    except TypeError:
        raise TypeError("entries: expected a list of (time_value, file) pairs") from None
    if not entries:
        raise ValueError("entries: expected at least one (time_value, file) pair")
    rows, seen = [], set()
    for k, item in enumerate(entries):
        try:
            t, f = item
            t = float(t)
            f = os.fspath(f)
        except (TypeError, ValueError):
            raise ValueError(f"entries[{k}]: expected (time_value, file), got {item!r}") from None
        if not math.isfinite(t):
            raise ValueError(f"entries[{k}]: time value must be finite, got {t!r}")
        if t in seen:
            raise ValueError(f"entries[{k}]: duplicate time value {t!r} (ParaView would "
                             "show only one of the files)")
        seen.add(t)
        cand = [f] if os.path.isabs(f) else [os.path.join(base, f), os.path.abspath(f)]
        found = next((c for c in cand if os.path.isfile(c)), None)
        if found is None:
            raise FileNotFoundError(f"entries[{k}]: file {f!r} not found (relative to "
                                    f"{base!r} or the working directory)")
        rel = os.path.relpath(os.path.abspath(found), base).replace(os.sep, "/")
        rows.append(f'    <DataSet timestep={quoteattr(repr(t))} group="" part="0" '
                    f'file={quoteattr(rel)}/>')
    xml = ('<?xml version="1.0"?>\n'
           '<VTKFile type="Collection" version="0.1" byte_order="LittleEndian">\n'
           f"  <!-- {escape('written by fpsolve.io.write_pvd')} -->\n"
           "  <Collection>\n" + "\n".join(rows) + "\n  </Collection>\n</VTKFile>\n")
    _atomic_write_bytes(path, xml.encode("utf-8"))
    return path


def export_series(evolution, path, flux=False) -> str:
    """Write a transient (:func:`fpsolve.evolve`) as a ParaView time series.

    One ``.vtu`` per output time (``<stem>_0000.vtu``, ... next to ``path``, each the
    density conditioned on survival, with ``survival`` and ``time`` in its diagnostics),
    then the ``.pvd`` collection with the times as ParaView's time values.

    Parameters
    ----------
    evolution : fpsolve.Evolution
    path : str or os.PathLike
        Target ``.pvd`` file; its directory must exist.
    flux : bool
        Also compute and export the flux of every frame (costly for long series).

    Returns
    -------
    str
        ``path``.
    """
    path = _check_target(path, ".pvd", "path")
    if not (hasattr(evolution, "times") and hasattr(evolution, "__getitem__")):
        raise TypeError(f"evolution: expected a fpsolve Evolution, got "
                        f"{type(evolution).__name__}")
    stem = os.path.splitext(path)[0]
    entries = []
    for i, t in enumerate(evolution.times):
        f = f"{stem}_{i:04d}.vtu"
        export_vtk(evolution[i], f, flux=None if flux else False)
        entries.append((float(t), f))
    return write_pvd(path, entries)


def export_field(obj, path) -> str:
    """Write a scalar FE field without a density (e.g. :func:`fpsolve.mfpt`'s T) to ``.vtu``.

    ``obj`` provides ``basis``, ``order``, ``landscape`` and ``_vtk_fields()`` (name →
    nodal values); the cells are those of :func:`export_vtk`, so ParaView shows the FE
    function itself.  Field data: ``parameters_json`` with ``obj.summary()``.
    """
    import meshio

    path = _check_target(path, ".vtu", "path")
    if not hasattr(obj, "_vtk_fields"):
        raise TypeError(f"obj: expected a fpsolve field result (e.g. MeanExitTime), got "
                        f"{type(obj).__name__}")
    basis = obj.basis
    x, y = basis.doflocs
    cell_type, cells = _vtk_cells(basis, obj.order)
    point_data = {k: np.asarray(v, dtype=float) for k, v in obj._vtk_fields().items()}
    if obj.landscape is not None:
        point_data["L"] = np.asarray(obj.landscape.value(x, y), dtype=float)
    for name, arr in point_data.items():
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"obj: field {name!r} has non-finite values; refusing to export")
    mesh = meshio.Mesh(np.column_stack([x, y, np.zeros_like(x)]), [(cell_type, cells)],
                       point_data=point_data)
    tmp = _tmp_name(path)
    try:
        meshio.write(tmp, mesh, file_format="vtu")
        with open(tmp, "rb") as f:
            text = f.read()
        marker = b"<UnstructuredGrid>"
        block = _field_data_xml({}, {"parameters_json": json.dumps(jsonable(obj.summary()))})
        text = text.replace(marker, marker + b"\n" + block.encode("utf-8"), 1)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _atomic_write_bytes(path, text)
    return path


__all__ += ["export_series", "export_field"]
