"""VTK / ParaView export, checked with the real VTK reader (the library ParaView uses)."""
import json
import os
import shutil
import subprocess
import warnings
import xml.etree.ElementTree as ET

import meshio
import numpy as np
import pytest

import fpsolve as fp

vtk = pytest.importorskip("vtk")
from vtk.util.numpy_support import vtk_to_numpy  # noqa: E402

OU_A = np.array([[1.0, 0.3], [0.3, 2.0]])
OU_D = np.array([[0.10, 0.04], [0.04, 0.05]])


@pytest.fixture(scope="module")
def sols():
    L = fp.landscapes.quadratic(OU_A)
    D = fp.diffusion.constant(OU_D)
    mesh = fp.disk_mesh(1.5, 0.1)
    with warnings.catch_warnings():     # coarse meshes: negative-mass warnings expected
        warnings.simplefilter("ignore", fp.FPSolveWarning)
        out = {order: fp.solve(L, D, mesh, boundary="absorbing", order=order)
               for order in (1, 2, 3)}
        P = fp.landscapes.paper()
        prob = fp.Problem(P, fp.diffusion.sgd(P, 0.01), fp.disk_mesh(2.0, 0.1), order=2)
        out["sweep"] = prob.sweep([0.009, 0.012])
    return out


def read_vtu(path):
    r = vtk.vtkXMLUnstructuredGridReader()
    r.SetFileName(str(path))
    r.Update()
    g = r.GetOutput()
    assert g.GetNumberOfPoints() > 0, f"VTK could not read {path}"
    return g


def arrays(data):
    return {data.GetArrayName(i): vtk_to_numpy(data.GetArray(i))
            for i in range(data.GetNumberOfArrays())}


@pytest.mark.parametrize("order, celltype", [(1, 5), (2, 22), (3, 69)])
def test_vtu_has_all_fields_for_the_vtk_reader(tmp_path, sols, order, celltype):
    sol = sols[order]
    fl = fp.flux(sol)
    path = tmp_path / f"ou_p{order}.vtu"
    assert fp.export_vtk(sol, path, flux=fl) == str(path)
    g = read_vtu(path)
    assert g.GetNumberOfPoints() == sol.basis.N
    assert g.GetNumberOfCells() == sol.basis.mesh.t.shape[1]
    assert {g.GetCellType(i) for i in range(g.GetNumberOfCells())} == {celltype}
    pd = arrays(g.GetPointData())
    assert set(pd) == {"P", "J", "J_magnitude", "psi", "phi", "L", "D11", "D12", "D22"}
    # ParaView's Tessellate filter (P2 display) passes at most 18 values per point
    assert sum(1 if a.ndim == 1 else a.shape[1] for a in pd.values()) <= 18
    assert pd["P"].ndim == 1 and pd["J"].shape == (sol.basis.N, 3)
    for name, a in pd.items():
        assert np.all(np.isfinite(a)), name
    np.testing.assert_array_equal(pd["P"], sol.P)
    np.testing.assert_array_equal(pd["J"][:, :2], fl.J.T)
    assert np.all(pd["J"][:, 2] == 0)
    np.testing.assert_array_equal(pd["psi"], fl.psi)
    np.testing.assert_allclose(pd["D12"], OU_D[0, 1])
    pts = vtk_to_numpy(g.GetPoints().GetData())
    np.testing.assert_array_equal(pts[:, :2], sol.basis.doflocs.T)
    cd = arrays(g.GetCellData())
    assert cd["J_cell"].shape == (g.GetNumberOfCells(), 3) and np.all(np.isfinite(cd["J_cell"]))
    assert cd["P_cell"].shape == (g.GetNumberOfCells(),)
    fd = g.GetFieldData()
    assert vtk_to_numpy(fd.GetArray("escape_rate"))[0] == sol.escape_rate
    assert vtk_to_numpy(fd.GetArray("order"))[0] == order
    assert vtk_to_numpy(fd.GetArray("cycle_centers")).shape == (len(fl.cycles), 3)
    params = json.loads(bytes(vtk_to_numpy(fd.GetArray("parameters_json"))).decode())
    assert params["diffusion"]["kind"] == "constant" and params["order"] == order
    assert params["flux"]["cycles"][0]["sense"] == fl.cycles[0]["sense"]
    assert sorted(os.listdir(tmp_path)) == [path.name]          # no temporary left


