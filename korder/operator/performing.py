"""Performing one saga call: a step's :class:`~korder.domain.steps.Request` as HTTP.

Called by :mod:`.reconciling` for each :class:`korder.domain.saga.Call`. The saga's
table already built the request (participant, path, body, from the order); this
adds the idempotency key from the order's UID and the step's name and sends it
through the participant clients, whose answer is already one of the saga's
:data:`~korder.outcomes.Outcome`. Nothing here knows one step from another.
"""

from __future__ import annotations

from korder.domain import saga, steps
from korder.outcomes import Outcome
from korder.participant_clients import calls


async def perform(participants: calls.Participants, call: saga.Call, uid: str) -> Outcome:
    request = call.request
    key = steps.idempotency_key(uid, call.name)
    return await participants[request.participant].post(request.path, key, request.body)
