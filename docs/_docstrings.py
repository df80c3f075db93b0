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


def process_docstring(app, what, name, obj, options, lines):
    """``autodoc-process-docstring`` handler: escape in place."""
    lines[:] = escape(lines)