def test_p2_quadratic_triangles_reproduce_the_fe_function(tmp_path, sols):
    """VTK's quadratic triangle is isoparametric with the same node order as skfem's P2:
    probing the file with VTK's own interpolation gives the FE density (curved boundary
    elements included)."""
    sol = sols[2]
    path = fp.export_vtk(sol, tmp_path / "p2.vtu", flux=False)
    g = read_vtu(path)
    pts = vtk_to_numpy(g.GetPoints().GetData())
    c = g.GetCell(0)
    # node order: corners, then edges 01, 12, 20 (straight interior cell)
    interior = [i for i in range(g.GetNumberOfCells())
                if np.all(np.hypot(*pts[[g.GetCell(i).GetPointId(k) for k in range(6)], :2].T)
                          < 1.3)]
    for i in interior[:50]:
        c = g.GetCell(i)
        q = pts[[c.GetPointId(k) for k in range(6)]]
        np.testing.assert_allclose(q[3], (q[0] + q[1]) / 2, atol=1e-12)
        np.testing.assert_allclose(q[4], (q[1] + q[2]) / 2, atol=1e-12)
        np.testing.assert_allclose(q[5], (q[2] + q[0]) / 2, atol=1e-12)
    # boundary edges keep their curvature: the solve's boundary nodes (corners on the
    # circle r = 1.5, midside nodes the area-preserving ones, O(h^4) outside it)
    bd = sol.basis.get_dofs().flatten()
    np.testing.assert_allclose(pts[bd, :2].T, sol.basis.doflocs[:, bd], atol=1e-14)
    r = np.hypot(*pts[bd, :2].T)
    assert np.all(np.abs(r - 1.5) < 1e-6) and np.sum(np.abs(r - 1.5) < 1e-14) == bd.size // 2
    # VTK's own location + quadratic interpolation at random points of the straight
    # (affine) elements, r < 1.3, reproduces the FE function; near the circle VTK locates
    # points in curved cells only approximately (its inverse map uses linear sub-triangles)
    rng = np.random.default_rng(1)
    r, t = 1.3 * np.sqrt(rng.uniform(size=200)), rng.uniform(0, 2 * np.pi, 200)
    xy = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    vals = _probe(g, xy, 6)
    np.testing.assert_allclose(vals, sol(xy), rtol=0, atol=1e-12 * sol.P.max())
    # the file is also a mesh fpsolve can load (corner vertices of the triangle6 cells)
    back = fp.load_mesh(path)
    assert back.nelements == sol.mesh.nelements and back.radius == pytest.approx(1.5)


def _probe(g, xy, nnodes):
    """VTK's own cell location and interpolation of P at the points xy (n, 2)."""
    loc = vtk.vtkCellLocator()
    loc.SetDataSet(g)
    loc.BuildLocator()
    P = vtk_to_numpy(g.GetPointData().GetArray("P"))
    vals = []
    for x, y in xy:
        c = g.GetCell(loc.FindCell([x, y, 0.0]))
        w, pc = [0.0] * nnodes, [0.0] * 3
        inside = c.EvaluatePosition([x, y, 0.0], [0.0] * 3, vtk.reference(0), pc,
                                    vtk.reference(0.0), w)
        assert inside == 1
        vals.append(sum(w[k] * P[c.GetPointId(k)] for k in range(nnodes)))
    return np.array(vals)


