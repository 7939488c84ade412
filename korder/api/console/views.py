"""What the console shows, computed from Orders: rows, totals, the saga's pace, a timeline.

Called by the console's routes and live streams (:mod:`.routes`, :mod:`.streams`) with
the Orders the Kubernetes layer read; the templates only lay these out. Pure code over
the domain's models, tested without a cluster or a browser.

The console has no store of its own. A page, and each live stream, lists the
namespace's Orders once and keeps one small :class:`Row` per order (a few hundred
bytes, not the Order), which a watch then keeps current: that is what the totals per
phase, the filters, the paging and the saga's recent throughput and latency are
computed from. Times in ``status.history`` have milliseconds, so the latencies here
do too; the operator's ``korder_saga_duration_seconds`` has them as a histogram.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

from korder.api.history import OrderEvent
from korder.domain import money, rules, steps
from korder.domain.actions import Action
from korder.domain.order import Condition, Order, Phase

#: The saga's throughput and latency are taken over this last stretch of time.
RECENT: Final = timedelta(minutes=10)
#: Every phase, in the saga's order: the totals list each one, 0 included.
PHASES: Final = (
    *steps.FORWARD,
    Phase.COMPENSATING,
    Phase.FAILED,
    Phase.CANCELLING,
    Phase.CANCELLED,
)


def _instant(time: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(time)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _first(order: Order, kind: str) -> datetime | None:
    return next(
        (_instant(e.time) for e in order.status.history or () if e.type == kind),
        None,
    )


@dataclass(frozen=True)
class Row:
    """One order as the list shows it and the totals and the pace count it."""

    name: str
    phase: Phase
    customer_id: str
    customer_name: str
    total: str | None
    currency: str
    created: datetime | None
    #: When the saga started and when it confirmed the order (from status.history).
    started: datetime | None
    confirmed: datetime | None
    failed: datetime | None

    @classmethod
    def of(cls, order: Order) -> Row:
        spec, meta = order.spec, order.metadata
        return cls(
            name=meta.name,
            phase=rules.phase_of(order),
            customer_id=spec.customer.id,
            customer_name=spec.customer.name or "",
            total=order.status.total,
            currency=spec.currency,
            created=meta.creation_timestamp,
            started=_first(order, "SagaStarted"),
            confirmed=_first(order, "OrderConfirmed"),
            failed=_first(order, "OrderFailed"),
        )

    @property
    def saga_seconds(self) -> float | None:
        """From the saga's start (or the order's creation) to its confirmation."""
        start = self.started or self.created
        if self.confirmed is None or start is None:
            return None
        return max(0.0, (self.confirmed - start).total_seconds())


@dataclass(frozen=True)
class Filters:
    """The list's filters and page, as the query string has them (already checked)."""

    phase: Phase | None = None
    customer: str | None = None
    page: int = 1

    def matches(self, row: Row) -> bool:
        return (self.phase is None or row.phase == self.phase) and (
            self.customer is None or row.customer_id == self.customer
        )

    def query(self, **changes: object) -> str:
        """The query string of these filters with ``changes``, for links (empty ones left out)."""
        values = {"phase": self.phase, "customer": self.customer, "page": self.page, **changes}
        if values["page"] == 1:
            values["page"] = None
        parts = [f"{k}={v}" for k, v in values.items() if v not in (None, "")]
        return "?" + "&".join(parts) if parts else ""


@dataclass(frozen=True)
class PhaseTotal:
    """How many orders are in a phase, and what they add up to per currency."""

    phase: Phase
    count: int
    amounts: tuple[tuple[str, str], ...]  # (currency, amount), by currency


@dataclass(frozen=True)
class Pace:
    """The saga's recent throughput and latency, over :data:`RECENT`."""

    minutes: int
    confirmed: int
    failed: int
    per_minute: str
    p50_seconds: float | None
    p95_seconds: float | None


@dataclass(frozen=True)
class Page:
    """One page of the list, the totals and the pace: everything the live part shows."""

    rows: list[Row]
    matching: int
    filters: Filters
    pages: int
    totals: list[PhaseTotal]
    pace: Pace
    #: The participants' circuit breakers (participant -> closed, open, half-open); None
    #: while the façade cannot read them.
    breakers: Mapping[str, str] | None = None


@dataclass
class Board:
    """The namespace's orders as rows, kept current by a watch (:meth:`apply`)."""

    rows: dict[str, Row] = field(default_factory=dict)

    @classmethod
    def of(cls, orders: Iterable[Order]) -> Board:
        return cls({o.metadata.name: Row.of(o) for o in orders})

    def apply(self, kind: str, order: Order) -> None:
        """A watch's change: ADDED, MODIFIED or DELETED."""
        if kind == "DELETED":
            self.rows.pop(order.metadata.name, None)
        else:
            self.rows[order.metadata.name] = Row.of(order)

    def page(self, filters: Filters, size: int, now: datetime) -> Page:
        """Newest first, ``size`` to a page; the totals and pace over the customer's orders."""
        mine = [r for r in self.rows.values() if filters.customer in (None, r.customer_id)]
        matching = sorted(
            (r for r in mine if filters.matches(r)),
            key=lambda r: (r.created or datetime.min.replace(tzinfo=UTC), r.name),
            reverse=True,
        )
        pages = max(1, math.ceil(len(matching) / size))
        number = min(filters.page, pages)
        start = (number - 1) * size
        return Page(
            rows=matching[start : start + size],
            matching=len(matching),
            filters=Filters(filters.phase, filters.customer, number),
            pages=pages,
            totals=totals(mine),
            pace=pace(mine, now),
        )


