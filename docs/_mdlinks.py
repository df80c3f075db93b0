"""Links from the Markdown chapters to repository files outside ``docs/``.

The chapters are read on GitHub too, where ``[bench/solve.py](../bench/solve.py)`` opens
the file.  On the site MyST turns a link to an existing file into a download of that
file, except for two cases that :func:`rewrite` handles in the text Sphinx reads (the
files themselves are not changed):

* a Markdown file outside ``docs/`` (``../README.md``): MyST would look for a document
  of the site and fail; it becomes a download (``path:`` link) like any other file;
* a directory (``../studies/``): MyST would resolve it to a *page* of the same name
  (``docs/studies.md``), a different target; it becomes the link text followed by the
  directory name as code, since a site cannot link to a repository directory.

Fenced code blocks are left alone.
"""
from __future__ import annotations

import os
import re

_LINK = re.compile(r"(?<!!)\[([^\]\n]*)\]\((\.\./[^)\s#]*)(#[^)\s]*)?\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)


def _one(m, docdir: str) -> str:
    text, target = m.group(1), m.group(2)
    path = os.path.normpath(os.path.join(docdir, target))
    if os.path.isdir(path) or target.endswith("/"):
        shown = os.path.relpath(path, os.path.dirname(docdir)).replace(os.sep, "/") + "/"
        return f"{text} (`{shown}`)" if text.strip("`") != shown else f"`{shown}`"
    if target.endswith(".md"):
        return f"[{text}](path:{target})"
    return m.group(0)


def rewrite(text: str, docdir: str) -> str:
    """``text`` of a Markdown page in ``docdir`` with the links above rewritten."""
    out, pos = [], 0
    for f in _FENCE.finditer(text):
        out.append(_LINK.sub(lambda m: _one(m, docdir), text[pos:f.start()]))
        out.append(f.group(0))
        pos = f.end()
    out.append(_LINK.sub(lambda m: _one(m, docdir), text[pos:]))
    return "".join(out)
