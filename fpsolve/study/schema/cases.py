"""``[[case]]`` and ``[sweep]``: the list of resolved cases of an FE study."""
from __future__ import annotations

import math

import numpy as np

from .keys import _CASE_KEYS, _CASE_SECTIONS, _SWEEP_KEYS, KEYS
from .resolved import Case, Sweep, _canonical, case_hash
from .sections import _Loader, _flatten, _merge, _numeric_key, _resolve_sections, _suggest
from .values import Key, _is_number, _number, _show


def _build_check(ld: _Loader, case_label: str, cfg: dict) -> None:
    """Construct the models once and evaluate them on sample points of the domain.

    Catches non-symmetric A, non-PSD matrices, bad expressions, and models that are
    not finite inside the domain (L, ∇L, D, ∇·D; e.g. ``log(x)`` on a disk around 0).
    """
    from ..build import build_landscape, build_noise, sample_points
    from ...models.validity import ModelError, check_diffusion, check_landscape
    lcfg, ncfg = cfg["landscape"], cfg["noise"]
    lkey = f"{case_label}landscape." + {"quadratic": "A", "expression": "expr"}.get(
        lcfg["kind"], "kind")
    try:
        L = build_landscape(lcfg)
    except (ValueError, TypeError) as exc:     # ExpressionError is a ValueError
        if lcfg["kind"] == "quadratic" and "center" in str(exc):
            lkey = f"{case_label}landscape.center"
        ld.fail(lkey, str(exc))
    try:
        D = build_noise(ncfg, L)
    except (ValueError, TypeError) as exc:     # ExpressionError is a ValueError
        ld.fail(_noise_key(case_label, ncfg, str(exc)), str(exc))
    x, y = sample_points(cfg["mesh"])
    try:
        check_landscape(L, x, y)
    except (ModelError, FloatingPointError, ZeroDivisionError) as exc:
        ld.fail(lkey, f"{exc} (checked at {x.size} points of the domain)")
    try:
        check_diffusion(D, x, y)
    except (ModelError, FloatingPointError, ZeroDivisionError) as exc:
        # SGD noise is Δ_S H²: a bad tensor is the landscape's (its Hessian's) fault
        key = lkey if ncfg["kind"] == "sgd" else _noise_key(case_label, ncfg, str(exc), D, x, y)
        ld.fail(key, f"{exc} (checked at {x.size} points of the domain)")


def _gibbs_check(ld: _Loader, case_label: str, cfg: dict) -> None:
    """``solver.weighting = "gibbs"`` with an absorbing boundary needs the boundary at least
    half of ``gibbs.BARRIER`` nats of L/δ above the minimum (``Problem`` refuses it
    otherwise): L on the domain's sample points and 2048 points of the circle (the
    boundary vertices of a mesh file)."""
    s = cfg["solver"]
    if s.get("weighting") != "gibbs" or s["boundary"] != "absorbing":
        return
    from ..build import build_landscape, build_mesh, sample_points
    from ...fe.gibbs import BARRIER
    m = cfg["mesh"]
    L = build_landscape(cfg["landscape"])
    x, y = sample_points(m)
    if "file" in m:
        mesh = build_mesh(m)
        bx, by = mesh.p[:, mesh.boundary_vertices()]
    else:
        th = np.linspace(0.0, 2 * np.pi, 2048, endpoint=False)
        bx = m["center"][0] + m["radius"] * np.cos(th)
        by = m["center"][1] + m["radius"] * np.sin(th)
    with np.errstate(all="ignore"):
        Lb = float(np.min(L.value(bx, by)))
        barrier = (Lb - min(float(np.min(L.value(x, y))), Lb)) / float(cfg["noise"]["delta"])
    if not barrier >= BARRIER / 2:
        ld.fail(f"{case_label}solver.weighting",
                f'"gibbs" with an absorbing boundary needs it ≥ {BARRIER / 2:g} nats of L/δ '
                f"above the minimum (escape rare), got {barrier:.3g}; use \"auto\" or \"none\"")


