"""Validation of the case sections ``[landscape]``, ``[noise]``, ``[mesh]``, ``[solver]``.

:class:`_Loader` carries the file name for messages and the study directory for
relative mesh paths; its ``*_section`` methods check one section and fill in
its defaults.  :func:`_merge` applies ``[[case]]`` overrides and
:func:`_numeric_key` tells whether a dotted key may be swept.
"""
from __future__ import annotations

import difflib
import hashlib
import os

from .keys import _CASE_SECTIONS, _DEFAULTS, _KIND_DOC, _KINDS, _PLAIN
from .values import Key, StudyError, _Bad, _number, _show


def _suggest(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind_key_message(what: str, kind: str, key: str, spec, kinds: dict,
                      accepts_there: str) -> str:
    """Why ``key`` is not accepted by ``what`` ``kind``: another kind's key, or unknown."""
    other = [kk for kk, s in kinds.items() if key in s]
    if other:
        return (f"not a key of {what} {kind!r} (it belongs to kind {other[0]!r}); "
                f"kind {kind!r} accepts {accepts_there}")
    return (f"unknown key{_suggest(key, list(spec) + ['kind'])}; {what} {kind!r} accepts "
            f"kind, {', '.join(spec)}")


def _flatten(table: dict, prefix: str = "") -> dict:
    """Nested tables -> dotted keys (``{"noise": {"delta_s": 1}}`` -> ``noise.delta_s``)."""
    out = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


class _Loader:
    """Validation state: the file name for messages and the study directory."""

    def __init__(self, path: str):
        self.path = path
        self.dir = os.path.dirname(os.path.abspath(path))

    def fail(self, key, message):
        raise StudyError(self.path, key, message)

    def check(self, key_label, spec: Key, value):
        try:
            return spec.check(value)
        except _Bad as exc:
            self.fail(key_label, str(exc))

    # sections ---------------------------------------------------------------------------
    def table(self, raw: dict, name: str):
        v = raw.get(name, {})
        if not isinstance(v, dict):
            self.fail(name, f"expected a table [{name}], got {_show(v)}")
        return v

    def plain_keys(self, given: dict, sec: str, label: str = "") -> dict:
        """Check every key of ``given`` against the kind-independent section ``sec``."""
        spec = _PLAIN[sec]
        out = {}
        for k, v in given.items():
            if k not in spec:
                self.fail(f"{label}{sec}.{k}", f"unknown key{_suggest(k, spec)}; "
                          f"[{sec}] accepts {', '.join(spec)}")
            out[k] = self.check(f"{label}{sec}.{k}", spec[k], v)
        return out

    def plain_section(self, raw: dict, sec: str, prefix: str = "") -> dict:
        return self.plain_keys(self.table(raw, sec), sec, prefix)

    def kind_section(self, flat: dict, sec: str, label: str) -> dict:
        """Validate the flat ``{key: value}`` of [landscape] or [noise]; fill defaults."""
        kind = flat.get("kind", _KIND_DOC[sec].default.strip('"'))
        kind = self.check(f"{label}{sec}.kind", _KIND_DOC[sec], kind)
        spec = _KINDS[sec][kind]
        out = {"kind": kind}
        params = {}
        for k, v in flat.items():
            if k == "kind":
                continue
            head = k.split(".")[0]
            if head == "params" and "params" in spec:
                if k == "params":
                    params.update(self.check(f"{label}{sec}.params", spec["params"], v))
                else:
                    name = k[len("params."):]
                    params.update(self.check(f"{label}{sec}.{k}", spec["params"], {name: v}))
                continue
            if k not in spec:
                self.fail(f"{label}{sec}.{k}",
                          _kind_key_message(f"{sec} kind", kind, k, spec, _KINDS[sec],
                                            ", ".join(spec) or "no keys"))
            out[k] = self.check(f"{label}{sec}.{k}", spec[k], v)
        if "params" in spec:
            out["params"] = dict(sorted(params.items()))
        for k, s in spec.items():
            if k not in out:
                if s.default == "required":
                    self.fail(f"{label}{sec}.{k}", f"required for {sec} kind {kind!r} "
                              f"({s.type}: {s.doc})")
                out[k] = _DEFAULTS[(sec, kind, k)]
        return out

    def mesh_section(self, flat: dict, label: str) -> dict:
        vals = self.plain_keys(flat, "mesh", label)
        if "file" in vals:
            extra = [k for k in vals if k != "file"]
            if extra:
                self.fail(f"{label}mesh.{extra[0]}", "cannot be combined with mesh.file "
                          "(a mesh file fixes the geometry; remove one of them)")
            full = os.path.normpath(os.path.join(self.dir, vals["file"]))
            from ...fe.mesh import MeshError, load_mesh
            try:
                with open(full, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
                load_mesh(full)
            except OSError as exc:
                self.fail(f"{label}mesh.file", f"cannot read mesh file {vals['file']!r} "
                          f"(resolved to {full}): {exc.strerror or exc}")
            except MeshError as exc:
                self.fail(f"{label}mesh.file", f"not a usable mesh: {exc}")
            # "file" as written (for summaries), "path" to open; the hash uses only sha256
            return {"file": vals["file"], "path": full, "sha256": digest}
        if "h" not in vals:
            self.fail(f"{label}mesh.h", "required (target edge length of the disk mesh, a "
                      "positive number), or give mesh.file")
        out = {"radius": vals.get("radius", 2.0), "h": vals["h"],
               "center": vals.get("center", [0.0, 0.0]), "band": vals.get("band"),
               "band_levels": vals.get("band_levels", 1)}
        if out["h"] > out["radius"] / 2:
            self.fail(f"{label}mesh.h", f"expected 0 < h <= radius/2 = {out['radius'] / 2:g}, "
                      f"got {out['h']!r}")
        return out

    def solver_section(self, flat: dict, label: str) -> dict:
        out = {"order": 2, "boundary": "absorbing", "stabilisation": "none"}
        out.update(self.plain_keys(flat, "solver", label))
        if "goals" in out and out.get("tol") is None:
            self.fail(f"{label}solver.goals", "only with solver.tol (the goals of adaptive "
                      "refinement); set tol or remove goals")
        return out


def _resolve_sections(ld: _Loader, flat: dict, label: str) -> dict:
    """flat = {"landscape.eps": ..., "noise.kind": ...} for all case sections."""
    parts = {sec: {} for sec in _CASE_SECTIONS}
    for k, v in flat.items():
        sec, _, rest = k.partition(".")
        parts[sec][rest] = v
    out = {"landscape": ld.kind_section(parts["landscape"], "landscape", label),
           "noise": ld.kind_section(parts["noise"], "noise", label),
           "mesh": ld.mesh_section(parts["mesh"], label),
           "solver": ld.solver_section(parts["solver"], label)}
    if out["solver"].get("weighting") == "gibbs" and (
            out["noise"]["kind"] != "isotropic" or out["solver"]["stabilisation"] != "none"):
        got = (f'noise.kind = {out["noise"]["kind"]!r}' if out["noise"]["kind"] != "isotropic"
               else f'solver.stabilisation = {out["solver"]["stabilisation"]!r}')
        ld.fail(f"{label}solver.weighting", '"gibbs" needs noise in detailed balance: '
                'noise.kind = "isotropic" and solver.stabilisation = "none", got ' + got)
    return out


def _merge(base: dict, over: dict) -> dict:
    """Apply case overrides; a new kind (or mesh.file) restarts its section."""
    out = dict(base)
    for sec, trigger in (("landscape", "kind"), ("noise", "kind"), ("mesh", "file")):
        if f"{sec}.{trigger}" in over and over[f"{sec}.{trigger}"] != base.get(f"{sec}.{trigger}"):
            out = {k: v for k, v in out.items() if not k.startswith(sec + ".")}
    if any(k.startswith("mesh.") and k != "mesh.file" for k in over):
        out.pop("mesh.file", None)   # a generated-mesh override replaces a file
    out.update(over)
    return out


def _numeric_key(cfg: dict, dotted: str):
    """Return the Key spec of a swept/overridden numeric key in a resolved config, or None."""
    sec, _, rest = dotted.partition(".")
    if sec in ("landscape", "noise"):
        kind = cfg[sec]["kind"]
        if rest.startswith("params."):
            return Key(_number, "number", None, "", True) if rest[7:] in cfg[sec].get("params", {}) \
                and "params" in _KINDS[sec][kind] else None
        spec = _KINDS[sec][kind].get(rest)
    elif sec in ("mesh", "solver"):
        spec = _PLAIN[sec].get(rest)
        if sec == "mesh" and "file" in cfg["mesh"]:
            return None
    else:
        return None
    return spec if spec is not None and spec.numeric else None
