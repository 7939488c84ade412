"""Kopf handlers for Orders: thin wiring from Kopf's events to the domain.

Each handler turns Kopf's arguments into domain models, asks the domain what to
do, and writes the answer to the status subresource. Kopf's own settings are
chosen in :func:`configure`, each with its reason.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from korder import constants
from korder.domain import saga
from korder.domain.order import OrderSpec, OrderStatus


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # The structural schema prunes unknown status fields, so Kopf's bookkeeping
    # lives in annotations under our own prefix instead of status.kopf.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=constants.KOPF_ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=constants.KOPF_ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    # Log lines are for logs; Events are the order's transitions, posted on purpose.
    settings.posting.level = logging.CRITICAL
    # A watch that goes silent (a dropped connection no one closed) must not freeze
    # the operator: the server ends each watch and the client gives up soon after.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30


@kopf.on.create(constants.GROUP, constants.VERSION, constants.PLURAL)
@kopf.on.resume(constants.GROUP, constants.VERSION, constants.PLURAL)
async def admit(
    spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, patch: kopf.Patch, **_: Any
) -> None:
    """A new order: record its total and put it in Pending."""
    if status.get("phase"):
        return
    now = datetime.now(UTC)
    order = saga.Order(
        OrderSpec.model_validate(dict(spec)),
        OrderStatus(),
        generation=int(meta.get("generation", 1)),
        created_at=now,
    )
    admitted = saga.next_move(order, now)
    assert isinstance(admitted, saga.Advance)
    patch.status.update(admitted.status.model_dump(mode="json", by_alias=True, exclude_none=True))
