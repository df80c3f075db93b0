"""Sphinx configuration of the fpsolve documentation site.

Build (``pip install -e ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

* The Markdown pages of ``docs/`` are chapters as they are (MyST); they stay plain
  GitHub Markdown.  Links from them to repository files outside ``docs/`` (scripts in
  ``bench/``, studies, ...) become download links of those files.
* ``docs/api/`` is generated at every build from the packages' ``__all__``
  (``docs/_apigen.py``), so every public name is in the reference.
* ``examples/*.py`` are executed by sphinx-gallery into ``docs/auto_examples/``.
  ``FPSOLVE_DOCS_SMALL=1`` (the CI setting) runs them on coarser meshes and fewer
  walkers; every example still runs and draws its figures.
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import fpsolve  # noqa: E402
import _apigen  # noqa: E402
import _docstrings  # noqa: E402
import _mdlinks  # noqa: E402

_apigen.generate(os.path.join(HERE, "api"))

project = "fpsolve"
author = "the fpsolve authors"
copyright = "the fpsolve authors"
version = release = fpsolve.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# index.rst lists the chapters in reading order; a docs/*.md page it does not list yet
# is appended as a chapter (_new_chapters), so a new page never breaks the build
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "sg_execution_times.rst", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip", "auto_examples/*.json",
                    "auto_examples/*.md5", "auto_examples/*.codeobj.json"]

# -- MyST: the Markdown chapters -------------------------------------------------------
myst_heading_anchors = 4           # [..](studies.md#key-reference) resolves
myst_enable_extensions = ["dollarmath"]
# The chapters are GitHub Markdown, where a skipped heading level (## then ####) is
# legal; the site renders them unchanged.
suppress_warnings = ["myst.header"]

# -- autodoc / numpydoc ----------------------------------------------------------------
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"          # numpydoc's Parameters sections carry the types
autoclass_content = "class"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()
# re-exported names link to their full entry, not to a second copy of the source
viewcode_follow_imported_members = False

# -- sphinx-gallery --------------------------------------------------------------------
def _gallery_mode_changed(gallery: str) -> None:
    """Re-run every example when FPSOLVE_DOCS_SMALL differs from the last build's.

    sphinx-gallery re-runs an example only when its source changed (MD5), so the
    figures of a small-mesh build would otherwise survive a full build, and vice versa.
    """
    mode = "small" if os.environ.get("FPSOLVE_DOCS_SMALL") == "1" else "full"
    stamp = os.path.join(gallery, ".fpsolve_mode")
    old = open(stamp).read() if os.path.exists(stamp) else None
    if old != mode and os.path.isdir(gallery):
        for f in os.listdir(gallery):
            if f.endswith(".md5"):
                os.remove(os.path.join(gallery, f))
    os.makedirs(gallery, exist_ok=True)
    with open(stamp, "w") as f:
        f.write(mode)


_gallery_mode_changed(os.path.join(HERE, "auto_examples"))
sphinx_gallery_conf = {
    "examples_dirs": os.path.join(ROOT, "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"\.py$",          # execute every example, none silently skipped
    "ignore_pattern": r"/_",               # helpers starting with _ are not examples
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "plot_gallery": "True",
    "matplotlib_animations": False,
    # pyplot figures, and the Figures that sol.plot() & co. return (docs/_gallery.py)
    "image_scrapers": ("matplotlib", "_gallery.figure_scraper"),
    "ignore_repr_types": r"matplotlib\.",      # figures, legends, artists: not text output
    "reset_modules": ("matplotlib",),
    "min_reported_time": 1,
    "write_computation_times": False,
}

# -- HTML ------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"fpsolve {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path = []
html_show_sourcelink = False


def _repo_links(app, docname, source):
    """Links of the Markdown chapters to README.md or directories (docs/_mdlinks.py)."""
    if str(app.env.doc2path(docname)).endswith(".md"):
        source[0] = _mdlinks.rewrite(source[0], HERE)


def _new_chapters(app, docname, source):
    """Append the Markdown pages that index.rst does not list to its toctree."""
    if docname != root_doc:
        return
    listed = set(re.findall(r"^   ([\w/]+)$", source[0], re.M))
    new = sorted(f[:-3] for f in os.listdir(HERE) if f.endswith(".md") and f[:-3] not in listed)
    if new:
        source[0] += ("\n.. toctree::\n   :caption: More chapters\n   :maxdepth: 1\n\n"
                      + "".join(f"   {d}\n" for d in new))


def _reread_index(app, env, added, changed, removed):
    # a page added or removed changes the index's toctree (incremental builds)
    return [root_doc] if added or removed else []


def setup(app):
    app.connect("source-read", _new_chapters)
    app.connect("source-read", _repo_links)
    app.connect("env-get-outdated", _reread_index)
    # before numpydoc (priority 500): plain-text |x| and * are not reST markup
    app.connect("autodoc-process-docstring", _docstrings.process_docstring, priority=400)