def test_p3_lagrange_triangles_reproduce_the_fe_function(tmp_path, sols):
    """P3 is written as VTK Lagrange triangles (type 69): nodes = vertices, two per edge
    along 0→1, 1→2, 2→0, centroid.  skfem stores its third edge's dofs along 0→2, so a
    wrong node order would put values at the wrong edge points: VTK's interpolation of
    the file must give the FE density everywhere, curved boundary cells included (their
    quadratic geometry is exactly representable by VTK's cubic isoparametric map)."""
    sol = sols[3]
    path = fp.export_vtk(sol, tmp_path / "p3.vtu", flux=False)
    g = read_vtu(path)
    assert g.GetNumberOfPoints() == sol.basis.N
    assert g.GetNumberOfCells() == sol.mesh.nelements
    assert {g.GetCellType(i) for i in range(g.GetNumberOfCells())} == {69}
    assert g.GetCell(0).GetOrder() == 3 and g.GetCell(0).GetNumberOfPoints() == 10
    pts = vtk_to_numpy(g.GetPoints().GetData())
    P = vtk_to_numpy(g.GetPointData().GetArray("P"))
    # every point value is the FE function at the written point
    np.testing.assert_allclose(P, sol(pts[:, :2]), rtol=0, atol=1e-13 * sol.P.max())
    # node layout of straight cells: edge nodes at 1/3, 2/3 from each edge's first
    # vertex, then the centroid
    for i in range(0, g.GetNumberOfCells(), 7):
        q = pts[[g.GetCell(i).GetPointId(k) for k in range(10)], :2]
        if np.any(np.hypot(*q.T) > 1.3):
            continue
        for e, (a, b) in enumerate(((0, 1), (1, 2), (2, 0))):
            np.testing.assert_allclose(q[3 + 2 * e], (2 * q[a] + q[b]) / 3, atol=1e-12)
            np.testing.assert_allclose(q[4 + 2 * e], (q[a] + 2 * q[b]) / 3, atol=1e-12)
        np.testing.assert_allclose(q[9], q[:3].mean(axis=0), atol=1e-12)
    # boundary vertices on the circle; both nodes of a curved edge on its parabola,
    # O(h^4) inside the circle (the geometry is quadratic, P3 subparametric)
    bd = sol.basis.get_dofs().flatten()
    rb = np.hypot(*pts[bd, :2].T)
    vert = bd[bd < sol.mesh.nvertices]
    np.testing.assert_allclose(np.hypot(*pts[vert, :2].T), 1.5, rtol=1e-12)
    assert np.all(np.abs(rb - 1.5) < 1e-6) and np.any(np.abs(rb - 1.5) > 1e-12)
    rng = np.random.default_rng(2)
    r, t = 1.5 * np.sqrt(rng.uniform(size=300)), rng.uniform(0, 2 * np.pi, 300)
    xy = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    vals = _probe(g, xy, 10)
    # affine cells: exact; curved cells: VTK's inverse of the cubic map is iterative
    # (measured 1e-8 relative), the interpolation itself is exact
    inner = r < 1.3
    np.testing.assert_allclose(vals[inner], sol(xy[inner]), rtol=0, atol=1e-12 * sol.P.max())
    np.testing.assert_allclose(vals, sol(xy), rtol=0, atol=1e-6 * sol.P.max())
    # meshio reads the cells back with their 10 nodes
    m = meshio.read(path)
    assert m.cells[0].type == "VTK_LAGRANGE_TRIANGLE" and m.cells[0].data.shape[1] == 10
    np.testing.assert_array_equal(m.point_data["P"], sol.P)
    assert json.loads(bytes(m.field_data["parameters_json"]).decode())["order"] == 3
    # and fpsolve loads it back as a mesh through the corner vertices
    back = fp.load_mesh(path)
    assert back.nelements == sol.mesh.nelements and back.nvertices == sol.mesh.nvertices
    assert back.radius == pytest.approx(1.5)