def totals(rows: Iterable[Row]) -> list[PhaseTotal]:
    """Every phase with its count and its orders' totals per currency."""
    counts = dict.fromkeys(PHASES, 0)
    sums: dict[Phase, dict[str, Decimal]] = {p: {} for p in PHASES}
    for row in rows:
        counts[row.phase] = counts.get(row.phase, 0) + 1
        if row.total is not None:
            per = sums.setdefault(row.phase, {})
            per[row.currency] = per.get(row.currency, Decimal(0)) + money.parse(row.total)
    return [
        PhaseTotal(
            phase,
            counts[phase],
            tuple((c, money.format_amount(a)) for c, a in sorted(sums.get(phase, {}).items())),
        )
        for phase in PHASES
    ]


def _percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile: a value that was measured, never an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def pace(rows: Iterable[Row], now: datetime) -> Pace:
    """Orders confirmed and failed over the last :data:`RECENT`, and the sagas' latency."""
    since = now - RECENT
    listed = list(rows)
    confirmed = [r for r in listed if r.confirmed and r.confirmed >= since]
    failed = sum(1 for r in listed if r.failed and r.failed >= since)
    latencies = [s for s in (r.saga_seconds for r in confirmed) if s is not None]
    minutes = int(RECENT.total_seconds() // 60)
    per_minute = Decimal(len(confirmed)) / minutes
    return Pace(
        minutes=minutes,
        confirmed=len(confirmed),
        failed=failed,
        per_minute=f"{per_minute.quantize(Decimal('0.1'))}",
        p50_seconds=_percentile(latencies, 0.5),
        p95_seconds=_percentile(latencies, 0.95),
    )


# --- One order ----------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """An item of the order with its line total."""

    product_id: str
    name: str
    quantity: int
    price: str
    total: str


def lines(order: Order) -> list[Line]:
    return [
        Line(
            i.product_id,
            i.name or "",
            i.quantity,
            i.price,
            money.format_amount(money.line_total(i.price, i.quantity)),
        )
        for i in order.spec.items
    ]


#: The kinds of history entry that end a step or a compensation, with its name.
_ENDS: Final[dict[str, str]] = {
    **{s.done: s.name for s in steps.STEPS},
    **{s.rejected: s.name for s in steps.STEPS},
    **{s.compensation.done: s.compensation.name for s in steps.STEPS if s.compensation},
}
_COMPENSATIONS: Final = frozenset(c.name for _, c in steps.COMPENSATIONS)


@dataclass(frozen=True)
class Moment:
    """One entry of the saga's timeline."""

    kind: str
    title: str
    time: str
    phase: str | None
    message: str
    source: str
    #: The step or compensation this entry ends, and how long it took since the entry before.
    step: str | None
    seconds: float | None
    compensation: bool
    warning: bool


def timeline(events: list[OrderEvent]) -> list[Moment]:
    """The order's happenings, oldest first, each with the time since the one before."""
    moments: list[Moment] = []
    before: datetime | None = None
    for event in events:
        at = _instant(event.time)
        step = _ENDS.get(event.type)
        moments.append(
            Moment(
                kind=event.type,
                title=steps.words(event.type),
                time=event.time,
                phase=event.phase,
                message=event.message,
                source=event.source,
                step=step,
                seconds=(at - before).total_seconds() if at and before else None,
                compensation=step in _COMPENSATIONS,
                warning=event.severity == "Warning" or _is_warning(event.type),
            )
        )
        before = at or before
    return moments


#: History entries have no severity of their own; these are the saga's warnings.
_WARNINGS: Final = frozenset(
    {s.rejected for s in steps.STEPS}
    | {"DeadlineExceeded", "CancellationRejected", "CompensationRejected", "OrderFailed"}
)


def _is_warning(kind: str) -> bool:
    return kind in _WARNINGS


@dataclass(frozen=True)
class StepState:
    """A saga step and its condition: done, in flight, rejected or compensated."""

    name: str
    title: str
    status: str
    reason: str
    message: str


def step_states(order: Order) -> list[StepState]:
    """Each step of the saga with its condition, in the table's order (not yet: Waiting)."""
    conditions: dict[str, Condition] = {c.type: c for c in order.status.conditions or ()}
    states = []
    for step in steps.STEPS:
        condition = conditions.get(step.condition)
        states.append(
            StepState(
                name=step.name,
                title=steps.words(step.condition),
                status=str(condition.status) if condition else "",
                reason=condition.reason if condition else "NotStarted",
                message=condition.message if condition else "",
            )
        )
    return states


def actions(order: Order) -> list[Action]:
    """The buttons of the order's page: what the domain's rules allow it now."""
    return rules.available(order)


def total_seconds(moments: list[Moment]) -> float | None:
    """From the saga's start to its last entry so far."""
    times = [_instant(m.time) for m in moments if m.kind != "OrderAccepted"]
    known = [t for t in times if t is not None]
    return (max(known) - min(known)).total_seconds() if len(known) > 1 else None
