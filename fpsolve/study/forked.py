"""A function run in a forked child process, its result returned through a pipe.

A study's main process hands work that needs its live state (an LU factorisation,
assembled operators: nothing a fresh process could be given cheaply) to a forked
child, goes on with its own work, and collects the (small, picklable) result later.
The child sees the parent's memory copy-on-write, so nothing is copied or recomputed,
and its numbers are those the parent would compute: the same code on the same data.

Only the forking thread exists in the child.  Locks other threads held at the fork
stay held there, so the function must take none of them: it must not start a pool or
touch the renderer, and it must not import modules (another thread of the parent, e.g.
one importing matplotlib, may have held a module's import lock).  A study forks only
after the same work ran once in process, which imported (and compiled) what it needs;
an import in the child raises :class:`ImportInChild` there, and the parent then does
the work itself (logged as a warning, as is any failure of a child; a child that makes no
progress is killed).  The child never returns into the caller's code: it writes its result
and ends with ``os._exit``, without running exit handlers or flushing the parent's
buffers a second time.

Pages shared copy-on-write cost nothing, but the child's own allocations (an error
estimate's work arrays and factorisations) are real memory beside the parent's: given
their estimate (``need``), a child that would not fit in the available memory is not
started, and the parent does the work itself (:func:`fpsolve.fe.budget.fits`).
"""
from __future__ import annotations

import gc
import logging
import os
import pickle
import select
import signal
import sys
import time
import warnings

from ..fe import budget as _budget

__all__ = ["Forked", "ImportInChild", "available"]

logger = logging.getLogger(__name__)

#: a child whose CPU time has not advanced for this many seconds while its result is
#: awaited is blocked (on a lock another thread held at the fork): it is killed and the
#: work is done here.  A working child, even on a loaded machine, gains CPU every tick.
STALL_S = 5.0
#: ... and one that has not delivered after this many seconds is killed in any case (a
#: child spinning on a runtime's lock burns CPU without progress; /proc may be hidden)
DEADLINE_S = 1800.0


def available() -> bool:
    """Whether :class:`Forked` runs its function in a child (Linux) or in place.

    Returns
    -------
    bool
        True on Linux with ``os.fork``.
    """
    return sys.platform.startswith("linux") and hasattr(os, "fork")


