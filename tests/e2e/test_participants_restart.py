"""The reference participants SIGKILLed and started again on the same state file.

Each test starts its own participants process (not the session's), with
``KORDER_PARTICIPANTS_STATE`` a file in ``tmp_path``, kills it with SIGKILL (no
shutdown, as a crash or an OOM kill) and starts it again on that file: every key
answered before the kill replays its first answer, no effect is applied twice,
and the stock adds up. No control plane is needed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from korder.localcluster import processes
from tests.e2e.conftest import Participants, start_participants
from tests.support.waiting import wait_for

CHARGE = {"amount": "44.98", "currency": "USD", "paymentMethod": "credit_card"}
#: Orders of the traffic test: each one a reservation and a charge.
ORDERS = 150


@pytest.fixture
def durable(tmp_path: Path) -> Iterator[Participants]:
    """A participants process of this test's own, its state in ``tmp_path``."""
    started = start_participants(
        tmp_path / "participants.log",
        KORDER_PARTICIPANTS_STATE=str(tmp_path / "participants.db"),
        KORDER_LOG_LEVEL="WARNING",
    )
    yield started
    processes.stop([started.component.proc])


def post(
    url: str, key: str, body: dict[str, Any] | None = None, client: httpx.Client | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key}
    if client is None:
        return httpx.post(url, json=body, headers=headers, timeout=10.0)
    return client.post(url, json=body, headers=headers)


def writes(p: Participants) -> list[tuple[str, str, dict[str, Any]]]:
    """(url, key, body) of every write of the traffic test."""
    out = []
    for n in range(ORDERS):
        order = f"o-{n}"
        items = [{"productId": "PROD-001", "quantity": 1}]
        out.append(
            (f"{p.url('inventory')}/reservations", f"r-{n}", {"orderId": order, "items": items})
        )
        out.append((f"{p.url('payment')}/charges", f"c-{n}", {"orderId": order, **CHARGE}))
    return out


def test_a_kill_mid_traffic_repeats_no_effect_and_loses_no_answer(durable: Participants) -> None:
    initial = durable.stock()["PROD-001"]
    todo = writes(durable)
    answered: dict[str, tuple[int, Any]] = {}
    lost: list[str] = []
    lock = threading.Lock()

    def send(url: str, key: str, body: dict[str, Any]) -> None:
        try:
            response = post(url, key, body, client)
        except httpx.TransportError:
            with lock:
                lost.append(key)  # refused, or cut off mid-call: in doubt either way
            return
        with lock:
            answered[key] = (response.status_code, response.json())

    # One client (its pool is thread-safe) for the traffic, a new one after the restart.
    with httpx.Client(timeout=10.0) as client, ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(send, *write) for write in todo]
        wait_for(lambda: len(answered) >= 60, timeout=30, what="60 answers before the kill")
        durable.component.kill()
        for future in futures:
            future.result()
    assert 60 <= len(answered) < len(todo), "the kill came after the traffic: nothing in doubt"
    assert lost

    durable.component.restart()
    # Every client retries with its key, as the operator does.
    with httpx.Client(timeout=10.0) as client:
        again = {key: post(url, key, body, client) for url, key, body in todo}
    for key, (code, body) in answered.items():
        assert (again[key].status_code, again[key].json()) == (code, body), key
        assert again[key].headers.get("Idempotent-Replayed") == "true", key
    assert all(again[key].status_code == 201 for key in lost)

    reserves = durable.ledger("inventory")
    charges = durable.ledger("payment")
    # One effect per key, however many times it was sent and wherever the kill fell.
    assert sorted(e["key"] for e in reserves) == sorted(f"r-{n}" for n in range(ORDERS))
    assert sorted(e["key"] for e in charges) == sorted(f"c-{n}" for n in range(ORDERS))
    for entry in charges:
        assert again[entry["key"]].json() == {"paymentId": entry["paymentId"]}
    assert durable.stock()["PROD-001"] == initial - ORDERS


def test_a_charge_in_doubt_at_the_kill_is_replayed_not_repeated(durable: Participants) -> None:
    url = f"{durable.url('payment')}/charges"
    body = {"orderId": "o-doubt", **CHARGE}
    reserved = post(
        f"{durable.url('inventory')}/reservations",
        "r-doubt",
        {"orderId": "o-doubt", "items": [{"productId": "PROD-002", "quantity": 3}]},
    )
    assert reserved.status_code == 201
    stock = durable.stock()

    durable.faults("payment", holdResponses=True)
    outcome: list[BaseException | httpx.Response] = []

    def charge() -> None:
        try:
            outcome.append(post(url, "c-doubt", body))
        except httpx.TransportError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=charge)
    caller.start()
    wait_for(lambda: durable.ledger("payment"), what="the held charge to apply")
    [applied] = durable.ledger("payment")
    durable.component.kill()  # the charge is made; its answer never leaves
    caller.join(timeout=10)
    assert isinstance(outcome[0], httpx.TransportError)

    durable.component.restart()
    retried = post(url, "c-doubt", body)
    assert retried.status_code == 201
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json() == {"paymentId": applied["paymentId"]}
    assert durable.effects("payment", "o-doubt") == {"charge": 1}
    # Faults are test switches, not state: the restart switched the hold off.
    assert httpx.get(f"{durable.url('payment')}/faults").json()["holdResponses"] is False
    # Stock and reservations came through: the release gives the 3 units back.
    assert durable.stock() == stock
    rid = reserved.json()["reservationId"]
    released = post(f"{durable.url('inventory')}/reservations/{rid}/release", "rel-doubt")
    assert released.status_code == 200
    assert durable.stock()["PROD-002"] == stock["PROD-002"] + 3
    # The same key on another request is still refused after the restart.
    reused = post(url, "c-doubt", {**body, "amount": "1.00"})
    assert reused.status_code == 422
    assert reused.json()["error"] == "idempotency_key_reused"
