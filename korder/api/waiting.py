"""``Prefer: wait=N`` (RFC 7240): wait for the saga's answer to a write, on a watch.

Called by the write routes after their write. The order is watched from the
resourceVersion the write returned, so no change between the write and the watch
is missed, and the wait ends as soon as the order reaches one of the action's
outcomes (:data:`korder.domain.rules.OUTCOMES`) or after N seconds, whichever comes
first. The caller answers with the order as it is then and ``Preference-Applied``.
"""

from __future__ import annotations

import logging
import re

from lightkube import AsyncClient

from korder.domain import rules
from korder.domain.actions import Action
from korder.domain.order import Order
from korder.kube import orders

log = logging.getLogger(__name__)
_WAIT = re.compile(r"^\s*wait\s*=\s*\"?(\d{1,9})\"?\s*$", re.IGNORECASE)


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


async def until_settled(kube: AsyncClient, order: Order, action: Action, seconds: int) -> Order:
    """The order once the saga answered ``action``, or as it is after ``seconds``."""
    if seconds <= 0 or rules.settled(action, order):
        return order
    meta = order.metadata
    latest = order
    try:
        async for changed in orders.watch(kube, meta.name, meta.resource_version, seconds):
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
    return latest


def applied(seconds: int) -> dict[str, str]:
    """The response header that says the wait preference was honoured."""
    return {"Preference-Applied": f"wait={seconds}"}
