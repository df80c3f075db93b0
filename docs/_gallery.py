"""sphinx-gallery image scraper for the Figures that fpsolve's objects return.

``sol.plot()``, ``flux.plot()``, ``result.plot()`` and ``fpsolve.display.plot_*``
return :class:`matplotlib.figure.Figure` objects made without pyplot, which the
default scraper (``plt.get_fignums()``) does not see.  This one saves every Figure
that an example block left in a global variable or as its last expression (the value
sphinx-gallery keeps in ``___``), once.
"""
from __future__ import annotations

from pathlib import PurePosixPath


def _figures(values):
    from matplotlib.figure import Figure
    for v in values:
        items = v if isinstance(v, (list, tuple)) else (v,)
        for f in items:
            if isinstance(f, Figure) and not getattr(f, "_fpsolve_scraped", False):
                yield f


def figure_scraper(block, block_vars, gallery_conf, **kwargs):
    """Save the block's new Figures as PNG and return their reST."""
    from sphinx_gallery.scrapers import figure_rst

    figs = list(dict.fromkeys(_figures(block_vars["example_globals"].values())))
    paths = []
    for fig, path in zip(figs, block_vars["image_path_iterator"]):
        fig.savefig(path, dpi=110)
        fig._fpsolve_scraped = True
        paths.append(PurePosixPath(path))
    if not paths:
        return ""
    rst = figure_rst(paths, gallery_conf["src_dir"])
    if len(paths) > 1:
        rst = rst.replace("sphx-glr-single-img", "sphx-glr-multi-img")
    return rst
