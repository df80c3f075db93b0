"""The ``fpsolve`` command line (also ``python -m fpsolve``).

Only this module prints; the library reports progress through
:class:`fpsolve.study.Reporter` and diagnostics through :mod:`logging`.

Exit status: 0 success, 2 invalid input (study file or options; nothing is
written), 1 numerical or runtime failure (one line on stderr), 130 interrupted.
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_DESCRIPTION = """\
Finite-element Fokker–Planck solver for stochastic gradient descent with
anisotropic, landscape-dependent noise.

A study is a TOML file that names a loss landscape, a noise model, a mesh, the
solver settings and a list of cases or a parameter sweep; `fpsolve run` solves
it and writes a summary, ParaView files and figures.  The file format is
documented in docs/studies.md."""

_EPILOG = """\
examples:
  fpsolve run studies/fig3.toml                 the paper's Fig. 3 (four cases)
  fpsolve run studies/sweep.toml --workers 2    a Δ_S sweep on two processes
  fpsolve run studies/figS5.toml                Fig. S5: Monte Carlo SGD vs FE
  fpsolve run studies/transition.toml           Δ_S* by theory, FE and Monte Carlo
  fpsolve run studies/fig2.toml                 Fig. 2 phase diagram, exponents
  fpsolve run studies/variance_flatness.toml    Feng–Tu variance–flatness analysis
  fpsolve validate studies/ou.toml              check a study without solving

exit status:
  0  success
  1  a numerical or runtime failure (solver, assembly, writing files)
  2  invalid input: the study file or the options (nothing is written)"""

_RUN_DESCRIPTION = """\
Solve every case of a study and write, into the output directory:

  summary.json         per case: parameters, dofs, escape rate, mean, covariance,
                       density maximum, x-marginal maximum, flux cycles,
                       residual, negative mass, runtime, warnings
  provenance.json      versions of fpsolve, Python and dependencies, command
                       line, configuration hash, date
  <study>.toml         a copy of the study file
  panel.png            the cases side by side
  sweep.png            observables against the swept parameter (sweeps;
                       sweep-<case>.png when a study has cases and a sweep)
  vtk/<case>.vtu       the solution for ParaView; vtk/<series>.pvd per sweep
  figures/<case>.png   one figure per case
  cases/               per-case records (configuration hash, coefficients)

A study with an [analysis] section (kind = "figS5", "transition",
"phase_diagram" or "variance_flatness") runs that analysis instead and writes
summary.json (its results), table.md (paper / theory / FE / Monte Carlo),
its figures (.png), the study file and provenance.json; it is skipped when
summary.json holds the same configuration hash and all its files exist.

The whole study is validated before anything is written.  Every file is
written atomically, and cases whose outputs exist for an identical
configuration (same hash, same fpsolve version) are reused unless --force is
given, so an interrupted run can simply be started again."""

_RUN_EPILOG = """\
examples:
  fpsolve run studies/fig3.toml
  fpsolve run studies/fig3.toml --out /tmp/fig3 --force
  fpsolve run studies/sweep.toml --workers 2 --quiet
  python -m fpsolve run studies/ou.toml