def test_export_without_flux_and_meshio_round_trip(tmp_path, sols):
    sol = sols[1]
    path = fp.export_vtk(sol, tmp_path / "noflux.vtu", flux=False)
    g = read_vtu(path)
    pd = arrays(g.GetPointData())
    assert "J" not in pd and {"P", "L", "D11", "D12", "D22"} <= set(pd)
    m = meshio.read(path)
    assert m.cells[0].type == "triangle"
    np.testing.assert_array_equal(m.point_data["P"], sol.P)
    assert m.field_data["escape_rate"][0] == sol.escape_rate
    assert json.loads(bytes(m.field_data["parameters_json"]).decode())["order"] == 1
    # and fpsolve's own loader takes the file back as a mesh
    back = fp.load_mesh(path)
    assert back.nvertices == sol.mesh.nvertices and back.radius == pytest.approx(1.5)


def test_vtu_compression_is_meshios_layout(tmp_path, sols):
    """The .vtu's zlib blocks are meshio's layout: at zlib's default level the bytes are
    those meshio writes itself; at the faster level used, the arrays read back exactly."""
    from fpsolve import io
    sol = sols[3]
    content = io.vtk_content(sol, fp.flux(sol))
    mesh = meshio.Mesh(content["points"], [(content["cell_type"], content["cells"])],
                       point_data=content["point_data"],
                       cell_data={k: [v] for k, v in content["cell_data"].items()})
    meshio.write(tmp_path / "ref.vtu", mesh, file_format="vtu")
    meshio.write(tmp_path / "raw.vtu", mesh, file_format="vtu", compression=None)
    raw = (tmp_path / "raw.vtu").read_bytes()
    assert len(content["point_data"]["J"].tobytes()) > 32768     # several zlib blocks
    assert io._zlib_vtu(raw, 6) == (tmp_path / "ref.vtu").read_bytes()
    (tmp_path / "fast.vtu").write_bytes(io._zlib_vtu(raw, io.VTU_ZLIB_LEVEL))
    m = meshio.read(tmp_path / "fast.vtu")
    for k, v in content["point_data"].items():
        np.testing.assert_array_equal(m.point_data[k], v)
    np.testing.assert_array_equal(m.cells[0].data, content["cells"])
    with pytest.raises(RuntimeError, match="VTKFile"):
        io._zlib_vtu(raw.replace(b"LittleEndian", b"BigEndian"), 1)
    # a layout it does not know: meshio's own compressed file
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(io, "_VTU_ROOT", b"<VTKFile other>")
        text = io.vtu_bytes(content)
    assert text.replace(io._field_data_xml(content["fields"], {
        "parameters_json": content["params_json"]}).encode() + b"\n", b"") == (
        tmp_path / "ref.vtu").read_bytes()


def test_export_computes_the_flux_when_not_given(tmp_path, sols):
    sol = sols[2]
    g = read_vtu(fp.export_vtk(sol, tmp_path / "auto.vtu"))
    pd = arrays(g.GetPointData())
    np.testing.assert_allclose(pd["J"][:, :2], fp.flux(sol).J.T)


@pytest.mark.filterwarnings("ignore:flux not resolved")
def test_pvd_series_reads_with_vtk(tmp_path, sols):
    series = sols["sweep"]
    sub = tmp_path / "cases"
    sub.mkdir()
    entries = []
    for sol in series:
        name = f"ds_{sol.diffusion.delta_s:.3f}.vtu"
        fp.export_vtk(sol, sub / name)
        entries.append((sol.diffusion.delta_s, f"cases/{name}"))
    pvd = tmp_path / "sweep.pvd"
    assert fp.write_pvd(pvd, entries) == str(pvd)
    root = ET.parse(pvd).getroot()
    assert root.tag == "VTKFile" and root.get("type") == "Collection"
    ds = root.find("Collection").findall("DataSet")
    assert [float(d.get("timestep")) for d in ds] == [0.009, 0.012]
    for d, sol in zip(ds, series):
        f = d.get("file")
        assert not os.path.isabs(f)
        r = vtk.vtkXMLGenericDataObjectReader()
        r.SetFileName(str(tmp_path / f))
        r.Update()
        g = r.GetOutput()
        assert g.IsA("vtkUnstructuredGrid") and g.GetCellType(0) == 22
        P = g.GetPointData().GetArray("P")
        J = g.GetPointData().GetArray("J")
        assert P.GetNumberOfComponents() == 1 and J.GetNumberOfComponents() == 3
        assert np.all(np.isfinite(vtk_to_numpy(P))) and np.all(np.isfinite(vtk_to_numpy(J)))
        assert vtk_to_numpy(g.GetFieldData().GetArray("strength"))[0] == sol.diffusion.delta_s
    # absolute paths and paths relative to the working directory are stored relative
    absolute = [(t, str(tmp_path / f)) for t, f in entries]
    fp.write_pvd(tmp_path / "abs.pvd", absolute)
    files = [d.get("file") for d in ET.parse(tmp_path / "abs.pvd").getroot().iter("DataSet")]
    assert files == [f for _, f in entries]


