"""The study file format: keys, types, defaults, validation and case resolution.

A study is a TOML file.  :func:`load_study` reads it, checks every key against
the schema and resolves it into a :class:`Study`: a list of fully specified
:class:`Case` objects (study-level sections, then ``[[case]]`` overrides, then
``[sweep]`` values), each with a configuration hash that identifies its
results.  Nothing is solved and nothing is written here.

Every problem is reported as one :class:`StudyError` whose text names the
file, the dotted key and what was expected, e.g.::

    studies/x.toml: noise.delta_s: expected a positive number, got -0.01

Modules, in dependency order:

``values``
    :class:`StudyError`, :class:`Key` and the value checks (``_positive``, ``_choice``, ...).
``keys``
    The keys of FE-case studies (``[study]``, ``[landscape]``, ``[noise]``, ``[mesh]``,
    ``[solver]``, ``[[case]]``, ``[sweep]``, ``[output]``, ``[execution]``): :data:`KEYS`.
``analysis_keys``
    The keys of each ``[analysis]`` kind: :data:`ANALYSIS_KEYS`, :data:`ANALYSIS_KINDS`.
``reference``
    :func:`reference_markdown`, the key tables of ``docs/studies.md``.
``resolved``
    :class:`Study`, :class:`Case`, :class:`Sweep` and the hashes (:func:`case_hash`).
``sections``
    Validation of one case section and of ``[[case]]`` overrides.
``cases``
    ``[[case]]``, ``[sweep]`` and the model checks of the resolved cases.
``analysis``
    Validation of a study with ``[analysis]``.
``parse``
    :func:`parse_study` and :func:`load_study`.

A new key goes into the table of its section in ``keys.py`` (or of its analysis
kind in ``analysis_keys.py``); ``docs/studies.md`` is regenerated from them.
"""
from .analysis_keys import ANALYSIS_KEYS, ANALYSIS_KINDS
from .keys import BOUNDARIES, KEYS, LANDSCAPE_KINDS, NOISE_KINDS, STRENGTH_KEYS  # noqa: F401
from .parse import load_study, parse_study
from .reference import reference_markdown
from .resolved import Case, Study, Sweep, _canonical, _digest, case_hash  # noqa: F401
from .values import REQUIRED, Key, StudyError  # noqa: F401

__all__ = ["StudyError", "Study", "Case", "Sweep", "load_study", "parse_study", "KEYS",
           "ANALYSIS_KEYS", "ANALYSIS_KINDS", "reference_markdown", "case_hash",
           "STRENGTH_KEYS"]
