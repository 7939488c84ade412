"""The saga's Prometheus metrics, from what the operator sees and does.

Called by :mod:`.reconciling`, the one place where the saga's moves are decided and
written: it tells the :class:`Observer` each order it sees, each phase change once it
is stored, each participant call with its outcome and each retry. The domain stays
pure (it knows nothing of metrics); the participant clients count their own HTTP
attempts and breakers (:mod:`korder.participant_clients.metrics`).

The Orders by phase and the Orders past their deadline are counted at scrape time
from a small record per Order (phase, whether the saga is working on it, its
deadline), kept in this process's memory: the active replica sees every Order (Kopf
hands each one to it at start-up), a standing-by replica none. Durations are taken
with a monotonic clock in this process; a saga or step that another process began
(a restart, a failover) is measured from what the Order says instead, the creation
time (whole seconds), or not at all for a step.

Histogram buckets span what ``make bench`` measures: a participant call of a few ms,
a saga to ``Confirmed`` of 60-80 ms alone and up to seconds under load, steps that
wait out retries and an open breaker for tens of seconds.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from korder.domain import conditions, saga, steps
from korder.domain.order import ConditionStatus, Order, Phase
from korder.outcomes import Deferred, Outcome

BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0)


@dataclass(frozen=True)
class _Seen:
    phase: Phase | None
    #: Reconciling=True: the saga works on it (not done, not waiting for the client).
    busy: bool
    #: When its saga's deadline passes, as a POSIX time.
    deadline: float


class Observer:
    """The saga's metrics in ``registry``; one per process (:func:`default`)."""

    def __init__(
        self,
        registry: CollectorRegistry = REGISTRY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.transitions = Counter(
            "korder_order_phase_transitions",
            "Phase changes of Orders written by the operator, by the phase left and entered.",
            ["from", "to"],
            registry=registry,
        )
        self.saga_duration = Histogram(
            "korder_saga_duration_seconds",
            "Time from an Order's admission by the operator (else its creation) to Confirmed.",
            buckets=BUCKETS,
            registry=registry,
        )
        self.step_duration = Histogram(
            "korder_saga_step_duration_seconds",
            "Time from a saga step's or compensation's first call to the outcome that settles"
            " it, retries included, by step and outcome.",
            ["step", "outcome"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.calls = Histogram(
            "korder_saga_call_duration_seconds",
            "Saga calls to a participant (the client's attempts included), by participant,"
            " step and outcome: succeeded, rejected, failed, deferred.",
            ["participant", "step", "outcome"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            "korder_saga_retries",
            "Saga steps put off for a retry, by step and why: failed (transient) or deferred"
            " (breaker open).",
            ["step", "reason"],
            registry=registry,
        )
        self._orders: dict[str, _Seen] = {}
        self._admitted: dict[str, float] = {}
        self._steps: dict[tuple[str, str], float] = {}
        registry.register(_OrderGauges(self))

    def seen(self, order: Order, deadline: datetime) -> None:
        """``order`` as stored now; ``deadline`` is its saga's (:func:`saga.deadline_of`)."""
        reconciling = conditions.get(order.status, conditions.RECONCILING)
        busy = reconciling is not None and reconciling.status == ConditionStatus.TRUE
        # A saga stopped on its deadline (waiting for a retry) still needs someone.
        busy = busy or conditions.stopped(order.status) is not None
        self._orders[order.metadata.uid] = _Seen(order.status.phase, busy, deadline.timestamp())

    def forget(self, uid: str) -> None:
        """The Order is gone (its finalizer let go)."""
        self._orders.pop(uid, None)
        self._admitted.pop(uid, None)
        for key in [k for k in self._steps if k[0] == uid]:
            del self._steps[key]

    def admitted(self, uid: str) -> None:
        """This process admits the Order: its saga's clock starts."""
        self._admitted.setdefault(uid, self.clock())

    def moved(self, order: Order, before: Phase | None, after: Phase) -> None:
        """A phase change of ``order`` is stored (admission, from no phase, is not one)."""
        if before is not None:
            self.transitions.labels(str(before), str(after)).inc()
        uid = order.metadata.uid
        if after == Phase.CONFIRMED:
            began = self._admitted.pop(uid, None)
            if began is not None:
                self.saga_duration.observe(self.clock() - began)
            elif (created := order.metadata.creation_timestamp) is not None:
                self.saga_duration.observe(max(0.0, time.time() - created.timestamp()))
        elif after in steps.TERMINAL or after in steps.COMPENSATING:
            self._admitted.pop(uid, None)  # it will never be confirmed

    def called(
        self, uid: str, call: saga.Call, outcome: Outcome, began: float, *, settled: bool
    ) -> None:
        """A saga call that began at ``began`` (:attr:`clock`) ended with ``outcome``;
        ``settled``: the step is done with (no retry follows)."""
        now = self.clock()
        kind = type(outcome).__name__.lower()
        self.calls.labels(call.request.participant, call.name, kind).observe(now - began)
        first = self._steps.setdefault((uid, call.name), began)
        if settled:
            del self._steps[(uid, call.name)]
            self.step_duration.labels(call.name, kind).observe(now - first)

    def retried(self, call: saga.Call, outcome: Outcome) -> None:
        reason = "deferred" if isinstance(outcome, Deferred) else "failed"
        self.retries.labels(call.name, reason).inc()

    def by_phase(self) -> dict[Phase, int]:
        counts = dict.fromkeys(Phase, 0)
        for seen in self._orders.values():
            if seen.phase is not None:
                counts[seen.phase] += 1
        return counts

    def past_deadline(self, now: float) -> int:
        """Orders the saga still works on whose deadline has passed."""
        return sum(1 for s in self._orders.values() if s.busy and now >= s.deadline)


class _OrderGauges:
    """The two gauges counted from the observer's records at each scrape."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer

    def collect(self) -> Iterator[Metric]:
        phases = GaugeMetricFamily(
            "korder_orders",
            "Orders this operator replica sees, by phase (0 on a replica standing by).",
            labels=["phase"],
        )
        for phase, count in self.observer.by_phase().items():
            phases.add_metric([str(phase)], count)
        yield phases
        yield GaugeMetricFamily(
            "korder_orders_past_deadline",
            "Orders whose saga is still at work after its deadline (a compensation keeps"
            " failing) or stalled on it (a step that kept failing waits for a retry).",
            value=self.observer.past_deadline(time.time()),
        )

    def describe(self) -> Iterator[Metric]:
        # Registered before any Order is seen: names only, so registration costs no count.
        yield GaugeMetricFamily("korder_orders", "", labels=["phase"])
        yield GaugeMetricFamily("korder_orders_past_deadline", "")


@functools.cache
def default() -> Observer:
    """The process's observer, in the default registry the operator's /metrics serves."""
    return Observer()
