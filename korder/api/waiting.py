"""``Prefer: wait=N`` (RFC 7240): wait for the saga's answer to a write, on a watch.

Called by the write routes after their write. The order is watched from the
resourceVersion the write returned, so no change between the write and the watch
is missed, and the wait ends as soon as the order reaches one of the action's
outcomes (:data:`korder.domain.rules.OUTCOMES`) or after N seconds, whichever comes
first. The caller answers with the order as it is then and ``Preference-Applied``.
Each wait is timed and counted by its outcome (:class:`Waits`, in the facade's registry).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Final

from lightkube import AsyncClient
from prometheus_client import CollectorRegistry, Histogram

from korder.domain import rules
from korder.domain.actions import Action
from korder.domain.order import Order
from korder.kube import orders

log = logging.getLogger(__name__)
_WAIT = re.compile(r"^\s*wait\s*=\s*\"?(\d{1,9})\"?\s*$", re.IGNORECASE)

#: How a wait ended: the saga answered, the time ran out, or the watch was lost first.
SETTLED: Final = "settled"
TIMED_OUT: Final = "timeout"
LOST: Final = "lost"
#: A wait lasts from a few tens of ms (a saga alone) to the ceiling, 60 s by default.
BUCKETS: Final = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Waits:
    """The waits for ``Prefer: wait``, by action and outcome, with their duration."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            "korder_api_wait_duration_seconds",
            "Waits for the saga's answer (Prefer: wait), by action and outcome: settled,"
            " timeout, lost (the watch ended early).",
            ["action", "outcome"],
            buckets=BUCKETS,
            registry=registry,
        )


def requested_wait(prefer: str | None, ceiling: int) -> int | None:
    """The seconds a Prefer header asks to wait, cut to ``ceiling``; None if it asks none.

    A preference the server does not understand is ignored, as RFC 7240 says.
    """
    if not prefer:
        return None
    for preference in prefer.split(","):
        token = preference.split(";", 1)[0]
        match = _WAIT.match(token)
        if match:
            return min(int(match.group(1)), ceiling)
    return None


async def until_settled(
    kube: AsyncClient, order: Order, action: Action, seconds: int, waits: Waits
) -> Order:
    """The order once the saga answered ``action``, or as it is after ``seconds``."""
    began = time.perf_counter()
    latest, lost = await _watch(kube, order, action, seconds)
    outcome = SETTLED if rules.settled(action, latest) else LOST if lost else TIMED_OUT
    waits.duration.labels(str(action), outcome).observe(time.perf_counter() - began)
    return latest


async def _watch(
    kube: AsyncClient, order: Order, action: Action, seconds: int
) -> tuple[Order, bool]:
    """The order as last seen, and whether the watch was lost before the time was up."""
    if seconds <= 0 or rules.settled(action, order):
        return order, False
    meta = order.metadata
    latest = order
    try:
        async for changed in orders.watch(
            kube, meta.name, meta.resource_version, seconds, meta.namespace
        ):
            latest = changed
            if rules.settled(action, changed):
                break
    except orders.KubeError as exc:
        # The write is done; a lost watch only cuts the wait short. Answering 503 would
        # tell the client that nothing happened.
        log.warning(
            "wait for the saga ended early",
            extra={"order": meta.name, "action": str(action), "error": exc.message},
        )
        return latest, True
    return latest, False


def applied(seconds: int) -> dict[str, str]:
    """The response header that says the wait preference was honoured."""
    return {"Preference-Applied": f"wait={seconds}"}
