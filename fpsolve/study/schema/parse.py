"""Reading a study: TOML text -> validated :class:`~fpsolve.study.schema.resolved.Study`.

:func:`parse_study` checks the sections in a fixed order (top-level sections,
``[study]``, then either ``[analysis]`` or the FE path: ``[output]``,
``[execution]``, the case sections, ``[[case]]``, ``[sweep]``, the models) and
stops at the first problem, so a study file's error message never depends on
anything but the file.
"""
from __future__ import annotations

import os
import re

try:
    import tomllib
except ModuleNotFoundError:   # Python 3.10
    import tomli as tomllib

from .analysis import _parse_analysis
from .cases import _check_cases, _expand_sweep, _parse_cases, _sweep_values
from .keys import _CASE_SECTIONS, _PLAIN, _TOP
from .resolved import Case, Study
from .sections import _flatten, _Loader, _resolve_sections, _suggest
from .time import _time_section
from .values import StudyError


def _read_toml(ld: _Loader, text: bytes | str) -> tuple[dict, bytes]:
    """Decode and parse the TOML text; syntax errors name the line and column."""
    if isinstance(text, bytes):
        try:
            text_s = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            ld.fail(None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        raw_bytes = text
    else:
        text_s, raw_bytes = text, text.encode("utf-8")
    try:
        raw = tomllib.loads(text_s)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        if m:
            msg = msg[:m.start()].strip()
            ld.fail(f"line {m.group(1)}", f"TOML syntax error: {msg} (column {m.group(2)})")
        ld.fail(None, f"TOML syntax error: {msg}")
    for k in raw:
        if k not in _TOP:
            hint = _suggest(k, _TOP)
            ld.fail(k, f"unknown section{hint}; a study has "
                    f"{', '.join('[[case]]' if s == 'case' else f'[{s}]' for s in _TOP)}")
    return raw, raw_bytes


def _execution(ld: _Loader, raw: dict) -> dict:
    """``[execution]`` of an FE study; a Dask address needs dask.distributed installed."""
    execution = {"workers": 1, "scheduler": "local"}
    execution.update(ld.plain_section(raw, "execution"))
    if execution["scheduler"] != "local":
        try:
            import distributed  # noqa: F401
        except ImportError:
            ld.fail("execution.scheduler", "a Dask scheduler needs dask.distributed: "
                    "pip install 'fpsolve[dask]'")
    return execution


def parse_study(text: bytes | str, path: str) -> Study:
    """Validate the TOML ``text`` of the study at ``path`` (used for messages and
    relative mesh paths) and resolve it into a :class:`Study`.

    Raises
    ------
    StudyError
        One line naming the file, the dotted key and what was expected.
    """
    ld = _Loader(path)
    raw, raw_bytes = _read_toml(ld, text)
    study = ld.plain_section(raw, "study")
    name = study.get("name")
    if name is None:
        stem = os.path.splitext(os.path.basename(path))[0]
        name = ld.check("study.name", _PLAIN["study"]["name"], stem)
    if "analysis" in raw:
        return _parse_analysis(ld, raw, name, study.get("description", ""), raw_bytes)
    output = {"vtk": True, "figures": True, "panel": True, "sweep_plot": True, "flux": True}
    output.update(ld.plain_section(raw, "output"))
    execution = _execution(ld, raw)

    base_flat = {}
    for sec in _CASE_SECTIONS:
        for k, v in _flatten(ld.table(raw, sec)).items():
            base_flat[f"{sec}.{k}"] = v
    base_cfg = _resolve_sections(ld, base_flat, "")
    bases = _parse_cases(ld, raw, base_flat)   # (name, title, flat, resolved config)
    single = not bases
    if single:
        bases.append((name, name, base_flat, base_cfg))

    sweep = None
    if "sweep" in raw:
        param, vals = _sweep_values(ld, raw)
        sweep, cases = _expand_sweep(ld, param, vals, bases, single)
    else:
        cases = [Case(cname, title, cfg) for cname, title, flat, cfg in bases]
    _check_cases(ld, cases, single and sweep is None, output)
    time_cfg = _time_section(ld, raw)
    if time_cfg is not None:        # part of every case's configuration (and its hash)
        for c in cases:
            c.config["time"] = dict(time_cfg)
    return Study(path=path, name=name, description=study.get("description", ""), cases=cases,
                 output=output, execution=execution, sweep=sweep, text=raw_bytes, raw=raw)


def load_study(path: str) -> Study:
    """Read and validate the study file at ``path``.

    Raises
    ------
    StudyError
        If the file cannot be read or anything in it is invalid (one line, naming
        the file and the key).
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise StudyError(path, None, "study file not found") from None
    except IsADirectoryError:
        raise StudyError(path, None, "is a directory, expected a study .toml file") from None
    except OSError as exc:
        raise StudyError(path, None, f"cannot read the study file ({exc.strerror})") from None
    return parse_study(text, path)
