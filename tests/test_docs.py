"""The documentation site's sources: the API reference covers every public name, and
docstrings' plain-text mathematics is escaped for reST without changing its meaning.

The Sphinx build itself (``-W``, the executed gallery, links, the inventory) runs in the
docs step of ``.ci/run`` (``docs/check_site.py``); these tests need no Sphinx.
"""
import importlib
import pathlib
import re
import sys
import types

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
sys.path.insert(0, str(DOCS))

import _apigen  # noqa: E402
import _docstrings  # noqa: E402


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    _apigen.generate(str(out))
    return {p.stem: p.read_text() for p in out.glob("*.rst")}


def _entries(text: str, modname: str) -> set:
    """Names documented on a page: autodoc entries and re-export entries."""
    full = set(re.findall(rf"^\.\. auto\w+:: {re.escape(modname)}\.(\w+)$", text, re.M))
    short = set(re.findall(rf"^\.\. py:\w+:: (\w+)\n   :module: {re.escape(modname)}$",
                           text, re.M))
    mods = set(re.findall(r"^\* :mod:`([\w.]+)`", text, re.M))
    return full | short | mods


def test_every_public_module_has_a_page_in_the_index(pages):
    modules = _apigen.public_modules()
    assert {"fpsolve", "fpsolve.fe", "fpsolve.models", "fpsolve.stochastic",
            "fpsolve.theory", "fpsolve.compare", "fpsolve.vf", "fpsolve.study",
            "fpsolve.io", "fpsolve.plot", "fpsolve.fe.flux",
            "fpsolve.stochastic.montecarlo"} <= set(modules)
    assert set(pages) == set(modules) | {"index"}
    listed = re.findall(r"^   (fpsolve[\w.]*)$", pages["index"], re.M)
    assert sorted(listed) == sorted(modules)          # each module once
    facade = pages["index"].split("Models")[0]
    assert re.findall(r"^   (fpsolve[\w.]*)$", facade, re.M) == ["fpsolve"]


@pytest.mark.parametrize("modname", _apigen.public_modules())
def test_every_name_of_all_is_in_the_reference(pages, modname):
    mod = importlib.import_module(modname)
    found = _entries(pages[modname], modname)
    for name in mod.__all__:
        obj = getattr(mod, name)
        key = obj.__name__ if isinstance(obj, types.ModuleType) else name
        assert key in found, f"{modname}.{name} missing from docs/api/{modname}.rst"


def test_facade_names_link_to_one_full_entry(pages):
    # fp.Solution is listed on the facade page and documented in full once, in fe.solution
    assert ".. autoclass:: fpsolve.fe.solution.Solution" in pages["fpsolve.fe.solution"]
    assert ".. autoclass::" not in pages["fpsolve"].split("Contents")[0]
    assert ":py:class:`fpsolve.fe.solution.Solution`" in pages["fpsolve"]
    assert sum(".. autoclass:: fpsolve.fe.solution.Solution\n" in t
               for t in pages.values()) == 1
    assert "* :mod:`fpsolve.models.landscapes` (``fpsolve.landscapes``)" in pages["fpsolve"]


def test_a_module_without_all_is_reported(monkeypatch):
    fake = types.ModuleType("fpsolve_fake_module")
    monkeypatch.setitem(sys.modules, "fpsolve_fake_module", fake)
    with pytest.raises(RuntimeError, match="fpsolve_fake_module: no __all__"):
        _apigen.exported("fpsolve_fake_module")


@pytest.mark.parametrize("text, expected", [
    ("the norm |J| of the flux", r"the norm \|J\| of the flux"),
    ("shape (2, 2, *x.shape).", r"shape (2, 2, \*x.shape)."),
    ("Δ_S*(coarse) − Δ_S*(fine)", r"Δ_S\*(coarse) − Δ_S\*(fine)"),
    ("the flux is *consistent* and **exact**", "the flux is *consistent* and **exact**"),
    ("``|x|`` and :math:`|x|^2` stay", "``|x|`` and :math:`|x|^2` stay"),
    ("* :mod:`~fpsolve.fe.mesh` — |x| bullets", r"* :mod:`~fpsolve.fe.mesh` — \|x\| bullets"),
    ("already \\|escaped\\|", "already \\|escaped\\|"),
])
def test_escape_line(text, expected):
    assert _docstrings.escape_line(text) == expected


def test_escape_leaves_doctests_and_literal_blocks_alone():
    lines = ["Example::", "", "    a = |x|", "", ">>> f(*args)", "... |y|", "out |z|", "",
             "after |w|"]
    assert _docstrings.escape(lines) == lines[:-1] + [r"after \|w\|"]


def test_relative_references_resolve_to_the_sibling_module():
    lines = ["see :mod:`.spectrum` and :class:`~.spectrum.PCAResult`, not :mod:`.nothing`"]
    assert _docstrings.resolve_relative(lines, "fpsolve.vf") == [
        "see :mod:`~fpsolve.vf.spectrum` and :class:`~fpsolve.vf.spectrum.PCAResult`, "
        "not :mod:`.nothing`"]
    assert _docstrings.resolve_relative([":mod:`.spectrum`"], "fpsolve.fe") == [
        ":mod:`~fpsolve.fe.spectrum`"]


def test_markdown_links_outside_docs_keep_their_target():
    import _mdlinks
    docdir = str(DOCS)
    text = ("[readme](../README.md) [studies](../studies/) [`studies/`](../studies/) "
            "[solve](../bench/solve.py#L3) [page](theory.md) ![img](../docs/figures/fig2.png)\n"
            "```\n[in code](../README.md)\n```\n")
    assert _mdlinks.rewrite(text, docdir) == (
        "[readme](path:../README.md) studies (`studies/`) `studies/` "
        "[solve](../bench/solve.py#L3) [page](theory.md) ![img](../docs/figures/fig2.png)\n"
        "```\n[in code](../README.md)\n```\n")
