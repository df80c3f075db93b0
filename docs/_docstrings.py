"""Read fpsolve's docstrings as what they are: numpydoc with plain-text mathematics.

The docstrings are written for ``help()`` as much as for the site, so they use ``|x|``
for an absolute value and ``*`` as a product or a starred symbol (``Δ_S*``,
``(2, 2, *x.shape)``).  In reStructuredText ``|x|`` is a substitution reference and a
lone ``*`` opens an emphasis, both errors under ``-W``.  :func:`escape` backslash-escapes
those characters before numpydoc parses the docstring, outside inline literals and roles
(`` ``...`` ``, `` :math:`...` ``), doctest lines and indented literal or directive
blocks; well-formed ``*emphasis*`` and ``**strong**`` are kept.
"""
from __future__ import annotations

import re

_TICKS = re.compile(r"(:?[\w:+-]*`+[^`]*`+_?_?)")        # roles, ``literals``, `refs`_
_EMPH = re.compile(r"(?<![\w*\\])(\*\*?)(?=\S)([^*\n]*?\S)\1(?![\w*])")
_MARK = "\x00"


def _escape_text(text: str) -> str:
    """Escape ``|`` and stray ``*`` in text without backticks."""
    keep = []

    def stash(m):
        keep.append(m.group(0))
        return f"{_MARK}{len(keep) - 1}{_MARK}"

    text = _EMPH.sub(stash, text)
    text = re.sub(r"(?<!\\)([|*])", r"\\\1", text)
    return re.sub(f"{_MARK}(\\d+){_MARK}", lambda m: keep[int(m.group(1))], text)


def escape_line(line: str) -> str:
    bullet = re.match(r"\s*[*-] ", line)          # a list item's marker stays
    if bullet:
        return bullet.group(0) + escape_line(line[bullet.end():])
    parts = _TICKS.split(line)
    return "".join(p if i % 2 else _escape_text(p) for i, p in enumerate(parts))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def escape(lines: list[str]) -> list[str]:
    """The docstring ``lines`` with ``|`` and stray ``*`` escaped (see module doc)."""
    out = []
    block = None            # indentation of the line that opened a literal/directive block
    doctest = False
    for line in lines:
        stripped = line.strip()
        if block is not None:
            if not stripped or _indent(line) > block:
                out.append(line)
                continue
            block = None
        if stripped.startswith(">>>") or (doctest and stripped.startswith("...")):
            doctest = True
            out.append(line)
            continue
        if doctest and stripped:
            out.append(line)         # doctest output lines, up to the next blank line
            continue
        doctest = False
        out.append(escape_line(line))
        if stripped.endswith("::") or stripped.startswith(".. "):
            block = _indent(line)
    return out


_RELATIVE = re.compile(r"(:(?:py:)?(?:mod|func|class|meth|attr|data|obj|exc):`)~?\.([\w.]+)`")


def _exists(dotted: str) -> bool:
    import importlib
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for p in parts[i:]:
                obj = getattr(obj, p)
        except AttributeError:
            return False
        return True
    return False


def resolve_relative(lines: list[str], package: str) -> list[str]:
    """``:mod:`.spectrum``` -> ``:mod:`~<package>.spectrum``` where that exists.

    Sphinx resolves a leading dot by suffix search over the whole project, which is
    ambiguous as soon as two subpackages have a module of the same name
    (``fpsolve.fe.spectrum``, ``fpsolve.vf.spectrum``); the docstrings mean the
    sibling in their own package.
    """
    def sub(m):
        full = f"{package}.{m.group(2)}"
        return f"{m.group(1)}~{full}`" if _exists(full) else m.group(0)
    return [_RELATIVE.sub(sub, line) for line in lines]


def _package(what: str, name: str, obj) -> str:
    if what == "module":
        return name if hasattr(obj, "__path__") else name.rpartition(".")[0]
    module = getattr(obj, "__module__", None) or name.rpartition(".")[0]
    return module.rpartition(".")[0]


def process_docstring(app, what, name, obj, options, lines):
    """``autodoc-process-docstring`` handler: escape and resolve in place."""
    lines[:] = resolve_relative(escape(lines), _package(what, name, obj))