def _budget_check(ld: _Loader, case_label: str, cfg: dict, flux: bool) -> None:
    """Dofs and peak memory of the case within ``solver.max_dofs`` and the memory.

    Estimated from radius, h and the band for a generated disk (nothing is meshed),
    counted on the mesh of a mesh file.
    """
    from ...fe import budget
    mcfg, scfg = cfg["mesh"], cfg["solver"]
    order, max_dofs = scfg["order"], scfg.get("max_dofs")
    try:
        if "file" in mcfg:
            from ..build import build_mesh
            mesh = build_mesh(mcfg)
            budget.check(budget.mesh_dofs(mesh, order), order, max_dofs,
                         f"mesh file {mcfg['file']!r}, order {order}", flux, mesh.graded,
                         study=True)
        else:
            budget.check_disk(mcfg["radius"], mcfg["h"], order, mcfg["band"],
                              mcfg["band_levels"], max_dofs, flux=flux, study=True)
    except budget.BudgetError as exc:
        ld.fail(f"{case_label}mesh.{'file' if 'file' in mcfg else 'h'}", str(exc))


def _noise_key(case_label: str, ncfg: dict, message: str, D=None, x=None, y=None) -> str:
    """The [noise] key to blame: the expression component that is not finite, if any."""
    kind = ncfg["kind"]
    if kind != "expression":
        key = {"constant": "matrix", "sgd": "delta_s", "isotropic": "delta"}.get(kind)
        return f"{case_label}noise.{key}"
    comps = ("D11", "D12", "D22")
    if D is not None and "not finite" in message:
        with np.errstate(all="ignore"):
            T = D.unit_tensor(x, y)
        for k, (i, j) in zip(comps, ((0, 0), (0, 1), (1, 1))):
            if not np.all(np.isfinite(T[i, j])):
                return f"{case_label}noise.{k}"
    if D is not None:
        return f"{case_label}noise"
    return f"{case_label}noise." + next((k for k in comps if repr(ncfg[k]) in message), "D11")


def _format_value(v: float) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _parse_cases(ld: _Loader, raw: dict, base_flat: dict) -> list:
    """``[[case]]`` -> ``[(name, title, flat overrides, resolved config)]`` (empty if none)."""
    raw_cases = raw.get("case", [])
    if not isinstance(raw_cases, list) or not all(isinstance(c, dict) for c in raw_cases):
        ld.fail("case", "expected [[case]] tables (an array of tables)")
    bases = []
    seen = set()
    for i, rc in enumerate(raw_cases):
        where = f"case[{i}]"
        if "name" not in rc:
            ld.fail(f"{where}.name", "required (a file-name-safe name for the case)")
        cname = ld.check(f"{where}.name", _CASE_KEYS["name"], rc["name"])
        if cname in seen:
            ld.fail(f"{where}.name", f"duplicate case name {cname!r}")
        seen.add(cname)
        label = f'case "{cname}": '
        title = ld.check(f"{label}title", _CASE_KEYS["title"], rc.get("title", cname))
        over = {}
        for k, v in _flatten({kk: vv for kk, vv in rc.items() if kk not in ("name", "title")}).items():
            sec = k.split(".")[0]
            if sec not in _CASE_SECTIONS or "." not in k:
                known = list(_CASE_KEYS) + [f"{s}." for s in _CASE_SECTIONS]
                ld.fail(f"{label}{k}", f"unknown key{_suggest(k, known)}; a case accepts name, "
                        "title and overrides of landscape.*, noise.*, mesh.*, solver.*")
            over[k] = v
        flat = _merge(base_flat, over)
        bases.append((cname, title, flat, _resolve_sections(ld, flat, label)))
    return bases


def _sweep_values(ld: _Loader, raw: dict) -> tuple[str, list]:
    """``[sweep]`` -> (swept dotted key, distinct values); the key is checked per case later."""
    sw = ld.table(raw, "sweep")
    for k in sw:
        if k not in _SWEEP_KEYS:
            ld.fail(f"sweep.{k}", f"unknown key{_suggest(k, _SWEEP_KEYS)}; [sweep] accepts "
                    "parameter, values, range")
    if "parameter" not in sw:
        ld.fail("sweep.parameter", 'required (the dotted key to sweep, e.g. "noise.delta_s")')
    param = ld.check("sweep.parameter", _SWEEP_KEYS["parameter"], sw["parameter"])
    if ("values" in sw) == ("range" in sw):
        ld.fail("sweep.values", "give exactly one of sweep.values (a list) or sweep.range "
                "({start, stop, num})")
    if "values" in sw:
        vals = sw["values"]
        if not isinstance(vals, list) or not vals:
            ld.fail("sweep.values", f"expected a non-empty list of numbers, got {_show(vals)}")
        for j, v in enumerate(vals):
            if not _is_number(v) or not math.isfinite(v):
                ld.fail(f"sweep.values[{j}]", f"expected a number, got {_show(v)}")
    else:
        vals = _sweep_range(ld, sw["range"])
    if len(set(vals)) != len(vals):
        ld.fail("sweep.values", "values must be distinct")
    return param, vals


