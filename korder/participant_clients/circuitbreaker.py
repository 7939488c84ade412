"""A circuit breaker per participant: stop calling a service that is failing.

Semantics (DESIGN §3): the breaker opens when at least ``failure_ratio`` of the
last ``window`` calls failed, once at least ``min_calls`` were made; after
``reset_timeout`` it is half-open and lets at most ``half_open_calls`` trial calls
through at a time; a trial that succeeds closes it, one that fails opens it again.
Business answers (declined, out of stock) are neither success nor failure: they
prove nothing about the service's health. A trial that never reports (a hung
call) is counted as failed after ``trial_timeout``, so a half-open breaker cannot
stay wedged; its late report is then ignored.

Why not pybreaker, as the design card suggests: as released it opens after a
number of *consecutive* failures (not a share of a sliding window with a minimum
of calls), holds a lock for the whole duration of a call (so one slow call
serialises every other), and calls a function rather than awaiting a coroutine.
Bending it to these semantics would leave little of it, so this is a small
breaker of our own. It is synchronous and never awaits: callers ask for a
:class:`Permit`, make the call however they like, and report its result. The
clock is injected, so the unit tests drive time by hand.

Used by :mod:`.calls`; the transitions feed :mod:`.metrics` through ``listener``, and
the operator's breaker board (:mod:`korder.operator.breakers`, which publishes them on
the Lease for ``kubectl korder top``) through :meth:`CircuitBreaker.add_listener`.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(Exception):
    """The breaker refuses the call; try again in ``retry_after`` seconds."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"{name} circuit breaker is open; retry in {retry_after:.1f}s")
        self.retry_after = retry_after


Listener = Callable[[str, State, State], None]


@dataclass
class Permit:
    """Leave to make one call; report how it went exactly once."""

    breaker: CircuitBreaker
    epoch: int
    trial: bool
    started: float
    reported: bool = False

    def succeeded(self) -> None:
        self._report(True)

    def failed(self) -> None:
        self._report(False)

    def ignored(self) -> None:
        """A business answer, or the call was abandoned: it says nothing about health."""
        self._report(None)

    def _report(self, healthy: bool | None) -> None:
        if not self.reported:
            self.reported = True
            self.breaker._record(self, healthy)


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        window: int = 20,
        min_calls: int = 5,
        failure_ratio: float = 0.5,
        reset_timeout: float = 10.0,
        half_open_calls: int = 1,
        trial_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        listener: Listener | None = None,
    ) -> None:
        self.name = name
        self._min_calls = min_calls
        self._failure_ratio = failure_ratio
        self._reset_timeout = reset_timeout
        self._half_open_calls = half_open_calls
        self._trial_timeout = trial_timeout
        self._clock = clock
        self._listeners: list[Listener] = [listener] if listener is not None else []
        self._state = State.CLOSED
        # Every transition starts a new epoch; a permit from an older one is stale.
        self._epoch = 0
        self._opened_at = 0.0
        self._outcomes: collections.deque[bool] = collections.deque(maxlen=window)
        self._trials: list[Permit] = []

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(name, before, after)`` on every transition from now on, too."""
        self._listeners.append(listener)

    def state(self) -> State:
        """The state now (time may have moved an open breaker to half-open)."""
        self._tick()
        return self._state

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a trial through (0 unless open)."""
        if self.state() != State.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._reset_timeout - self._clock())

    def acquire(self) -> Permit:
        """A permit for one call, or :class:`CircuitOpen`."""
        self._tick()
        now = self._clock()
        if self._state == State.OPEN:
            raise CircuitOpen(self.name, self.retry_after())
        if self._state == State.HALF_OPEN:
            if len(self._trials) >= self._half_open_calls:
                # The trials in flight decide; the others wait a little.
                raise CircuitOpen(self.name, min(1.0, self._reset_timeout))
            permit = Permit(self, self._epoch, trial=True, started=now)
            self._trials.append(permit)
            return permit
        return Permit(self, self._epoch, trial=False, started=now)

    def _tick(self) -> None:
        """Apply what the passing of time implies: reset timeout, hung trials."""
        now = self._clock()
        if self._state == State.OPEN and now >= self._opened_at + self._reset_timeout:
            self._move(State.HALF_OPEN)
        elif self._state == State.HALF_OPEN and any(
            now >= t.started + self._trial_timeout for t in self._trials
        ):
            self._open(now)

    def _record(self, permit: Permit, healthy: bool | None) -> None:
        self._tick()
        if permit.epoch != self._epoch:
            return  # reported after the breaker moved on: it no longer counts
        if permit.trial:
            self._trials.remove(permit)
            if healthy is True:
                self._move(State.CLOSED)
            elif healthy is False:
                self._open(self._clock())
            return
        if healthy is None:
            return
        self._outcomes.append(not healthy)
        calls = len(self._outcomes)
        if calls >= self._min_calls and sum(self._outcomes) / calls >= self._failure_ratio:
            self._open(self._clock())

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._move(State.OPEN)

    def _move(self, to: State) -> None:
        before = self._state
        self._state = to
        self._epoch += 1
        self._trials.clear()
        # A new state judges from a clean slate: the failures that opened the
        # breaker must not reopen it after a successful trial closes it.
        self._outcomes.clear()
        if before != to:
            for listener in self._listeners:
                listener(self.name, before, to)