Cases that differ only in the noise strength (noise.delta_s) share one
assembly A0 + Δ_S·A1.  With --workers N independent cases and sweep chunks run
on N local processes; [execution] scheduler = "tcp://host:port" in the study
sends them to a Dask cluster instead."""

_VALIDATE_DESCRIPTION = """\
Check a study file without solving anything: TOML syntax, unknown keys (with
suggestions), types and ranges, mesh files, expressions.  Prints one line per
study: "ok" with the number of cases, or the first problem found as
FILE: KEY: what was expected, got what."""

_VALIDATE_EPILOG = """\
examples:
  fpsolve validate studies/fig3.toml
  fpsolve validate studies/*.toml"""


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fpsolve`` (exposed for documentation and tests)."""
    from . import __version__
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="fpsolve", description=_DESCRIPTION, epilog=_EPILOG,
                                     formatter_class=fmt)
    parser.add_argument("--version", action="version",
                        version=f"fpsolve {__version__} (Python {sys.version.split()[0]})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="solve a study and write its outputs",
                         description=_RUN_DESCRIPTION, epilog=_RUN_EPILOG, formatter_class=fmt)
    run.add_argument("study", metavar="STUDY.toml", help="the study file")
    run.add_argument("--out", metavar="DIR",
                     help="output directory (default: results/<study name>/ in the current "
                          "directory)")
    run.add_argument("--force", action="store_true",
                     help="recompute every case even if its outputs are up to date")
    run.add_argument("--quiet", action="store_true",
                     help="print nothing but errors (no progress, no per-case lines, no "
                          "warnings; warnings still go to summary.json)")
    run.add_argument("--workers", metavar="N", type=_positive_int,
                     help="number of local worker processes (default: [execution] workers "
                          "of the study, else 1)")

    val = sub.add_parser("validate", help="check study files without solving",
                         description=_VALIDATE_DESCRIPTION, epilog=_VALIDATE_EPILOG,
                         formatter_class=fmt)
    val.add_argument("studies", metavar="STUDY.toml", nargs="+", help="study files")
    return parser


def _fmt_case(outcome: dict) -> str:
    head = f"[{outcome['done']}/{outcome['total']}] {outcome['name']}"
    if "error" in outcome:
        return f"{head}: FAILED: {outcome['error']}"
    s = outcome["summary"]
    if outcome["reused"]:
        return f"{head}: up to date, reused"
    cyc = s.get("cycles") or []
    circ = f"  circ {abs(cyc[0]['circulation']):.3g}" if cyc else ""
    if s.get("spectrum"):                 # [time]: relaxation time and final survival
        circ += f"  τ_relax {s['spectrum']['relaxation_time']:.4g}"
    if s.get("time"):
        circ += f"  S(t_end) {s['time']['survival'][-1]:.6g}"
    mu = s.get("escape_rate")
    mu_s = f"{mu:.3g}" if isinstance(mu, float) else "n/a"
    return (f"{head}: {s['dofs']} dofs  <x²> {s['x2']:.6g}  max at x {s['mode'][0]:+.4f}  "
            f"marginal max x {s['marginal_mode_x']:+.4f}  μ {mu_s}  "
            f"neg {s['negative_mass']:.1e}{circ}  {s['runtime_s']:.1f} s")


class _Printer:
    """Reporter for the terminal: plain lines, or a rich progress bar on a TTY."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.progress = None
        self.bar = None
        self.sub = None        # the [time] transient of the case being solved here

    # reporter interface -------------------------------------------------------------
    def start(self, study, total, reused, tasks, workers):
        if self.quiet:
            return
        todo = total - reused
        where = f"{workers} worker{'s' * (workers > 1)}"
        self._out(f"{study.name}: {total} case{'s' * (total != 1)} ({reused} up to date, "
                  f"{todo} to solve in {tasks} task{'s' * (tasks != 1)} on {where})")
        if todo and sys.stderr.isatty():
            try:
                from rich.console import Console
                from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                           TimeElapsedColumn)
            except ImportError:     # rich is optional: plain lines only
                return
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(),
                                     console=Console(stderr=True), transient=True)
            self.progress.start()
            self.bar = self.progress.add_task(study.name, total=total, completed=reused)

    def case_finished(self, outcome):
        if self.quiet:
            return
        if "error" in outcome:
            self._err(_fmt_case(outcome))
        elif not outcome["reused"] or self.progress is None:
            self._out(_fmt_case(outcome))
        if self.progress is not None and not outcome["reused"]:
            self.progress.advance(self.bar)
        if self.sub is not None:            # a failed transient leaves its bar behind
            self.progress.remove_task(self.sub)
            self.sub = None

    def warning(self, case, message):
        if not self.quiet:
            where = {"panel": "panel figure", "analysis": "analysis"}.get(case, f'case "{case}"')
            self._err(f"warning: {where}: {message}")

    def note(self, message):
        if not self.quiet:
            self._err(f"note: {message}")

    def step(self, message):
        if not self.quiet:
            self._out(message)

    def time_step(self, case, t, fraction):
        if self.progress is None:           # plain lines: no per-step output
            return
        what = f"  {case} \\[time] t = {t:.4g}"  # escaped: not rich markup
        if self.sub is None:
            self.sub = self.progress.add_task(what, total=100)
        self.progress.update(self.sub, completed=round(100 * fraction), description=what)
        if fraction >= 1.0:
            self.progress.remove_task(self.sub)
            self.sub = None

    def finish(self, result):
        self.close()
        if self.quiet:
            return
        if "analysis" in result.summary:
            what = "reused (up to date)" if result.reused else "computed"
            self._out(f"wrote {result.out}/ (analysis {result.summary['analysis']['kind']!r} "
                      f"{what}) in {result.seconds:.1f} s")
            return
        n_failed = len(result.failed)
        self._out(f"wrote {result.out}/ ({len(result.computed)} solved, {len(result.reused)} "
                  f"reused{f', {n_failed} failed' if n_failed else ''}) in {result.seconds:.1f} s")

    # helpers ------------------------------------------------------------------------
    def close(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def _out(self, text):
        if self.progress is not None:
            self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, flush=True)

    def _err(self, text):
        if self.progress is not None:
            self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=sys.stderr, flush=True)


def _run(args) -> int:
    from .study import StudyError, StudyRunError, load_study, run_study
    from .fe.mesh import MeshError
    from .fe.solver import SolverError
    try:
        study = load_study(args.study)
    except StudyError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    printer = _Printer(args.quiet)
    command = " ".join(shlex.quote(a) for a in ["fpsolve", *args.argv])
    try:
        run_study(study, args.out, force=args.force, workers=args.workers, reporter=printer,
                  command=command)
    except StudyError as exc:
        printer.close()
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except (StudyRunError, SolverError, MeshError, OSError, ValueError, RuntimeError) as exc:
        printer.close()
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        printer.close()
        print("interrupted: finished cases are kept; run again to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _validate(args) -> int:
    from .study import StudyError, load_study
    status = EXIT_OK
    for path in args.studies:
        try:
            study = load_study(path)
        except StudyError as exc:
            print(exc, file=sys.stderr)
            status = EXIT_USAGE
            continue
        if study.analysis is not None:
            print(f"{path}: ok (analysis {study.analysis['kind']!r}; output "
                  f"{os.path.join('results', study.name)}/)")
            continue
        n = len(study.cases)
        print(f"{path}: ok ({n} case{'s' * (n != 1)}, {len(study.groups())} assembl"
              f"{'ies' if len(study.groups()) != 1 else 'y'}; output "
              f"{os.path.join('results', study.name)}/)")
    return status


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fpsolve`` console script; returns the exit status."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.ERROR if getattr(args, "quiet", False) else logging.WARNING,
                        format="%(levelname)s: %(name)s: %(message)s")
    # scikit-fem reports copying index arrays of meshes read from files: not news to users
    logging.getLogger("skfem.mesh.mesh").addFilter(
        lambda record: "C_CONTIGUOUS" not in record.getMessage())
    if args.command == "run":
        return _run(args)
    return _validate(args)


if __name__ == "__main__":      # pragma: no cover
    sys.exit(main())
