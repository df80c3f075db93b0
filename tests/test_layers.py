"""The dependency rule between layers (docs/architecture.md), read from the imports.

Every module of fpsolve belongs to a layer; a module may import from its own layer
package and from layers of lower rank, never upwards or sideways.  Imports inside
functions count too: a lazy import is still a dependency.
"""
import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "fpsolve"

#: top-level component of fpsolve -> rank; equal ranks may not import each other
RANK = {
    "_args": 0, "_blas": 0, "_json": 0, "_moved": 0, "_display": 0, "_streamlines": 0,
    "models": 1,
    "theory": 2,
    "fe": 3, "stochastic": 3,
    "vf": 4, "compare": 4,
    "io": 5, "plot": 5,
    "study": 6, "display": 6,
    "cli": 7,
}
#: the package facade and ``python -m fpsolve`` may import anything
FACADE = {"__init__", "__main__"}


def _component(parts: list[str]) -> str:
    return parts[0].removesuffix(".py")


def _imports(path: pathlib.Path):
    """(line, imported component) for every fpsolve import in one file."""
    rel = path.relative_to(PKG).with_suffix("").parts
    package = list(rel[:-1]) if rel[-1] != "__init__" else list(rel[:-1])
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
                if not target:       # from . import x (top level): x is the component
                    for alias in node.names:
                        yield node.lineno, alias.name
                    continue
            elif node.module and node.module.split(".")[0] == "fpsolve":
                target = node.module.split(".")[1:]
                if not target:
                    for alias in node.names:
                        yield node.lineno, alias.name
                    continue
            else:
                continue
            yield node.lineno, target[0]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "fpsolve" and len(parts) > 1:
                    yield node.lineno, parts[1]


def _modules():
    return sorted(p for p in PKG.rglob("*.py"))


def test_every_component_has_a_layer():
    comps = {_component(p.relative_to(PKG).parts) for p in _modules()} - FACADE
    assert comps <= set(RANK), f"modules without a layer in RANK: {sorted(comps - set(RANK))}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down(path):
    own = _component(path.relative_to(PKG).parts)
    if own in FACADE:
        return
    bad = [f"line {line}: imports fpsolve.{comp}" for line, comp in _imports(path)
           if comp != own and comp in RANK and RANK[comp] >= RANK[own]]
    assert not bad, f"{path.relative_to(PKG)} ({own}, rank {RANK[own]}) " + "; ".join(bad)


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
    """The checker itself: a model importing the FE core is reported."""
    fake = tmp_path / "fpsolve" / "models"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("from ..fe.mesh import Mesh\nfrom . import landscapes\n")
    monkeypatch.setattr(__import__(__name__), "PKG", tmp_path / "fpsolve")
    assert [c for _, c in _imports(fake / "bad.py")] == ["fe", "models"]
    with pytest.raises(AssertionError, match="imports fpsolve.fe"):
        test_imports_point_down(fake / "bad.py")


def test_old_paths_name_the_new_ones():
    import importlib
    import sys
    import warnings

    import fpsolve as fp
    sys.modules.pop("fpsolve.fem", None)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        old = importlib.import_module("fpsolve.fem")
    assert old is importlib.import_module("fpsolve.fe.assembly")
    assert any("fpsolve.fe.assembly" in str(x.message) for x in w)
    assert old.__spec__.name == "fpsolve.fe.assembly"
    with pytest.warns(DeprecationWarning, match="fpsolve.fe.mesh"):
        assert fp.mesh is importlib.import_module("fpsolve.fe.mesh")
    # fp.solve stays the function and fp.flux the callable module
    import fpsolve.solve  # noqa: F401
    import fpsolve.flux  # noqa: F401
    assert callable(fp.solve) and fp.solve.__name__ == "solve"
    assert fp.flux.__name__ == "fpsolve.fe.flux"
