"""Make the meshes shipped in meshes/ (run from anywhere: python meshes/make_meshes.py).

disk_r2.msh  disk of radius 2 (the paper's domain), quasi-uniform, h = 0.1:
             1.5k vertices, 5.9k P2 dofs.  Coarse on purpose: studies/ou.toml and
             the tests use it; studies that need resolution generate their mesh
             ([mesh] radius, h) instead.

The files are gmsh 4.1 (written by meshio through fpsolve.Mesh.save) and are read
back with fpsolve.load_mesh, which recognises the disk (all boundary vertices on
one circle) and gives P2 solves curved boundary elements.
"""
import os
import sys

import fpsolve as fp

HERE = os.path.dirname(os.path.abspath(__file__))

MESHES = {
    "disk_r2.msh": dict(radius=2.0, h=0.1),
}


def main() -> int:
    for name, kw in MESHES.items():
        path = os.path.join(HERE, name)
        mesh = fp.disk_mesh(**kw)
        mesh.save(path)
        back = fp.load_mesh(path)
        if back.nvertices != mesh.nvertices or back.radius is None:
            print(f"{name}: read-back check failed ({back})", file=sys.stderr)
            return 1
        print(f"{name}: {back}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
