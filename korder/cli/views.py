"""What ``kubectl korder`` prints: tables, the saga timeline, the ``top`` screen.

Pure functions from the domain's Orders (and the breaker states) to rich
renderables or plain data, called by :mod:`.main`; the unit tests render them
without a cluster. Colours follow the phase: green once the saga confirmed the
order, red when it failed or stalled, magenta while it compensates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from korder import constants
from korder.domain import conditions, steps
from korder.domain.order import HistoryEntry, Order, Phase

_COLOURS: Final = {
    Phase.PENDING: "cyan",
    Phase.RESERVING_INVENTORY: "yellow",
    Phase.PROCESSING_PAYMENT: "yellow",
    Phase.CONFIRMED: "green",
    Phase.PROCESSING: "blue",
    Phase.FULFILLED: "bold green",
    Phase.COMPENSATING: "magenta",
    Phase.CANCELLING: "magenta",
    Phase.FAILED: "bold red",
    Phase.CANCELLED: "dim",
}
_BREAKER_COLOURS: Final = {"closed": "green", "half-open": "yellow", "open": "bold red"}
#: History entries that undo a step: a compensation, marked in the timeline.
COMPENSATIONS: Final = frozenset(c.done for _, c in steps.COMPENSATIONS) | {"CompensationRejected"}
#: History entries that say something went wrong.
TROUBLE: Final = frozenset(s.rejected for s in steps.STEPS) | {
    "DeadlineExceeded",
    "OrderFailed",
    "CompensationRejected",
    "CancellationRejected",
    "RetryRejected",
}
#: The window of ``top``'s throughput.
MINUTE: Final = timedelta(minutes=1)


def phase_of(order: Order) -> Phase:
    return order.status.phase or Phase.PENDING


def stalled(order: Order) -> str | None:
    """The Stalled condition's reason when it is True."""
    return conditions.stalled_reason(order.status)


def phase_text(order: Order) -> Text:
    phase = phase_of(order)
    text = Text(str(phase), style=_COLOURS[phase])
    why = stalled(order)
    if why and phase != Phase.FAILED:
        text.append(f" (Stalled: {why})", style="bold red")
    return text


def age(created: datetime | None, now: datetime) -> str:
    """An age the way kubectl prints one: 45s, 12m, 3h, 5d."""
    if created is None:
        return "<unknown>"
    seconds = max(0, int((now - created).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def orders_table(found: Sequence[Order], now: datetime, *, namespaces: bool) -> Table:
    """``kubectl korder get``: kubectl's columns, coloured by phase."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    if namespaces:
        table.add_column("NAMESPACE", no_wrap=True)
    for column in ("NAME", "PHASE", "TOTAL", "CUSTOMER", "AGE"):
        table.add_column(column, no_wrap=column != "PHASE")
    for order in sorted(found, key=lambda o: (o.metadata.namespace or "", o.metadata.name)):
        cells: list[RenderableType] = [order.metadata.namespace or ""] if namespaces else []
        cells += [
            order.metadata.name,
            phase_text(order),
            order.status.total or "",
            order.spec.customer.id,
            age(order.metadata.creation_timestamp, now),
        ]
        table.add_row(*cells)
    return table


def took(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.1f}m"


def _time(entry: HistoryEntry) -> datetime:
    return datetime.fromisoformat(entry.time)


def timeline(order: Order) -> Table:
    """``kubectl korder history``: each transition, its time, how long it took since the
    one before, compensations marked (↩) and trouble in red."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("", "TIME", "TOOK", "PHASE", "EVENT", "MESSAGE"):
        table.add_column(column, no_wrap=column not in ("MESSAGE",))
    entries = order.status.history or []
    before: datetime | None = None
    for entry in entries:
        at = _time(entry)
        since = took((at - before).total_seconds()) if before is not None else ""
        before = at
        compensation = entry.type in COMPENSATIONS  # an undo, not what led to it
        style = "bold red" if entry.type in TROUBLE else "magenta" if compensation else ""
        table.add_row(
            "↩" if compensation else "",
            entry.time,
            since,
            Text(str(entry.phase), style=_COLOURS[Phase(entry.phase)]),
            Text(entry.type, style=style),
            entry.message,
        )
    return table


def timeline_summary(order: Order) -> str:
    entries = order.status.history or []
    if not entries:
        return f"order {order.metadata.name} has no history yet"
    span = took((_time(entries[-1]) - _time(entries[0])).total_seconds())
    return f"{len(entries)} events over {span}; now {phase_of(order)}"


def by_phase(found: Sequence[Order]) -> Counter[Phase]:
    return Counter(phase_of(o) for o in found)


def confirmed_within(found: Sequence[Order], now: datetime, window: timedelta = MINUTE) -> int:
    """How many sagas reached Confirmed in the last ``window``, from status.history."""
    since = now - window
    return sum(
        1
        for order in found
        for entry in order.status.history or ()
        if entry.type == "OrderConfirmed" and _time(entry) > since
    )


def top_screen(
    found: Sequence[Order],
    breakers: Mapping[str, str] | str,
    now: datetime,
    *,
    where: str,
) -> RenderableType:
    """``kubectl korder top``: orders by phase, throughput, the stalled, the breakers.

    ``breakers`` is the state per participant, or a sentence saying why it is unknown.
    """
    counts = by_phase(found)
    total = max(1, len(found))
    phases = Table(title="Orders by phase", box=None, header_style="bold", title_justify="left")
    phases.add_column("PHASE")
    phases.add_column("ORDERS", justify="right")
    phases.add_column("")
    for phase in Phase:
        bar = "█" * round(30 * counts[phase] / total)
        style = _COLOURS[phase]
        phases.add_row(Text(str(phase), style=style), str(counts[phase]), Text(bar, style=style))
    confirmed = confirmed_within(found, now)
    stalled_orders = [o for o in found if stalled(o) and phase_of(o) != Phase.FAILED]
    pace = Text(
        f"Throughput: {confirmed} confirmed in the last minute ({confirmed / 60:.2f}/s)   "
        f"Stalled: {len(stalled_orders)}   Orders: {len(found)}",
        style="bold",
    )
    board: RenderableType
    if isinstance(breakers, str):
        board = Text(f"Circuit breakers: {breakers}", style="dim")
    else:
        board = Table(title="Circuit breakers", box=None, header_style="bold", title_justify="left")
        board.add_column("PARTICIPANT")
        board.add_column("STATE")
        for name, state in breakers.items():
            board.add_row(name, Text(state, style=_BREAKER_COLOURS.get(state, "")))
    heading = Text(f"korder top — {where} — {now.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")
    return Group(heading, Text(""), pace, Text(""), phases, Text(""), board)


def manifest(order: Order) -> dict[str, Any]:
    """The Order as ``-o json|yaml`` prints it: apiVersion, kind, metadata, spec, status."""
    body = order.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {"apiVersion": constants.API_VERSION, "kind": constants.KIND, **body}


def manifest_list(found: Sequence[Order]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": [manifest(o) for o in found]}
