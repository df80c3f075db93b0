"""The resolved study: :class:`Study`, its :class:`Case` objects, :class:`Sweep` and hashes."""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field

from .keys import STRENGTH_KEYS


@dataclass
class Case:
    """One fully specified solve.

    Attributes
    ----------
    name, title
        File-name-safe name and figure title.
    config
        Resolved ``{"landscape", "noise", "mesh", "solver"}`` sections, every
        default filled in (``mesh.file`` absolute, with its ``sha256``).
    hash
        Hash of the configuration, the fpsolve version and the flux option:
        identical hashes mean identical results.
    series, value
        Name of the sweep series the case belongs to and its parameter value
        (None outside a sweep).
    """

    name: str
    title: str
    config: dict
    hash: str = ""
    series: str | None = None
    value: float | None = None

    @property
    def strength_key(self) -> str | None:
        """Dotted key of the diffusion strength (``noise.delta_s`` for SGD), or None."""
        k = STRENGTH_KEYS.get(self.config["noise"]["kind"])
        return f"noise.{k}" if k else None

    @property
    def strength(self) -> float | None:
        k = STRENGTH_KEYS.get(self.config["noise"]["kind"])
        return self.config["noise"][k] if k else None

    def group_key(self) -> str:
        """Cases with equal group keys share one assembly (A0 + s·A1)."""
        cfg = copy.deepcopy(self.config)
        k = STRENGTH_KEYS.get(cfg["noise"]["kind"])
        if k and cfg["solver"]["stabilisation"] == "none":
            cfg["noise"].pop(k)
        else:                          # SUPG is not affine in s: every case on its own
            cfg["case"] = self.name
        return _canonical(cfg)


@dataclass
class Sweep:
    """A ``[sweep]``: one parameter over a list of values, per base case."""

    parameter: str
    values: list
    series: dict = field(default_factory=dict)   # series name -> [case names]


@dataclass
class Study:
    """A validated study: resolved cases plus output and execution options."""

    path: str
    name: str
    description: str
    cases: list
    output: dict
    execution: dict
    sweep: Sweep | None
    text: bytes
    raw: dict
    analysis: dict | None = None    # resolved [analysis] (kind, keys, landscape) or None

    @property
    def hash(self) -> str:
        """Hash of everything that determines the outputs."""
        if self.analysis is not None:
            from ... import __version__
            return _digest({"analysis": self.analysis, "fpsolve": __version__})
        return _digest({"cases": [c.hash for c in self.cases], "names": [c.name for c in self.cases],
                        "titles": [c.title for c in self.cases], "output": self.output,
                        "sweep": None if self.sweep is None else
                        {"parameter": self.sweep.parameter, "series": self.sweep.series}})

    def groups(self) -> list[list[Case]]:
        """Cases grouped by shared assembly, in study order."""
        out: dict[str, list[Case]] = {}
        for c in self.cases:
            out.setdefault(c.group_key(), []).append(c)
        return list(out.values())


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _digest(obj) -> str:
    return hashlib.sha256(_canonical(obj).encode()).hexdigest()[:16]


def case_hash(config: dict, flux: bool) -> str:
    """Hash of a resolved case configuration, the fpsolve version and the flux option.

    The mesh file enters through its content hash, not its path, so moving a
    study and its mesh together keeps its results valid.
    """
    from ... import __version__
    cfg = copy.deepcopy(config)
    cfg["mesh"].pop("file", None)
    cfg["mesh"].pop("path", None)
    return _digest({"config": cfg, "fpsolve": __version__, "flux": bool(flux)})

