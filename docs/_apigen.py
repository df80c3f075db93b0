"""Generate the API reference pages (``docs/api/*.rst``) from the packages' ``__all__``.

Every public module of fpsolve (no path component starting with ``_``, an ``__all__``)
gets one page.
Each name of its ``__all__`` is documented *once*, in full, on the page of the most
specific public module that exports it (``fpsolve.Solution`` and ``fpsolve.fe.Solution``
are documented at ``fpsolve.fe.solution.Solution``); the other pages list it with its
summary line under its own name (so ``fpsolve.Solution`` is in the inventory and a valid
cross-reference) and a link to the full entry.  A name
that is a module links to that module's page.

The pages are regenerated at every build (they are not committed: ``docs/api/`` is in
``.gitignore``), so a name added to an ``__all__`` is in the reference without an edit
here.  ``docs/check_site.py`` checks the built inventory against the ``__all__`` lists.
"""
from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import types

#: sections of the reference, in the order of the layers (docs/architecture.md); a
#: module goes to the section of the package it is in (the facade: ``fpsolve`` alone)
SECTIONS = [
    ("The ``fpsolve`` facade", ["fpsolve"]),
    ("Models", ["fpsolve.models"]),
    ("Theory", ["fpsolve.theory"]),
    ("Finite elements", ["fpsolve.fe"]),
    ("Stochastic simulation", ["fpsolve.stochastic"]),
    ("Variance–flatness and the cross-check", ["fpsolve.vf", "fpsolve.compare"]),
    ("Input/output, figures and notebook display",
     ["fpsolve.io", "fpsolve.plot", "fpsolve.display"]),
    ("Studies and the command line", ["fpsolve.study", "fpsolve.cli"]),
]


def public_modules(package: str = "fpsolve") -> list[str]:
    """Dotted names of the public modules and packages of ``package`` (itself included).

    Public: no path component starts with ``_`` and the module declares ``__all__``.
    A module without ``__all__`` is an implementation module; the names it defines
    are public where a package's ``__all__`` re-exports them (e.g. the modules of
    ``fpsolve.study.schema``).
    """
    pkg = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, package + "."):
        if not any(p.startswith("_") for p in info.name.split(".")):
            if hasattr(importlib.import_module(info.name), "__all__"):
                names.append(info.name)
    return sorted(names)


def exported(modname: str) -> list[str]:
    """The module's ``__all__`` (every public module must have one)."""
    mod = importlib.import_module(modname)
    names = getattr(mod, "__all__", None)
    if names is None:
        raise RuntimeError(f"{modname}: no __all__ (the API reference lists __all__)")
    return list(names)


def homes(modules: list[str]) -> dict:
    """``{id(obj): module}``: where each exported object is documented in full.

    The most specific (longest dotted name) module whose ``__all__`` holds the object.
    """
    home = {}
    for modname in sorted(modules, key=lambda m: (m.count("."), m)):
        mod = importlib.import_module(modname)
        for name in exported(modname):
            obj = getattr(mod, name)
            if not isinstance(obj, types.ModuleType) and _identity(obj) is not None:
                home[_identity(obj)] = (modname, name)
    return home


def _identity(obj):
    # plain values (ints, strings, tuples) are shared by identity only by accident:
    # only functions and classes are de-duplicated across pages
    if inspect.isclass(obj) or inspect.isroutine(obj):
        return id(obj)
    return None


def _kind(obj) -> str:
    if inspect.isclass(obj):
        return "class"
    if inspect.isroutine(obj) or callable(obj) and not isinstance(obj, types.ModuleType):
        return "function"
    return "data"


def _summary(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    first = doc.strip().split("\n\n")[0].replace("\n", " ").strip()
    return first


def _escape(text: str) -> str:
    from _docstrings import escape_line
    return escape_line(text)


def _title(text: str, ch: str = "=") -> list[str]:
    return [text, ch * len(text), ""]


def module_page(modname: str, home: dict) -> str:
    """reST source of the page of one module."""
    mod = importlib.import_module(modname)
    lines = _title(f"``{modname}``")
    lines += [f".. automodule:: {modname}", "   :no-members:", ""]
    full, elsewhere, modules = [], [], []
    for name in exported(modname):
        obj = getattr(mod, name)
        if isinstance(obj, types.ModuleType):
            modules.append((name, obj.__name__))
        elif home.get(_identity(obj), (modname, name)) == (modname, name):
            full.append((name, obj))
        else:
            elsewhere.append((name, obj, home[_identity(obj)]))
    if modules:
        lines += _title("Modules", "-")
        for name, target in modules:
            alias = "" if target == f"{modname}.{name}" else f" (``{modname}.{name}``)"
            lines.append(f"* :mod:`{target}`{alias}")
        lines.append("")
    if elsewhere:
        lines += _title("Re-exported here", "-")
        for name, obj, (hmod, hname) in elsewhere:
            kind = _kind(obj)
            lines += [f".. py:{kind}:: {name}", f"   :module: {modname}", "",
                      f"   {_escape(_summary(obj))}", "",
                      f"   Documented at :py:{_role(kind)}:`{hmod}.{hname}`.", ""]
    if full:
        lines += _title("Contents", "-")
        for name, obj in full:
            lines += [f".. auto{_kind(obj)}:: {modname}.{name}", ""]
    return "\n".join(lines) + "\n"


def _role(kind: str) -> str:
    return {"class": "class", "function": "func", "data": "data"}[kind]


def index_page(modules: list[str]) -> str:
    lines = _title("API reference")
    lines += ["Every name of every public ``__all__``, one page per module, generated from",
              "the docstrings (numpydoc).  Objects are documented in full where they are",
              "defined; the facade ``fpsolve`` and the subpackages list what they re-export.",
              ""]
    placed = set()
    for title, roots in SECTIONS:
        mods = [m for m in modules if m not in placed and any(
            m == r or (r != "fpsolve" and m.startswith(r + ".")) for r in roots)]
        placed.update(mods)
        lines += _title(title, "-")
        lines += [".. toctree::", "   :maxdepth: 1", ""]
        lines += [f"   {m}" for m in mods] + [""]
    missing = sorted(set(modules) - placed)
    if missing:
        raise RuntimeError(f"docs/_apigen.py: modules without a section: {missing}")
    return "\n".join(lines) + "\n"


def _write(path: str, text: str) -> None:
    # rewrite only on change: Sphinx then re-reads only the pages that changed
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def generate(outdir: str) -> list[str]:
    """Write ``index.rst`` and one page per public module to ``outdir``; return the modules."""
    os.makedirs(outdir, exist_ok=True)
    modules = public_modules()
    home = homes(modules)
    pages = {f"{m}.rst": module_page(m, home) for m in modules}
    pages["index.rst"] = index_page(modules)
    for stale in set(os.listdir(outdir)) - set(pages):
        if stale.endswith(".rst"):
            os.remove(os.path.join(outdir, stale))
    for name, text in pages.items():
        _write(os.path.join(outdir, name), text)
    return modules