class Forked:
    """``fn()`` started in a forked child process now; :meth:`result` collects it.

    If the child cannot be started, or fails for any reason (including an exception
    of ``fn``), :meth:`result` calls ``fn()`` in this process instead: the value, or
    the exception, is then exactly the one of an in-process call.

    Parameters
    ----------
    fn : callable
        Without arguments; its value must be picklable.
    fork : bool
        False: no child; :meth:`result` calls ``fn()`` here (the same interface).
    need : float, optional
        Estimated bytes the child will allocate (its pages shared with this process
        copy-on-write are not counted), e.g. :func:`fpsolve.fe.budget.estimate_memory`.
        If they do not fit in the available memory (:func:`fpsolve.fe.budget.fits`)
        nothing is forked and :meth:`result` computes ``fn()`` here (logged at debug
        level): the child would run beside this process's own allocations.
    """

    def __init__(self, fn, fork: bool = True, need: float | None = None):
        self.fn = fn
        #: the child's exit code once collected (negative: the signal that ended it)
        self.pid = self.fd = self.exitcode = None
        #: CPU seconds of the child (0 if ``fn`` ran here)
        self.cpu_s = 0.0
        #: why the child's result was not used (None: it was, or fn ran here from the start)
        self.failure = None
        self._owner = os.getpid()
        if not (fork and available()):
            return
        if need is not None and not _budget.fits(need):
            logger.debug("%r not forked: its child needs an estimated %s, %s are available; "
                         "computed in this process", getattr(fn, "__name__", fn),
                         _budget.format_bytes(need),
                         _budget.format_bytes(_budget.available_memory()))
            return
        try:
            r, w = os.pipe()
        except OSError:               # at the file-descriptor limit: run in place
            return
        try:
            pid = os.fork()
        except OSError:               # no memory for the page tables, process limit
            os.close(r)
            os.close(w)
            return
        if pid == 0:
            _child(fn, r, w)          # never returns
        os.close(w)
        self.pid, self.fd = pid, r

    def result(self):
        """The child's result, or ``fn()`` computed here if the child failed.

        Warnings ``fn`` issued in the child are issued again here, in their order.

        Returns
        -------
        value
            ``fn()``.
        seconds : float
            The wall time ``fn`` took (in the child, or here).
        """
        forked = self.pid is not None
        data = self._collect()
        if data:
            try:
                message = pickle.loads(data)
            except Exception:         # a truncated result: the child died writing it
                message = ("failed", "its result was truncated")
            if message[0] == "value":
                value, seconds, cpu, caught = message[1:]
                self.cpu_s = cpu
                for category, text, filename, lineno in caught:
                    warnings.warn_explicit(text, category, filename, lineno)
                return value, seconds
            self.failure = message[1]
        elif forked:
            self.failure = self.failure or f"it ended with exit code {self.exitcode}"
        if forked:
            # visible: a child that fails systematically doubles the work of every case
            logger.warning("forked child of %r failed (%s): computed in this process",
                           getattr(self.fn, "__name__", self.fn), self.failure)
        t0 = time.perf_counter()
        value = self.fn()
        return value, time.perf_counter() - t0

    def discard(self) -> None:
        """End the child now (killed, reaped) without its result (the caller failed)."""
        self._collect(read=False)

    def __del__(self):
        # a Forked dropped without result()/discard() (an exception in between) must not
        # leave a running child, a zombie and an open pipe behind
        if getattr(self, "pid", None) is not None and self._owner == os.getpid():
            try:
                self.discard()
            except Exception:
                pass

    def _collect(self, read: bool = True) -> bytes:
        if self.pid is None or self._owner != os.getpid():   # not our child (a grandchild)
            return b""
        chunks: list = []
        complete = False
        try:
            complete = read and _read_all(self.fd, self.pid, chunks)
            if read and not complete:
                self.failure = ("it made no progress (blocked on a lock held at the "
                                "fork?) and was killed")
        finally:
            os.close(self.fd)
            if not complete:          # not read, blocked, or interrupted: end it now
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _, status = os.waitpid(self.pid, 0)
            self.exitcode = os.waitstatus_to_exitcode(status)
            self.pid = self.fd = None
        # exit code 1 carries the child's error message
        return b"".join(chunks) if complete and self.exitcode in (0, 1) else b""


def _read_all(fd: int, pid: int, chunks: list) -> bool:
    """Read the child's pipe to its end; False if the child stalls (see :data:`STALL_S`)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    cpu, since = _cpu_ticks(pid), time.monotonic()
    stall = STALL_S if cpu is not None else float("inf")      # no /proc: the deadline only
    deadline = since + DEADLINE_S
    while True:
        if poller.poll(250):
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return True
            chunks.append(chunk)
            since = time.monotonic()
            continue
        now_cpu, now = _cpu_ticks(pid), time.monotonic()
        if now_cpu != cpu:
            cpu, since = now_cpu, now
        elif now - since > stall or now > deadline:
            return False        # killed by the caller; result() says so in its warning


def _cpu_ticks(pid: int):
    """utime + stime of a process in clock ticks (None if /proc does not have it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()    # field 3 (state) onwards
    return int(fields[11]) + int(fields[12])           # fields 14, 15


def _child(fn, r: int, w: int) -> None:
    """The forked process: run ``fn``, write the pickled result, exit."""
    code = 2
    try:
        os.close(r)
        # a collection would touch every object of the parent's heap, copying its pages
        gc.disable()
        sys.meta_path.insert(0, _NoImport)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            value = fn()
        caught = [(w.category, str(w.message), w.filename, w.lineno) for w in rec]
        _write(w, ("value", value, time.perf_counter() - t0, time.process_time(), caught))
        code = 0
    except BaseException as exc:      # the parent computes it itself (see Forked.result)
        try:
            _write(w, ("failed", f"{type(exc).__name__}: {exc}"))
            code = 1
        except BaseException:
            pass
    finally:
        os._exit(code)


def _write(fd: int, message: tuple) -> None:
    view = memoryview(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
    while view:
        view = view[os.write(fd, view):]


class ImportInChild(RuntimeError):
    """An import in a forked child.  Not an ImportError: code that falls back on a missing
    optional module (METIS ordering → minimum degree) would otherwise compute different
    numbers in the child instead of leaving the work to the parent."""


class _NoImport:
    """Import hook of a forked child: importing a module not imported yet is an error
    (its lock may be held by a thread that does not exist in the child)."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        raise ImportInChild(f"{name}: not imported before the fork")
