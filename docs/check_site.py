"""Check a built documentation site: API coverage and internal links.

    python docs/check_site.py [docs/_build/html]

* **API coverage.** Every name of every public module's ``__all__`` is in the site's
  inventory (``objects.inv``) as ``module.name`` (a name that is a module: its module
  page), so it has an entry in the API reference.
* **Internal links.** Every relative ``href``/``src`` of every HTML page points to a file
  of the site, and every ``#fragment`` to an ``id`` on the target page.  External links
  are not followed (the build machines have no general network access).
* **Gallery.** Every ``examples/*.py`` has a page under ``auto_examples/`` that shows at
  least one image the example drew.

Prints one line per problem and exits 1 if there is any, else prints a summary.
"""
from __future__ import annotations

import html.parser
import importlib
import os
import sys
import types
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class _Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key):
                self.ids.add(a[key])
        for key in ("href", "src"):
            if a.get(key) is not None and not (tag == "link" and key == "href"
                                                and a.get("rel") == "preconnect"):
                self.links.append((tag, a[key]))


def _parse(path: str) -> _Page:
    p = _Page()
    with open(path, encoding="utf-8", errors="replace") as f:
        p.feed(f.read())
    return p


def _external(url: str) -> bool:
    scheme = urllib.parse.urlsplit(url).scheme
    return bool(scheme) or url.startswith("//")


def check_links(site: str) -> tuple[list[str], int]:
    """Problems with internal links, and the number of links checked."""
    pages, problems, n = {}, [], 0
    for dirpath, dirs, files in os.walk(site):
        dirs[:] = [d for d in dirs if d != "_static"]     # theme assets and templates
        for f in files:
            if f.endswith(".html"):
                pages[os.path.normpath(os.path.join(dirpath, f))] = None
    for page in sorted(pages):
        parsed = pages[page] = pages[page] or _parse(page)
        for tag, url in parsed.links:
            if _external(url) or url.startswith(("javascript:", "data:")):
                continue
            n += 1
            split = urllib.parse.urlsplit(url)
            target = page if not split.path else os.path.normpath(
                os.path.join(os.path.dirname(page), urllib.parse.unquote(split.path)))
            if os.path.isdir(target):
                target = os.path.join(target, "index.html")
            rel = os.path.relpath(page, site)
            if not os.path.exists(target):
                problems.append(f"{rel}: broken link {url!r} ({tag})")
                continue
            if split.fragment and target.endswith(".html"):
                if pages.get(target) is None:
                    pages[target] = _parse(target)
                if urllib.parse.unquote(split.fragment) not in pages[target].ids:
                    problems.append(f"{rel}: no anchor #{split.fragment} in "
                                    f"{os.path.relpath(target, site)}")
    return problems, n


def check_api(site: str) -> tuple[list[str], int]:
    """Names of public ``__all__`` lists missing from the site's inventory."""
    # this tree's package, as conf.py builds it (not an installed copy from elsewhere)
    sys.path[:0] = [ROOT, HERE]
    import _apigen
    from sphinx.util.inventory import InventoryFile

    with open(os.path.join(site, "objects.inv"), "rb") as f:
        inv = InventoryFile.load(f, "", os.path.join)
    data = getattr(inv, "data", inv)          # Sphinx >= 8.2 returns an _Inventory
    known = {k: set(v) for k, v in data.items()}
    py_objects = set().union(*(v for k, v in known.items() if k.startswith("py:")))
    problems, n = [], 0
    for modname in _apigen.public_modules():
        mod = importlib.import_module(modname)
        if modname not in known.get("py:module", ()):
            problems.append(f"module {modname} has no page in the API reference")
        for name in _apigen.exported(modname):
            n += 1
            obj = getattr(mod, name)
            if isinstance(obj, types.ModuleType):
                if obj.__name__ not in known.get("py:module", ()):
                    problems.append(f"{modname}.{name}: module {obj.__name__} not documented")
            elif f"{modname}.{name}" not in py_objects:
                problems.append(f"{modname}.{name} is not in the API reference")
    return problems, n


def check_gallery(site: str) -> tuple[list[str], int]:
    """Examples without a gallery page or without a figure on it."""
    problems, n = [], 0
    for f in sorted(os.listdir(os.path.join(ROOT, "examples"))):
        if not f.endswith(".py") or f.startswith("_"):
            continue
        n += 1
        page = os.path.join(site, "auto_examples", f[:-3] + ".html")
        if not os.path.exists(page):
            problems.append(f"examples/{f}: no gallery page")
            continue
        imgs = [u for t, u in _parse(page).links if t == "img" and "sphx_glr_" in u]
        if not imgs:
            problems.append(f"examples/{f}: its gallery page shows no figure")
    return problems, n


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    site = argv[0] if argv else os.path.join(HERE, "_build", "html")
    if not os.path.exists(os.path.join(site, "objects.inv")):
        print(f"check_site: {site} is not a built HTML site (no objects.inv)")
        return 1
    report = []
    bad = []
    for what, check in (("API names", check_api), ("internal links", check_links),
                        ("gallery examples", check_gallery)):
        problems, n = check(site)
        bad += problems
        report.append(f"{n} {what}")
    for p in bad:
        print(p)
    print(f"check_site: {', '.join(report)} checked, {len(bad)} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