def test_io_argument_errors(tmp_path, sols):
    sol = sols[1]
    with pytest.raises(ValueError, match="path"):
        fp.export_vtk(sol, tmp_path / "out.vtk")
    with pytest.raises(FileNotFoundError, match="path"):
        fp.export_vtk(sol, tmp_path / "missing" / "out.vtu")
    with pytest.raises(TypeError, match="sol"):
        fp.export_vtk("x", tmp_path / "out.vtu")
    with pytest.raises(ValueError, match="flux"):
        fp.export_vtk(sol, tmp_path / "out.vtu", flux=fp.flux(sols[2]))
    with pytest.raises(FileNotFoundError, match=r"entries\[0\]"):
        fp.write_pvd(tmp_path / "s.pvd", [(0.1, "nope.vtu")])
    good = fp.export_vtk(sol, tmp_path / "a.vtu", flux=False)
    with pytest.raises(ValueError, match="duplicate"):
        fp.write_pvd(tmp_path / "s.pvd", [(0.1, good), (0.1, good)])
    with pytest.raises(ValueError, match=r"entries\[0\]"):
        fp.write_pvd(tmp_path / "s.pvd", [("x", good)])
    with pytest.raises(ValueError, match="entries"):
        fp.write_pvd(tmp_path / "s.pvd", [])
    assert not (tmp_path / "s.pvd").exists()


PVPYTHON = shutil.which("pvpython")


def run_pvpython(script):
    """Run ``script`` offscreen with pvpython; (its JSON after "RESULT", the process)."""
    res = subprocess.run([PVPYTHON, "--force-offscreen-rendering", str(script)],
                         capture_output=True, text=True, timeout=240)
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")]
    assert line, res.stdout[-2000:] + res.stderr[-2000:]
    return json.loads(line[0][6:]), res