def _sweep_range(ld: _Loader, rg) -> list:
    """``sweep.range = {start, stop, num}`` -> the list of values (both ends included)."""
    if not isinstance(rg, dict):
        ld.fail("sweep.range", f"expected a table {{start, stop, num}}, got {_show(rg)}")
    for k in rg:
        if k not in ("start", "stop", "num"):
            ld.fail(f"sweep.range.{k}", f"unknown key{_suggest(k, ('start', 'stop', 'num'))}"
                    "; sweep.range accepts start, stop, num")
    for k in ("start", "stop", "num"):
        if k not in rg:
            ld.fail(f"sweep.range.{k}", "required (range = {start, stop, num})")
    start = ld.check("sweep.range.start", Key(_number, "", None, ""), rg["start"])
    stop = ld.check("sweep.range.stop", Key(_number, "", None, ""), rg["stop"])
    num = rg["num"]
    if not isinstance(num, int) or isinstance(num, bool) or not 1 <= num <= 10000:
        ld.fail("sweep.range.num", f"expected an integer from 1 to 10000, got {_show(num)}")
    vals = np.linspace(start, stop, num).tolist() if num > 1 else [start]
    # round away linspace's last-bit noise so names and hashes are stable
    return [float(f"{v:.12g}") for v in vals]


def _expand_sweep(ld: _Loader, param: str, vals: list, bases: list,
                  single: bool) -> tuple[Sweep, list]:
    """One case per (base case, swept value); each base case gives one series."""
    sweep = Sweep(param, list(vals))
    cases: list[Case] = []
    for cname, title, flat, cfg in bases:
        spec = _numeric_key(cfg, param)
        if spec is None:
            known = [k for k, s in KEYS.items() if s.numeric]
            ld.fail("sweep.parameter", f"{param!r} is not a numeric key of "
                    f"{'the study' if single else f'case {cname!r}'}{_suggest(param, known)}; "
                    f"sweepable: {', '.join(known)}, landscape.params.NAME, noise.params.NAME")
        # the series names the sweep's files: vtk/<series>.pvd, <series>.png
        series = "sweep" if single else f"sweep-{cname}"
        members = []
        for j, v in enumerate(vals):
            label = f"sweep.values[{j}]: " if single else f'sweep.values[{j}] (case "{cname}"): '
            if spec.type.startswith("integer") and float(v).is_integer():
                v = int(v)
            vflat = dict(flat)
            vflat[param] = v
            vcfg = _resolve_sections(ld, vflat, label)
            leaf = param.rsplit(".", 1)[-1]
            vname = f"{leaf}={_format_value(v)}"
            vname = vname if single else f"{cname}-{vname}"
            cases.append(Case(vname, f"{title}, {leaf} = {_format_value(v)}", vcfg,
                              series=series, value=float(v)))
            members.append(vname)
        sweep.series[series] = members
    return sweep, cases


def _check_cases(ld: _Loader, cases: list, plain: bool, output: dict) -> None:
    """Distinct names, buildable models, hashes and the ``output.panel`` names.

    ``plain``: a single case without a sweep (its messages carry no case label).
    """
    names = [c.name for c in cases]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        ld.fail("case", f"case names collide after the sweep: {sorted(dup)}")

    checked, budgeted = set(), set()
    for c in cases:
        label = "" if plain else f'case "{c.name}": '
        key = _canonical({k: c.config[k] for k in ("mesh", "solver")})
        if key not in budgeted:
            budgeted.add(key)
            _budget_check(ld, label, c.config, output["flux"])
        key = _canonical({k: c.config[k] for k in ("landscape", "noise", "mesh")})
        if key not in checked:
            checked.add(key)
            _build_check(ld, label, c.config)
        _gibbs_check(ld, label, c.config)
        c.hash = case_hash(c.config, output["flux"])

    if isinstance(output["panel"], list):
        flat = [n for r in output["panel"] for n in (r if isinstance(r, list) else [r])]
        if len(set(flat)) != len(flat):
            ld.fail("output.panel", "a case appears twice")
        for n in flat:
            if n not in names:
                ld.fail("output.panel", f"no case named {n!r}{_suggest(n, names)}; cases: "
                        f"{', '.join(names)}")

