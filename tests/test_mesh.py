"""Disk meshes: geometry, quality, grading, curved P2 boundary, file round trips."""
import numpy as np
import pytest

import fpsolve as fp
from fpsolve.fe.mesh import MeshError


@pytest.mark.parametrize("h", [0.2, 0.1, 0.05])
def test_disk_mesh_boundary_on_circle_and_quality(h):
    m = fp.disk_mesh(radius=2.0, h=h)
    bn = m.skfem.boundary_nodes()
    np.testing.assert_allclose(np.linalg.norm(m.p[:, bn], axis=0), 2.0, rtol=1e-14)
    q = m.quality()
    assert q["min_angle"] > 20.0
    assert 0.8 * h < q["h_mean"] < 1.2 * h
    # area of the inscribed polygon converges to the disk area at O(h²)
    area = np.sum(np.abs(fp.fe.mesh._signed_areas(m.p, m.t)))
    nb = len(bn)
    assert abs(area - 0.5 * nb * 4.0 * np.sin(2 * np.pi / nb)) < 1e-9


def test_curved_geometry_edge_nodes_preserve_each_segments_area():
    # the edge node sits on the chord's perpendicular bisector, just outside the circle
    # (by O(h^4/R^3)), where the quadratic edge encloses the circular segment's area
    m = fp.disk_mesh(radius=1.5, h=0.2, center=(0.3, -0.2))
    m2 = m.geometry(2)
    f = m2.boundary_facets()
    c = np.array([[0.3], [-0.2]])
    a, b = m2.p[:, m2.facets[0, f]] - c, m2.p[:, m2.facets[1, f]] - c
    x = m2.doflocs[:, m2.dofs.facet_dofs[0, f]] - c
    r = np.linalg.norm(x, axis=0)
    chord = np.linalg.norm(b - a, axis=0)
    assert np.all(r > 1.5) and np.all(r - 1.5 < chord ** 4 / (500 * 1.5 ** 3))   # 1/640
    np.testing.assert_allclose(np.linalg.norm(x - a, axis=0), np.linalg.norm(x - b, axis=0),
                               rtol=1e-12)
    assert m.geometry(1) is m.geometry(3)             # P1 too: the polygon's O(h^2) defect


def test_curved_geometry_has_the_disks_area():
    # the sagitta node (on the circle) leaves an O(h^4) area defect: -9.7e-6 at h = 0.2
    from skfem import Basis, ElementTriP2, Functional
    one = Functional(lambda w: 1.0 + 0 * w.x[0])
    for h in (0.4, 0.2, 0.1):
        for radius, center in ((1.0, (0.0, 0.0)), (2.0, (0.5, -1.0))):
            m = fp.disk_mesh(radius=radius, h=h, center=center)
            b = Basis(m.geometry(2), ElementTriP2(), intorder=4)
            assert one.assemble(b) == pytest.approx(np.pi * radius ** 2, rel=1e-13)


def test_area_preserving_edge_nodes_tiny_and_large_chords():
    # tiny chords (adaptive boundary layers reach h = 1e-6) keep the node at the
    # sagitta to relative accuracy, without the cancellation of θ − sin θ
    from fpsolve.fe.mesh import area_preserving_edge_nodes
    for theta in (1e-7, 1e-3, 0.09, 0.11, 1.0):
        a = np.array([[np.cos(theta / 2)], [-np.sin(theta / 2)]])
        b = np.array([[np.cos(theta / 2)], [np.sin(theta / 2)]])
        x = area_preserving_edge_nodes(a, b, 1.0)
        d = x[0, 0] - np.cos(theta / 2)                           # height above the chord
        segment = 0.5 * (theta - np.sin(theta)) if theta > 1e-2 else theta ** 3 / 12
        assert x[1, 0] == 0.0
        assert d == pytest.approx(1.5 * segment / (2 * np.sin(theta / 2)), rel=1e-10)


def test_band_grading_refines_the_valley():
    coarse = fp.disk_mesh(2.0, 0.2)
    graded = fp.disk_mesh(2.0, 0.2, band=0.5, band_levels=2)
    mid = graded.p[:, graded.t].mean(axis=1)
    le = np.linalg.norm(graded.p[:, graded.t[0]] - graded.p[:, graded.t[1]], axis=0)
    assert np.median(le[np.abs(mid[1]) < 0.3]) < 0.35 * np.median(le[np.abs(mid[1]) > 1.0])
    assert graded.nelements > coarse.nelements
    bn = graded.skfem.boundary_nodes()
    np.testing.assert_allclose(np.linalg.norm(graded.p[:, bn], axis=0), 2.0, rtol=1e-14)
    assert graded.quality()["min_angle"] > 15.0


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(radius=-1.0), "radius: expected a positive number"),
    (dict(radius=2.0, h=0.0), "h: expected 0 < h"),
    (dict(radius=2.0, h=1.5), "h: expected 0 < h"),
    (dict(center=(0.0,)), "center"),
    (dict(band=-1.0), "band"),
    (dict(band=1.0, band_levels=9), "band_levels"),
])
def test_disk_mesh_rejects_bad_arguments(kwargs, fragment):
    with pytest.raises(MeshError, match=fragment):
        fp.disk_mesh(**kwargs)


