"""One reconciliation turn (korder.operator.reconciling), over a fake store and real participants.

The store stands in for the API server's status subresource: guarded by the
resourceVersion, like :func:`korder.kube.status_writing.write`. The participants are
the reference app, served in process, so their ledgers show what was really done.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry

from korder.domain import saga, steps
from korder.domain.order import Carrier, FulfillmentRequest, Order, OrderStatus, Phase
from korder.kube import orders
from korder.operator import observing, reconciling
from korder.participant_clients import calls, circuitbreaker
from korder.participants.app import create_app
from korder.settings import Settings
from tests.support.orders import resource
from tests.support.participants import ledger

BASE, CAP, ATTEMPTS = 0.5, 30.0, 3


@dataclass
class Store:
    """The Order as the API server keeps it; refuses writes decided on an old version."""

    order: Order
    writes: int = 0
    attempts: int = 0
    refuse: set[int] = field(default_factory=set)  # refuse these writes (1 = the first)
    lose_writes: bool = False  # answer as if written, but keep nothing
    notes: list[str] = field(default_factory=list)

    async def read(self, _namespace: str, _name: str) -> Order:
        return self.order

    async def write(self, order: Order, status: OrderStatus) -> Order:
        self.attempts += 1
        if self.attempts in self.refuse:
            self._bump()  # someone else wrote first
        if order.metadata.resource_version != self.order.metadata.resource_version:
            raise orders.Conflict("the object has been modified")
        self.writes += 1
        if self.lose_writes:
            return self.order
        self.order = self.order.model_copy(update={"status": status})
        self._bump()
        return self.order

    def _bump(self) -> None:
        version = str(int(self.order.metadata.resource_version) + 1)
        meta = self.order.metadata.model_copy(update={"resource_version": version})
        self.order = self.order.model_copy(update={"metadata": meta})

    def announce(self, _order: Order, note: steps.Note) -> None:
        self.notes.append(note.reason)


@pytest.fixture
async def participants() -> AsyncIterator[calls.Participants]:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(Settings())))

    def participant(name: str) -> calls.Participant:
        breaker = circuitbreaker.CircuitBreaker(name, min_calls=2, reset_timeout=7.0)
        return calls.Participant(
            name, f"http://p/{name}", http, breaker, timeout=5, attempts=1, retry_base=BASE
        )

    names = Settings().participant_urls()
    yield calls.Participants({name: participant(name) for name in names}, http)
    await http.aclose()


def context(
    store: Store, participants: calls.Participants, registry: CollectorRegistry | None = None
) -> reconciling.Context:
    return reconciling.Context(
        read=store.read,
        write=store.write,
        participants=participants,
        policy=saga.Policy(deadline=timedelta(minutes=5)),
        retry_base=BASE,
        retry_cap=CAP,
        attempts_per_call=ATTEMPTS,
        rng=random.Random(3),
        observer=observing.Observer(registry or CollectorRegistry()),
    )


async def test_a_new_order_is_driven_to_confirmed_and_then_waits(
    participants: calls.Participants,
) -> None:
    store = Store(resource())
    ctx = context(store, participants)
    assert await reconciling.reconcile(ctx, store.order, retry=0, announce=store.announce) is None
    assert store.order.status.phase == Phase.CONFIRMED
    assert [h.type for h in store.order.status.history or ()] == [
        "OrderAccepted",
        "SagaStarted",
        "InventoryReserved",
        "PaymentCaptured",
        "OrderConfirmed",
    ]
    # The history holds every note; an Event only where the saga came to rest.
    assert store.notes == ["OrderConfirmed"]
    # Written only where the saga would lose something: before each call (admitted,
    # started and the reservation marked; reserved and the capture marked) and at rest.
    assert store.writes == 3
    assert len(await ledger(participants.http, "inventory", base="http://p")) == 1
    assert len(await ledger(participants.http, "payment", base="http://p")) == 1


async def test_a_failing_participant_gives_a_delay_on_the_backoff_curve(
    participants: calls.Participants,
) -> None:
    await participants.http.put("http://p/inventory/faults", json={"unavailable": True})
    store = Store(resource())
    ctx = context(store, participants)
    for retry in (0, 2):
        delay = await reconciling.reconcile(ctx, store.order, retry=retry, announce=store.announce)
        assert delay is not None
        # The step's retries go on from where the call's own attempts ended.
        bound = min(CAP, BASE * 2 ** (ATTEMPTS + retry))
        assert bound / 2 <= delay <= bound
    assert store.order.status.phase == Phase.RESERVING_INVENTORY


async def test_an_open_breaker_gives_its_own_delay(participants: calls.Participants) -> None:
    await participants.http.put("http://p/inventory/faults", json={"unavailable": True})
    store = Store(resource())
    ctx = context(store, participants)
    for retry in range(2):  # two failed calls open the breaker (min_calls=2)
        await reconciling.reconcile(ctx, store.order, retry=retry, announce=store.announce)
    delay = await reconciling.reconcile(ctx, store.order, retry=2, announce=store.announce)
    assert delay is not None
    # The breaker's reset timeout, plus a little jitter (at most five bases).
    assert 6.0 <= delay <= 7.0 + BASE * 5
    condition = next(
        c for c in store.order.status.conditions or () if c.type == steps.RESERVE.condition
    )
    assert condition.reason == "CircuitOpen"


async def test_a_refused_write_is_decided_again_and_the_call_replayed(
    participants: calls.Participants,
) -> None:
    store = Store(resource())
    ctx = context(store, participants)
    await reconciling.reconcile(ctx, store.order, retry=0, announce=store.announce)
    asked = store.order.spec.model_copy(
        update={
            "process_requested": True,
            "fulfillment": FulfillmentRequest(carrier=Carrier.EXPRESS),
        }
    )
    store.order = store.order.model_copy(update={"spec": asked})
    # From Confirmed: write 1 stores Processing and the shipment's mark, then the call;
    # write 2 (the shipment done) is refused, as if someone wrote first.
    store.attempts, store.writes, store.refuse = 0, 0, {2}
    await reconciling.reconcile(ctx, store.order, retry=0, announce=store.announce)
    # Refused once; the mark was stored already, so: the call again, then one write.
    assert (store.attempts, store.writes) == (3, 2)
    assert store.order.status.phase == Phase.FULFILLED
    assert store.notes.count("OrderFulfilled") == 1
    # The call was made again after the refusal: a replay, not a second shipment.
    assert len(await ledger(participants.http, "shipping", base="http://p")) == 1


async def test_a_store_that_keeps_nothing_cannot_make_it_spin(
    participants: calls.Participants,
) -> None:
    store = Store(resource(), lose_writes=True)
    ctx = context(store, participants)
    delay = await reconciling.reconcile(ctx, store.order, retry=0, announce=store.announce)
    # Bounded: after MAX_MOVES it hands back to Kopf (a retry at once), not a loop.
    assert delay == 0.0
    assert 0 < store.writes <= reconciling.MAX_MOVES


def test_events_are_the_warnings_and_where_the_saga_rests() -> None:
    started = steps.Note("SagaStarted", "Reserving inventory.")
    declined = steps.Note("PaymentDeclined", "declined", warning=True)
    released = steps.Note("InventoryReleased", "Inventory released.")
    failed = steps.Note("OrderFailed", "declined", warning=True)
    confirmed = steps.Note("OrderConfirmed", "Done.")
    assert reconciling.worth_an_event([started], at_rest=False) == []
    assert reconciling.worth_an_event([declined], at_rest=False) == [declined]
    assert reconciling.worth_an_event([released, failed], at_rest=True) == [failed]
    assert reconciling.worth_an_event([started, confirmed], at_rest=True) == [confirmed]
    assert reconciling.worth_an_event([], at_rest=True) == []


async def test_what_a_saga_did_is_counted_once_stored(participants: calls.Participants) -> None:
    store = Store(resource())
    registry = CollectorRegistry()
    ctx = context(store, participants, registry)
    await reconciling.reconcile(ctx, store.order, retry=0, announce=store.announce)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    # Admission (no phase yet) is not a transition; every phase change after it is.
    transitions = "korder_order_phase_transitions_total"
    assert value(transitions, **{"from": "Pending", "to": "ReservingInventory"}) == 1
    assert value(transitions, **{"from": "ReservingInventory", "to": "ProcessingPayment"}) == 1
    assert value(transitions, **{"from": "ProcessingPayment", "to": "Confirmed"}) == 1
    assert value("korder_saga_duration_seconds_count") == 1
    for step, participant in (("reserve-inventory", "inventory"), ("capture-payment", "payment")):
        calls_done = {"participant": participant, "step": step, "outcome": "succeeded"}
        assert value("korder_saga_call_duration_seconds_count", **calls_done) == 1
        assert value("korder_saga_step_duration_seconds_count", step=step, outcome="succeeded") == 1
    assert value("korder_orders", phase="Confirmed") == 1
    assert value("korder_orders", phase="Pending") == 0
    assert value("korder_orders_past_deadline") == 0


async def test_a_retried_step_is_counted_and_timed_once_it_settles(
    participants: calls.Participants,
) -> None:
    store, registry, ctx = await with_inventory_down(participants)
    await reconciling.reconcile(ctx, store.order, retry=0, announce=store.announce)
    step = {"step": "reserve-inventory"}
    assert registry.get_sample_value("korder_saga_retries_total", {**step, "reason": "failed"}) == 1
    assert registry.get_sample_value("korder_orders", {"phase": "ReservingInventory"}) == 1
    await participants.http.put("http://p/inventory/faults", json={"unavailable": False})
    await reconciling.reconcile(ctx, store.order, retry=1, announce=store.announce)
    done = {**step, "outcome": "succeeded"}
    # One step, from its first (failed) call to the call that settled it.
    assert registry.get_sample_value("korder_saga_step_duration_seconds_count", done) == 1
    assert registry.get_sample_value("korder_orders", {"phase": "ReservingInventory"}) == 0


async def test_an_order_still_at_work_past_its_deadline_is_counted(
    participants: calls.Participants,
) -> None:
    store, registry, ctx = await with_inventory_down(participants)
    ctx.policy = saga.Policy(deadline=timedelta(seconds=-1))  # passed from the start
    await reconciling.reconcile(ctx, store.order, retry=0, announce=store.announce)
    assert registry.get_sample_value("korder_orders_past_deadline") == 1


async def with_inventory_down(
    participants: calls.Participants,
) -> tuple[Store, CollectorRegistry, reconciling.Context]:
    """A new order, metrics of its own, and an inventory service that answers 503."""
    await participants.http.put("http://p/inventory/faults", json={"unavailable": True})
    store, registry = Store(resource()), CollectorRegistry()
    return store, registry, context(store, participants, registry)