@pytest.mark.skipif(PVPYTHON is None, reason="ParaView's pvpython is not installed")
@pytest.mark.filterwarnings("ignore:flux not resolved")
def test_pvd_series_opens_in_paraview(tmp_path, sols):
    """The real ParaView reader (vtkPVDReader) and the filters docs/flux.md recommends."""
    entries = []
    for sol in sols["sweep"]:
        name = f"ds_{sol.diffusion.delta_s:.3f}.vtu"
        fp.export_vtk(sol, tmp_path / name)
        entries.append((sol.diffusion.delta_s, name))
    fp.write_pvd(tmp_path / "sweep.pvd", entries)
    script = tmp_path / "check.py"
    script.write_text(f"""
import json
from paraview.simple import PVDReader, StreamTracer, Tessellate
from paraview import servermanager as sm
r = PVDReader(FileName={str(tmp_path / "sweep.pvd")!r})
r.UpdatePipelineInformation()
out = {{"times": list(r.TimestepValues), "steps": []}}
for t in r.TimestepValues:
    r.UpdatePipeline(t)
    d = sm.Fetch(r)
    pd = d.GetPointData()
    out["steps"].append({{"type": d.GetCellType(0), "n": d.GetNumberOfPoints(),
        "arrays": {{pd.GetArrayName(i): pd.GetArray(i).GetNumberOfComponents()
                    for i in range(pd.GetNumberOfArrays())}},
        "strength": d.GetFieldData().GetArray("strength").GetValue(0)}})
st = StreamTracer(Input=r, SeedType="Line")
st.Vectors = ["POINTS", "J"]
st.IntegrationDirection = "BOTH"
st.MaximumStreamlineLength = 3.0
st.SeedType.Resolution = 10
st.SeedType.Point1 = [0.2, 0.3, 0.0]
st.SeedType.Point2 = [0.7, 0.3, 0.0]
st.UpdatePipeline(0.012)
out["stream_points"] = sm.Fetch(st).GetNumberOfPoints()
te = Tessellate(Input=r)
te.UpdatePipeline(0.012)
out["tess_arrays"] = sm.Fetch(te).GetPointData().GetNumberOfArrays()
print("RESULT" + json.dumps(out))
""")
    out, res = run_pvpython(script)
    assert out["times"] == [0.009, 0.012]
    for step, sol in zip(out["steps"], sols["sweep"]):
        assert step["type"] == 22 and step["n"] == sol.basis.N
        assert step["arrays"]["P"] == 1 and step["arrays"]["J"] == 3
        assert step["strength"] == sol.diffusion.delta_s
    assert out["stream_points"] > 100
    assert out["tess_arrays"] == len(out["steps"][0]["arrays"])     # no field dropped
    assert "ERR" not in res.stderr, res.stderr[-2000:]


@pytest.mark.skipif(PVPYTHON is None, reason="ParaView's pvpython is not installed")
def test_p3_file_opens_in_paraview(tmp_path, sols):
    """What a user does with a P3 export: open it, look at P, integrate it."""
    sol = sols[3]
    path = fp.export_vtk(sol, tmp_path / "p3.vtu")
    script = tmp_path / "check.py"
    script.write_text(f"""
import json
from paraview.simple import OpenDataFile, IntegrateVariables, Tessellate
from paraview import servermanager as sm
r = OpenDataFile({str(path)!r})
r.UpdatePipeline()
d = sm.Fetch(r)
out = {{"types": sorted({{d.GetCellType(i) for i in range(d.GetNumberOfCells())}}),
        "n": d.GetNumberOfPoints(), "cells": d.GetNumberOfCells(),
        "P_range": list(r.PointData["P"].GetRange()),
        "arrays": sorted(r.PointData.keys())}}
iv = IntegrateVariables(Input=r)
iv.UpdatePipeline()
o = sm.Fetch(iv)
out["int_P"] = o.GetPointData().GetArray("P").GetValue(0)
out["area"] = o.GetCellData().GetArray("Area").GetValue(0)
te = Tessellate(Input=r)
te.UpdatePipeline()
out["tess_arrays"] = sorted(sm.Fetch(te).GetPointData().GetArrayName(i)
                            for i in range(sm.Fetch(te).GetPointData().GetNumberOfArrays()))
print("RESULT" + json.dumps(out))
""")
    out, res = run_pvpython(script)
    assert out["types"] == [69]
    assert out["n"] == sol.basis.N and out["cells"] == sol.mesh.nelements
    assert out["P_range"] == [sol.P.min(), sol.P.max()]
    assert out["arrays"] == sorted(["P", "J", "J_magnitude", "psi", "phi", "L",
                                    "D11", "D12", "D22"])
    # IntegrateVariables splits each cubic cell into linear sub-triangles through its
    # nodes (measured: |∫P − 1| ≈ 7e-8 and area within 1e-4 of πR² at h = 0.1)
    assert out["int_P"] == pytest.approx(1.0, abs=1e-5)
    assert out["area"] == pytest.approx(np.pi * 1.5 ** 2, rel=1e-3)
    assert out["tess_arrays"] == out["arrays"]                      # no field dropped
    assert "ERR" not in res.stderr, res.stderr[-2000:]
