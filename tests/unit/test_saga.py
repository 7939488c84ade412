"""The saga state machine, driven without a cluster: every step, every failure, every phase."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from korder.domain import saga
from korder.domain.order import (
    HISTORY_LIMIT,
    Carrier,
    FulfillmentRequest,
    OrderSpec,
    OrderStatus,
    Phase,
)
from korder.domain.saga import Action

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = saga.Policy(deadline=timedelta(seconds=60))
SPEC = OrderSpec.model_validate(
    {
        "customer": {"id": "c-1"},
        "items": [{"productId": "PROD-001", "quantity": 2, "price": "19.99"}],
        "shippingAddress": {"street": "1 A St", "city": "X", "postalCode": "1", "country": "GB"},
        "paymentMethod": "credit_card",
    }
)
IDS = {
    Action.RESERVE_INVENTORY: {"reservationId": "res-1"},
    Action.CAPTURE_PAYMENT: {"paymentId": "pay-1"},
    Action.SHIP: {"carrier": "EXPRESS", "trackingNumber": "TRK-1"},
}

Answer = Callable[[Action, int], saga.Outcome]


def succeed(action: Action, _attempt: int) -> saga.Outcome:
    return saga.Succeeded(action, IDS.get(action, {}))


@dataclass
class Run:
    """A saga driven to rest: the calls it made and the records it wrote."""

    order: saga.Order
    now: datetime = T0
    calls: list[Action] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    writes: int = 0

    @property
    def status(self) -> OrderStatus:
        return self.order.status

    def phase(self) -> Phase | None:
        # A method, not a property: mypy would keep a narrowed property across calls.
        return self.order.status.phase

    def drive(self, answer: Answer = succeed, limit: int = 200) -> Run:
        """Run moves until Idle; each transient failure lets 10 seconds pass."""
        attempts: dict[Action, int] = {}
        for _ in range(limit):
            move = saga.next_move(self.order, self.now)
            if isinstance(move, saga.Idle):
                return self
            if isinstance(move, saga.Call):
                self.calls.append(move.action)
                attempt = attempts[move.action] = attempts.get(move.action, 0) + 1
                move = saga.apply(self.order, answer(move.action, attempt), POLICY, self.now)
                if move.retry:
                    self.now += timedelta(seconds=10)
            self._write(move)
        raise AssertionError(f"the saga did not come to rest: {self.calls[-10:]}")

    def _write(self, move: saga.Advance) -> None:
        self.writes += 1
        self.records += [r.reason for r in move.records]
        self.order = replace(self.order, status=move.status)

    def with_spec(self, **changes: object) -> Run:
        spec = self.order.spec.model_copy(update=changes)
        self.order = replace(self.order, spec=spec, generation=self.order.generation + 1)
        return self

    def condition(self, type_: str) -> tuple[str, str] | None:
        for c in self.status.conditions or ():
            if c.type == type_:
                return (str(c.status), c.reason)
        return None


def new_order() -> Run:
    return Run(saga.Order(SPEC, OrderStatus(), generation=1, created_at=T0))


def confirmed() -> Run:
    return new_order().drive()


def fulfil(run: Run) -> Run:
    run.with_spec(process_requested=True).drive()
    return run.with_spec(fulfillment=FulfillmentRequest(carrier=Carrier.EXPRESS)).drive()


def counts(calls: list[Action]) -> dict[Action, int]:
    return {a: calls.count(a) for a in Action if calls.count(a)}


# --- The happy path -----------------------------------------------------------------


def test_happy_path_reaches_confirmed_then_fulfilled() -> None:
    run = confirmed()
    assert run.phase() == Phase.CONFIRMED
    assert run.status.total == "39.98"
    assert run.status.reservation_id == "res-1"
    assert run.status.payment_id == "pay-1"
    assert run.calls == [Action.RESERVE_INVENTORY, Action.CAPTURE_PAYMENT]
    assert run.records == [
        "OrderAccepted",
        "SagaStarted",
        "InventoryReserved",
        "PaymentCaptured",
        "OrderConfirmed",
    ]
    assert run.condition(saga.READY) == ("True", "Confirmed")
    assert run.condition(saga.RECONCILING) == ("False", "Confirmed")
    assert run.condition(saga.STALLED) == ("False", "Confirmed")
    assert run.condition(saga.INVENTORY_RESERVED) == ("True", "Succeeded")
    assert run.condition(saga.PAYMENT_CAPTURED) == ("True", "Succeeded")

    fulfil(run)
    assert run.phase() == Phase.FULFILLED
    assert run.status.shipment is not None
    assert run.status.shipment.tracking_number == "TRK-1"
    assert run.calls[-1] == Action.SHIP
    assert run.records[-3:] == ["OrderProcessing", "FulfillmentRequested", "OrderFulfilled"]
    assert run.condition(saga.READY) == ("True", "Fulfilled")
    assert run.condition(saga.SHIPPED) == ("True", "Succeeded")


def test_confirmed_waits_for_process_and_processing_waits_for_fulfillment() -> None:
    run = confirmed()
    assert isinstance(saga.next_move(run.order, run.now), saga.Idle)
    run.with_spec(process_requested=True).drive()
    assert run.phase() == Phase.PROCESSING
    assert isinstance(saga.next_move(run.order, run.now), saga.Idle)
    assert run.condition(saga.RECONCILING) == ("False", "Processing")


def test_conditions_carry_the_generation_they_were_set_for() -> None:
    run = confirmed().with_spec(process_requested=True).drive()
    assert run.order.generation == 2
    assert run.status.observed_generation == 2
    ready = next(c for c in run.status.conditions or () if c.type == saga.READY)
    assert ready.observed_generation == 2
    # Ready did not change status, so its transition time is the first one.
    assert ready.last_transition_time == "2026-01-01T00:00:00Z"


# --- Failures at every step ---------------------------------------------------------

# For each step: the compensations a failure there must run (the steps done before it).
UNDO_BEFORE = {
    Action.RESERVE_INVENTORY: [],
    Action.CAPTURE_PAYMENT: [Action.RELEASE_INVENTORY],
    Action.SHIP: [Action.REFUND_PAYMENT, Action.RELEASE_INVENTORY],
}


def _drive_to(step: Action, answer: Answer) -> Run:
    run = new_order().drive(answer)
    if step == Action.SHIP:
        fulfil_answer = answer
        run.with_spec(process_requested=True).drive(fulfil_answer)
        run.with_spec(fulfillment=FulfillmentRequest(carrier=Carrier.STANDARD)).drive(answer)
    return run


@pytest.mark.parametrize("step", list(UNDO_BEFORE))
def test_permanent_failure_compensates_exactly_the_completed_steps(step: Action) -> None:
    def answer(action: Action, attempt: int) -> saga.Outcome:
        if action == step:
            return saga.Rejected(action, "no")
        return succeed(action, attempt)

    run = _drive_to(step, answer)
    assert run.phase() == Phase.FAILED
    assert run.status.failure_reason == "no"
    assert run.calls.count(step) == 1, "a permanent failure is not retried"
    assert run.calls[run.calls.index(step) + 1 :] == UNDO_BEFORE[step]
    assert run.records[-1] == "OrderFailed"
    assert run.condition(saga.STALLED) == ("True", "OrderFailed")
    assert run.condition(saga.READY) == ("False", "Failed")
    undone = {saga.INVENTORY_RESERVED, saga.PAYMENT_CAPTURED} & {
        c.type for c in run.status.conditions or () if c.reason == "Compensated"
    }
    assert len(undone) == len(UNDO_BEFORE[step])


@pytest.mark.parametrize("step", list(UNDO_BEFORE))
def test_transient_failure_retries_the_same_step_then_goes_on(step: Action) -> None:
    def answer(action: Action, attempt: int) -> saga.Outcome:
        if action == step and attempt <= 3:
            return saga.Failed(action, "503")
        return succeed(action, attempt)

    run = _drive_to(step, answer)
    assert run.phase() == (Phase.FULFILLED if step == Action.SHIP else Phase.CONFIRMED)
    assert run.calls.count(step) == 4
    assert Action.REFUND_PAYMENT not in run.calls
    assert Action.RELEASE_INVENTORY not in run.calls


def test_a_retrying_step_says_why_in_its_condition() -> None:
    run = _run_until(Phase.RESERVING_INVENTORY, marked=True)
    failed = saga.Failed(Action.RESERVE_INVENTORY, "connection refused")
    move = saga.apply(run.order, failed, POLICY, T0)
    assert move.retry
    assert move.status.phase == Phase.RESERVING_INVENTORY
    cond = next(c for c in move.status.conditions or () if c.type == saga.INVENTORY_RESERVED)
    assert (cond.status, cond.reason) == ("Unknown", "Retrying")
    assert cond.message == "reserve-inventory: connection refused"
    reconciling = next(c for c in move.status.conditions or () if c.type == saga.RECONCILING)
    assert reconciling.status == "True"


@pytest.mark.parametrize("step", [Action.RESERVE_INVENTORY, Action.CAPTURE_PAYMENT])
def test_endless_transient_failure_hits_the_deadline_and_compensates(step: Action) -> None:
    down = {step}

    def answer(action: Action, attempt: int) -> saga.Outcome:
        if action in down:
            return saga.Failed(action, "timeout")
        return succeed(action, attempt)

    run = new_order()
    # The participant comes back for the compensation only: stop at Compensating first.
    for _ in range(100):
        move = saga.next_move(run.order, run.now)
        if run.status.phase == Phase.COMPENSATING:
            break
        if isinstance(move, saga.Call):
            run.calls.append(move.action)
            move = saga.apply(run.order, answer(move.action, 1), POLICY, run.now)
            run.now += timedelta(seconds=10)
        assert isinstance(move, saga.Advance)
        run._write(move)
    assert run.phase() == Phase.COMPENSATING
    assert "DeadlineExceeded" in run.records
    assert run.status.failure_reason is not None
    assert "deadline of 60s exceeded" in run.status.failure_reason
    down.clear()
    run.drive()
    assert run.phase() == Phase.FAILED
    # The step in doubt is settled (replayed) and then undone, like the ones before it.
    assert run.calls[-len(UNDO_BEFORE[step]) - 2 :][0] == step
    expected_undo = [*UNDO_BEFORE[step]]
    expected_undo.insert(0, saga.COMPENSATIONS[0 if step == Action.CAPTURE_PAYMENT else 1].action)
    assert run.calls[-len(expected_undo) :] == expected_undo


def test_the_deadline_counts_from_the_start_of_the_saga_not_the_creation() -> None:
    # Created an hour ago (the operator was down), started now: the full time is left.
    run = Run(saga.Order(SPEC, OrderStatus(), 1, created_at=T0 - timedelta(hours=1)))
    run = _run_until_marked(run)
    late = saga.apply(run.order, saga.Failed(Action.RESERVE_INVENTORY, "503"), POLICY, T0)
    assert late.retry
    assert late.status.phase == Phase.RESERVING_INVENTORY
    later = T0 + POLICY.deadline
    failed = saga.apply(run.order, saga.Failed(Action.RESERVE_INVENTORY, "503"), POLICY, later)
    assert failed.status.phase == Phase.COMPENSATING


def _run_until_marked(run: Run) -> Run:
    while not isinstance(saga.next_move(run.order, run.now), saga.Call):
        move = saga.next_move(run.order, run.now)
        assert isinstance(move, saga.Advance)
        run._write(move)
    return run


def test_an_open_breaker_defers_but_never_fails_the_order() -> None:
    def answer(action: Action, attempt: int) -> saga.Outcome:
        if attempt <= 50:
            return saga.Deferred(action, "inventory circuit open")
        return succeed(action, attempt)

    run = new_order()
    saga_calls = 0
    while run.status.phase != Phase.CONFIRMED and saga_calls < 200:
        saga_calls += 1
        move = saga.next_move(run.order, run.now)
        if isinstance(move, saga.Call):
            move = saga.apply(run.order, answer(move.action, saga_calls), POLICY, run.now)
            run.now += timedelta(seconds=10)  # 500 s: well past the deadline
            if saga_calls <= 50:
                assert move.retry
        assert isinstance(move, saga.Advance)
        run._write(move)
        if saga_calls == 10:
            assert run.condition(saga.INVENTORY_RESERVED) == ("Unknown", "CircuitOpen")
            assert run.phase() == Phase.RESERVING_INVENTORY
    assert run.phase() == Phase.CONFIRMED


def test_compensation_never_gives_up_and_stalls_past_the_deadline() -> None:
    def answer(action: Action, attempt: int) -> saga.Outcome:
        if action == Action.CAPTURE_PAYMENT:
            return saga.Rejected(action, "declined")
        if action == Action.RELEASE_INVENTORY and attempt <= 10:
            return saga.Failed(action, "503")
        return succeed(action, attempt)

    run = new_order()
    run.drive(answer)
    assert run.phase() == Phase.FAILED
    assert run.calls.count(Action.RELEASE_INVENTORY) == 11
    assert run.calls.count(Action.RESERVE_INVENTORY) == 1, "a retried undo is not in doubt"
    assert "CompensationRetrying" not in {c.reason for c in run.status.conditions or ()}

    stuck = new_order()
    with pytest.raises(AssertionError, match="did not come to rest"):
        stuck.drive(lambda a, n: answer(a, 1 if a != Action.RELEASE_INVENTORY else 0))
    assert stuck.phase() == Phase.COMPENSATING
    assert stuck.condition(saga.STALLED) == ("True", "CompensationRetrying")


# --- Cancellation at every phase ----------------------------------------------------


def _run_until(phase: Phase | None, marked: bool) -> Run:
    """A saga stopped in ``phase``; with ``marked``, its step is started (in doubt)."""
    run = new_order()
    if phase is None:
        return run
    for _ in range(50):
        move = saga.next_move(run.order, run.now)
        in_phase = run.status.phase == phase
        if in_phase and (not marked or isinstance(move, (saga.Call, saga.Idle))):
            return run
        if isinstance(move, saga.Idle):
            run.with_spec(process_requested=True)
            continue
        if isinstance(move, saga.Call):
            run.calls.append(move.action)
            move = saga.apply(run.order, succeed(move.action, 1), POLICY, run.now)
        run._write(move)
    raise AssertionError(f"never reached {phase}")


# phase, whether its step is in doubt, the calls a cancellation then makes.
CANCEL_CASES = [
    (None, False, []),
    (Phase.PENDING, False, []),
    (Phase.RESERVING_INVENTORY, False, []),
    (Phase.RESERVING_INVENTORY, True, [Action.RESERVE_INVENTORY, Action.RELEASE_INVENTORY]),
    (Phase.PROCESSING_PAYMENT, False, [Action.RELEASE_INVENTORY]),
    (
        Phase.PROCESSING_PAYMENT,
        True,
        [Action.CAPTURE_PAYMENT, Action.REFUND_PAYMENT, Action.RELEASE_INVENTORY],
    ),
    (Phase.CONFIRMED, False, [Action.REFUND_PAYMENT, Action.RELEASE_INVENTORY]),
    (Phase.PROCESSING, False, [Action.REFUND_PAYMENT, Action.RELEASE_INVENTORY]),
]


@pytest.mark.parametrize(("phase", "marked", "undo"), CANCEL_CASES)
@pytest.mark.parametrize("deleting", [False, True], ids=["cancel", "delete"])
def test_cancellation_compensates_what_happened_or_may_have(
    phase: Phase | None, marked: bool, undo: list[Action], deleting: bool
) -> None:
    run = _run_until(phase, marked)
    before = len(run.calls)
    if deleting:
        run.order = replace(run.order, deleting=True)
    else:
        run.with_spec(cancel_requested=True)
    run.drive()
    assert run.phase() == Phase.CANCELLED
    assert run.calls[before:] == undo
    assert run.records[-1] == "OrderCancelled"
    assert "CancellationRequested" in run.records
    assert run.condition(saga.READY) == ("False", "Cancelled")
    assert run.condition(saga.STALLED) == ("False", "Cancelled")


def test_cancel_in_doubt_step_that_was_never_done_undoes_nothing() -> None:
    run = _run_until(Phase.RESERVING_INVENTORY, marked=True).with_spec(cancel_requested=True)
    run.drive(lambda a, n: saga.Rejected(a, "out of stock"))
    assert run.phase() == Phase.CANCELLED
    assert run.calls == [Action.RESERVE_INVENTORY]
    assert run.condition(saga.INVENTORY_RESERVED) == ("False", "Rejected")


@pytest.mark.parametrize("where", ["shipping", "fulfilled", "failed"])
def test_too_late_to_cancel_is_said_once_and_changes_nothing(where: str) -> None:
    if where == "failed":
        run = new_order().drive(lambda a, n: saga.Rejected(a, "out of stock"))
    else:
        run = confirmed().with_spec(process_requested=True).drive()
        run.with_spec(fulfillment=FulfillmentRequest(carrier=Carrier.OVERNIGHT))
        if where == "fulfilled":
            run.drive()
    phase_before, calls_before = run.status.phase, list(run.calls)
    run.with_spec(cancel_requested=True).drive()
    run.with_spec().drive()  # the next change (or a restart) sees the same request
    assert run.records.count("CancellationRejected") == 1
    expected = Phase.FULFILLED if where != "failed" else phase_before
    assert run.phase() == expected
    assert Action.REFUND_PAYMENT not in run.calls[len(calls_before) :]


def test_deleting_a_final_order_needs_nothing() -> None:
    run = fulfil(confirmed())
    run.order = replace(run.order, deleting=True)
    assert isinstance(saga.next_move(run.order, run.now), saga.Idle)


def test_deleting_while_compensating_finishes_the_compensation() -> None:
    run = _run_until(Phase.PROCESSING_PAYMENT, marked=True)
    run._write(saga.apply(run.order, saga.Rejected(Action.CAPTURE_PAYMENT, "declined"), POLICY, T0))
    assert run.phase() == Phase.COMPENSATING
    run.order = replace(run.order, deleting=True)
    run.drive()
    assert run.phase() == Phase.FAILED
    assert run.calls[-1] == Action.RELEASE_INVENTORY


# --- The same event twice -----------------------------------------------------------


@pytest.mark.parametrize(
    "outcome",
    [
        saga.Succeeded(Action.RESERVE_INVENTORY, IDS[Action.RESERVE_INVENTORY]),
        saga.Rejected(Action.RESERVE_INVENTORY, "out of stock"),
    ],
    ids=["success", "rejection"],
)
def test_the_same_outcome_twice_changes_nothing_the_second_time(outcome: saga.Outcome) -> None:
    run = _run_until(Phase.RESERVING_INVENTORY, marked=True)
    first = saga.apply(run.order, outcome, POLICY, T0)
    run._write(first)
    second = saga.apply(run.order, outcome, POLICY, T0 + timedelta(seconds=1))
    assert second.status == run.status
    assert second.records == ()


def test_a_late_answer_for_another_step_changes_nothing() -> None:
    run = confirmed()
    late = saga.apply(run.order, saga.Failed(Action.RESERVE_INVENTORY, "timeout"), POLICY, T0)
    assert late.status == run.status
    assert not late.retry


def test_a_spec_change_with_nothing_to_do_is_still_observed() -> None:
    run = confirmed().with_spec(notes="leave at the door")
    writes = run.writes
    run.drive()
    assert run.writes == writes + 1
    assert run.status.observed_generation == 2
    ready = next(c for c in run.status.conditions or () if c.type == saga.READY)
    assert ready.observed_generation == 2
    assert isinstance(saga.next_move(run.order, run.now), saga.Idle)


def test_the_same_spec_seen_twice_makes_no_second_call() -> None:
    run = confirmed()
    calls = list(run.calls)
    run.drive()
    run.with_spec(process_requested=True).drive()
    run.with_spec(process_requested=True).drive()
    assert run.calls == calls
    assert run.records.count("OrderProcessing") == 1


# --- Bits ---------------------------------------------------------------------------


def test_idempotency_key_is_per_order_and_step() -> None:
    keys = {saga.idempotency_key(u, a) for u, a in itertools.product(["u1", "u2"], Action)}
    assert len(keys) == 2 * len(Action)
    assert saga.idempotency_key("u1", Action.CAPTURE_PAYMENT) == "u1/capture-payment"


def test_history_is_bounded_and_keeps_the_newest() -> None:
    run = confirmed()
    full = [run.status.history[0]] * HISTORY_LIMIT  # type: ignore[index]
    run.order = replace(run.order, status=run.status.model_copy(update={"history": full}))
    run.with_spec(process_requested=True).drive()
    history = run.status.history or []
    assert len(history) == HISTORY_LIMIT
    assert history[-1].type == "OrderProcessing"


def test_compensations_run_in_reverse_order_of_their_steps() -> None:
    undone = [c.undoes for c in saga.COMPENSATIONS]
    forward = [s for s in saga.STEPS if s in undone]
    assert undone == list(reversed(forward))
