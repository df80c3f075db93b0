"""Studies: TOML files that describe a set of solves and what to write about them.

>>> from fpsolve.study import load_study, run_study
>>> study = load_study("studies/fig3.toml")      # validates; raises StudyError
>>> result = run_study(study, out="results/fig3") # writes summary.json, .vtu, figures

The file format is documented in ``docs/studies.md``; the ``fpsolve`` command line
(:mod:`fpsolve.cli`) is a thin layer over these two functions.
"""
from .runner import Reporter, RunResult, StudyRunError, plan_tasks, run_study
from .schema import KEYS, Case, Study, StudyError, Sweep, load_study, parse_study, reference_markdown

__all__ = ["load_study", "parse_study", "run_study", "plan_tasks", "Study", "Case", "Sweep",
           "StudyError", "StudyRunError", "Reporter", "RunResult", "KEYS", "reference_markdown"]
