"""Kopf's bookkeeping for Orders (korder.operator.bookkeeping): nothing written on the way."""

from __future__ import annotations

from typing import Any, cast

import kopf

from korder.operator import bookkeeping


def body(uid: str = "u-1", generation: int = 1, **annotations: str) -> kopf.Body:
    raw: dict[str, Any] = {
        "metadata": {"uid": uid, "generation": generation, "annotations": annotations},
        "status": {"phase": "Confirmed"},
    }
    return kopf.Body(cast(kopf.RawBody, raw))


def test_a_new_generation_is_a_change_and_a_status_write_is_not() -> None:
    storage = bookkeeping.GenerationDiffBase()
    first = body()
    assert storage.fetch(body=first) is None  # never handled: Kopf's create
    patch = kopf.Patch()
    storage.store(body=first, patch=patch, essence=storage.build(body=first))
    assert not patch, "remembered in memory, not on the object"
    assert storage.fetch(body=first) == storage.build(body=body(generation=1))
    assert storage.fetch(body=first) != storage.build(body=body(generation=2))


def test_the_oldest_orders_are_forgotten_past_the_limit() -> None:
    storage = bookkeeping.GenerationDiffBase(limit=2)
    for uid in ("a", "b", "c"):
        order = body(uid)
        storage.store(body=order, patch=kopf.Patch(), essence=storage.build(body=order))
    assert storage.fetch(body=body("a")) is None
    assert storage.fetch(body=body("c")) is not None


def test_a_handler_that_succeeded_at_once_leaves_nothing_behind() -> None:
    storage = bookkeeping.RetriesOnlyProgress(prefix="korder.dev")
    patch = kopf.Patch()
    done = cast(kopf.ProgressRecord, {"success": True, "retries": 1, "started": "t"})
    storage.store(key=kopf.HandlerId("drive"), record=done, body=body(), patch=patch)
    storage.purge(key=kopf.HandlerId("drive"), body=body(), patch=patch)
    assert not patch


def test_a_retry_is_stored_for_the_backoff() -> None:
    storage = bookkeeping.RetriesOnlyProgress(prefix="korder.dev")
    patch = kopf.Patch()
    waiting = cast(kopf.ProgressRecord, {"retries": 2, "delayed": "t", "started": "t"})
    storage.store(key=kopf.HandlerId("drive"), record=waiting, body=body(), patch=patch)
    assert "korder.dev/drive" in patch["metadata"]["annotations"]