@pytest.mark.parametrize("suffix", [".msh", ".vtu", ".vtk"])
def test_save_load_round_trip_recognises_disk(tmp_path, suffix):
    m = fp.disk_mesh(radius=2.0, h=0.25)
    path = tmp_path / f"disk{suffix}"
    m.save(path)
    back = fp.load_mesh(path)
    np.testing.assert_allclose(back.p, m.p)
    np.testing.assert_array_equal(np.sort(back.t, axis=0), np.sort(m.t, axis=0))
    assert back.radius == pytest.approx(2.0)
    assert not list(tmp_path.glob("*.tmp-*"))


def test_load_non_disk_mesh(tmp_path):
    import meshio
    pts = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=float)
    meshio.write(tmp_path / "sq.vtu", meshio.Mesh(pts, [("triangle", np.array([[0, 1, 2], [0, 2, 3]]))]))
    m = fp.load_mesh(tmp_path / "sq.vtu")
    assert m.radius is None and m.nelements == 2


def test_load_mesh_errors_name_the_file(tmp_path):
    import meshio
    with pytest.raises(MeshError, match="missing.msh: mesh file not found"):
        fp.load_mesh(tmp_path / "missing.msh")
    bad = tmp_path / "garbage.msh"
    bad.write_text("this is not a mesh")
    with pytest.raises(MeshError, match="garbage.msh: not a readable mesh"):
        fp.load_mesh(bad)
    pts = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0]], dtype=float)
    meshio.write(tmp_path / "lines.vtu", meshio.Mesh(pts, [("line", np.array([[0, 1], [1, 2]]))]))
    with pytest.raises(MeshError, match="lines.vtu: no triangle cells"):
        fp.load_mesh(tmp_path / "lines.vtu")
    pts3 = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 1.0]])
    meshio.write(tmp_path / "bent.vtu", meshio.Mesh(pts3, [("triangle", np.array([[0, 1, 2]]))]))
    with pytest.raises(MeshError, match="bent.vtu: mesh is not planar"):
        fp.load_mesh(tmp_path / "bent.vtu")
    flat = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]], dtype=float)
    meshio.write(tmp_path / "flat.vtu", meshio.Mesh(flat, [("triangle", np.array([[0, 1, 2]]))]))
    with pytest.raises(MeshError, match="degenerate"):
        fp.load_mesh(tmp_path / "flat.vtu")


@pytest.mark.parametrize("order", [2, 3])
def test_locate_in_curved_elements_inverts_the_map_and_rejects_outside(order):
    # points mapped from reference coordinates of the curved boundary elements must be
    # found in their element with those coordinates; points beyond the circle are outside
    from fpsolve.fe.assembly import _curved, locate, make_basis
    mesh = fp.disk_mesh(1.0, 0.3)
    basis = make_basis(mesh, order)
    cells = np.flatnonzero(_curved(basis.mesh))
    rng = np.random.default_rng(3)
    a, b = rng.random((2, cells.size)) * 0.5 + 0.05           # inside the reference triangle
    X = np.stack([a, b * (1 - a)])
    pts = basis.mapping.F(X[:, :, None], tind=cells)[:, :, 0]
    found, Xf = locate(basis, pts)
    assert np.array_equal(found, cells)
    np.testing.assert_allclose(Xf, X, atol=1e-10)
    th = np.linspace(0.0, 2 * np.pi, 400, endpoint=False)
    for r in (1.0 + 1e-4, 1.001, 1.5):     # the edges bulge out by < 1e-4 at h = 0.3
        out, _ = locate(basis, np.stack([r * np.cos(th), r * np.sin(th)]))
        assert np.all(out == -1)
    inner, _ = locate(basis, np.stack([0.999 * np.cos(th), 0.999 * np.sin(th)]))
    assert np.all(inner >= 0)


def test_a_disk_with_rounded_coordinates_is_still_a_disk(tmp_path):
    """A disk written with 5 significant digits (1e-5 off the circle) was taken for a
    polygon: straight P2/P3 edges, an O(h^2) geometry error no estimate sees (redteam
    F10).  Now its boundary vertices are moved onto the fitted circle, with a warning."""
    import meshio
    m = fp.disk_mesh(1.0, 0.1)
    pts = np.array([float(f"{v:.5g}") for v in m.p.ravel()]).reshape(m.p.shape)
    path = tmp_path / "disk5.msh"
    meshio.write(path, meshio.Mesh(np.column_stack([pts.T, np.zeros(pts.shape[1])]),
                                   [("triangle", m.t.T)]), file_format="gmsh22", binary=False)
    with pytest.warns(fp.FPSolveWarning, match="moved onto it"):
        loaded = fp.load_mesh(path)
    assert loaded.radius == pytest.approx(1.0, rel=1e-5)
    r = np.linalg.norm(loaded.p[:, loaded.boundary_vertices()] - np.array(loaded.center)[:, None],
                       axis=0)
    np.testing.assert_allclose(r, loaded.radius, rtol=1e-14)
    # far from a circle (a square's corners) stays a polygon
    sq = fp.load_mesh(_square_file(tmp_path))
    assert sq.radius is None


def _square_file(tmp_path):
    import meshio
    from skfem import MeshTri
    m = MeshTri.init_sqsymmetric().refined(2)
    path = tmp_path / "square.msh"
    meshio.write(path, meshio.Mesh(np.column_stack([m.p.T, np.zeros(m.p.shape[1])]),
                                   [("triangle", m.t.T)]), file_format="gmsh22", binary=False)
    return path
