"""Stopping a run: what SIGINT and SIGTERM do in each phase of a run's life.

A :class:`Stop` takes both signals (in the main thread; elsewhere, e.g. a Dask worker's
thread, signals cannot be taken and only :meth:`Stop.request` stops). Its handler only
sets flags or raises; it never touches the run file or an instrument, so a signal landing
anywhere cannot corrupt either. What a signal does depends on the phase:

- **set-up** (resolving the experiment, opening the bench, creating the run file,
  configuring the boards, restoring a checkpoint): the first signal raises
  :class:`SetUpInterrupted` (a :class:`KeyboardInterrupt`) at once: the process ends promptly,
  a run file being created is removed, one already created is closed as ``interrupted``;
- **running** (between the first and the last learning step): the first signal only
  requests a stop: the runner finishes its step, writes a checkpoint and closes the file as
  ``interrupted``. A second signal aborts the step at once (:class:`Interrupted`); the
  runner then writes no checkpoint, so the run resumes from its last consistent one;
- **winding down** (after a stop, or after the last step): signals are only counted.

At most one exception is ever raised by the handler, however many signals arrive.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from instruments.safety import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)
SET_UP, RUNNING, WINDING_DOWN = "set-up", "running", "winding down"

_active: "Stop | None" = None


class SetUpInterrupted(KeyboardInterrupt):
    """A signal arrived before the first learning step; ``signal_name`` says which."""

    def __init__(self, signal_name: str):
        super().__init__(f"interrupted by {signal_name} during set-up")
        self.signal_name = signal_name


def active() -> "Stop | None":
    """The :class:`Stop` whose handler is installed in this process, if any."""
    return _active


class Stop:
    """Stop requests of one run (see the module's description).

    Attributes:
        phase: ``"set-up"``, ``"running"`` or ``"winding down"``.
        requested: the first request: a signal's name (``"SIGINT"``, ``"SIGTERM"``) or the
            reason given to :meth:`request`; None while nobody asked to stop.
        aborted: the signal that aborted a step at once (a second signal while running).
        received: names of every signal received, in order.
    """

    def __init__(self):
        self.phase = SET_UP
        self.requested: str | None = None
        self.aborted: str | None = None
        self.received: list[str] = []
        self._raised = False

    # -- phases ------------------------------------------------------------------------------
    def running(self) -> None:
        """Set-up is over: from now on a first signal only requests a stop."""
        if self.phase == SET_UP:
            self.phase = RUNNING

    def winding_down(self) -> None:
        """The run is ending: from now on signals are only counted."""
        self.phase = WINDING_DOWN

    def request(self, reason: str = "a stop request") -> None:
        """Ask the run to stop before its next learning step (as a first signal does)."""
        if self.requested is None:
            self.requested = reason

    # -- signals -----------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        first = self.requested is None
        if first:
            self.requested = name
        if self._raised:
            return
        if self.phase == SET_UP:
            self._raised = True
            self.phase = WINDING_DOWN
            raise SetUpInterrupted(name)
        if self.phase == RUNNING and not first:
            self._raised = True
            self.aborted = name
            self.phase = WINDING_DOWN
            raise Interrupted(name)

    @contextmanager
    def handling(self):
        """Install this stop's handler for SIGINT and SIGTERM for the duration (main thread
        only; re-entrant), restoring the previous handlers afterwards."""
        global _active
        if _active is self or threading.current_thread() is not threading.main_thread():
            yield self
            return
        outer = _active
        old = {}
        try:
            for sig in SIGNALS:
                old[sig] = signal.signal(sig, self._on_signal)
            _active = self
            yield self
        finally:
            _active = outer
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def take_over(self) -> None:
        """Point SIGINT and SIGTERM at this stop again (after something, such as a safety
        guard, installed its own handlers; it restores ours when it ends)."""
        if _active is self and threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                signal.signal(sig, self._on_signal)
