"""The saga state machine, driven without a cluster: every step, every failure, every phase."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from korder.domain import conditions, saga, steps
from korder.domain.order import (
    HISTORY_LIMIT,
    Carrier,
    FulfillmentRequest,
    Order,
    OrderSpec,
    OrderStatus,
    Phase,
    RetryRequest,
)
from korder.outcomes import Deferred, Failed, Outcome, Rejected, Succeeded
from tests.support.orders import resource

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
# The calls, by the names the saga's table gives them.
RESERVE, CAPTURE, SHIP = steps.RESERVE.name, steps.CAPTURE.name, steps.SHIP.name
RELEASE, REFUND = "release-inventory", "refund-payment"
ANSWERS = {
    RESERVE: {"reservationId": "res-1"},
    CAPTURE: {"paymentId": "pay-1"},
    SHIP: {"trackingNumber": "TRK-1"},
}
READY, RECONCILING, STALLED = conditions.READY, conditions.RECONCILING, conditions.STALLED
INVENTORY_RESERVED = steps.RESERVE.condition
PAYMENT_CAPTURED = steps.CAPTURE.condition
SHIPPED = steps.SHIP.condition

Answer = Callable[[str, int], Outcome]


def succeed(name: str, _attempt: int) -> Outcome:
    return Succeeded(ANSWERS.get(name, {}))


def rejected(detail: str) -> Rejected:
    return Rejected(409, "refused", detail)


def call(name: str) -> saga.Call:
    """A call of ``name`` as the saga would ask it (apply checks the name only)."""
    return saga.Call(name, steps.Request("any", "any"))


@dataclass
class Run:
    """A saga driven to rest: the calls it made and the notes it wrote."""

    order: Order
    now: datetime = T0
    calls: list[str] = field(default_factory=list)
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
        attempts: dict[str, int] = {}
        for _ in range(limit):
            move = saga.next_move(self.order, self.now)
            if isinstance(move, saga.Idle):
                return self
            if isinstance(move, saga.Call):
                self.calls.append(move.name)
                attempt = attempts[move.name] = attempts.get(move.name, 0) + 1
                move = saga.apply(self.order, move, answer(move.name, attempt), POLICY, self.now)
                if move.retry:
                    self.now += timedelta(seconds=10)
            self._write(move)
        raise AssertionError(f"the saga did not come to rest: {self.calls[-10:]}")

    def _write(self, move: saga.Advance) -> None:
        self.writes += 1
        self.records += [n.reason for n in move.notes]
        assert not saga.illegal_moves(move.status.history or []), "off the phase graph"
        self.order = self.order.model_copy(update={"status": move.status})

    def with_spec(self, **changes: object) -> Run:
        spec = self.order.spec.model_copy(update=changes)
        meta = self.order.metadata.model_copy(
            update={"generation": self.order.metadata.generation + 1}
        )
        self.order = self.order.model_copy(update={"spec": spec, "metadata": meta})
        return self

    def deleted(self) -> Run:
        meta = self.order.metadata.model_copy(update={"deletion_timestamp": self.now})
        self.order = self.order.model_copy(update={"metadata": meta})
        return self

    def condition(self, type_: str) -> tuple[str, str] | None:
        for c in self.status.conditions or ():
            if c.type == type_:
                return (str(c.status), c.reason)
        return None


def new_order(created: datetime = T0) -> Run:
    return Run(resource(SPEC.model_dump(), created=created))


def confirmed() -> Run:
    return new_order().drive()


def fulfil(run: Run) -> Run:
    run.with_spec(process_requested=True).drive()
    return run.with_spec(fulfillment=FulfillmentRequest(carrier=Carrier.EXPRESS)).drive()


# --- The happy path -----------------------------------------------------------------


def test_happy_path_reaches_confirmed_then_fulfilled() -> None:
    run = confirmed()
    assert run.phase() == Phase.CONFIRMED
    assert run.status.total == "39.98"
    assert run.status.reservation_id == "res-1"
    assert run.status.payment_id == "pay-1"
    assert run.calls == [RESERVE, CAPTURE]
    assert run.records == [
        "OrderAccepted",
        "SagaStarted",
        "InventoryReserved",
        "PaymentCaptured",
        "OrderConfirmed",
    ]
    assert run.condition(READY) == ("True", "Confirmed")
    assert run.condition(RECONCILING) == ("False", "Confirmed")
    assert run.condition(STALLED) == ("False", "Confirmed")
    assert run.condition(INVENTORY_RESERVED) == ("True", "Succeeded")
    assert run.condition(PAYMENT_CAPTURED) == ("True", "Succeeded")

    fulfil(run)
    assert run.phase() == Phase.FULFILLED
    assert run.status.shipment is not None
    assert run.status.shipment.tracking_number == "TRK-1"
    assert run.calls[-1] == SHIP
    assert run.records[-3:] == ["OrderProcessing", "FulfillmentRequested", "OrderFulfilled"]
    assert run.condition(READY) == ("True", "Fulfilled")
    assert run.condition(SHIPPED) == ("True", "Succeeded")


def test_confirmed_waits_for_process_and_processing_waits_for_fulfillment() -> None:
    run = confirmed()
    assert isinstance(saga.next_move(run.order, run.now), saga.Idle)
    run.with_spec(process_requested=True).drive()
    assert run.phase() == Phase.PROCESSING
    assert isinstance(saga.next_move(run.order, run.now), saga.Idle)
    assert run.condition(RECONCILING) == ("False", "Processing")


def test_conditions_carry_the_generation_they_were_set_for() -> None:
    run = confirmed().with_spec(process_requested=True).drive()
    assert run.order.metadata.generation == 2
    assert run.status.observed_generation == 2
    ready = next(c for c in run.status.conditions or () if c.type == READY)
    assert ready.observed_generation == 2
    # Ready did not change status, so its transition time is the first one.
    assert ready.last_transition_time == "2026-01-01T00:00:00Z"


# --- Failures at every step ---------------------------------------------------------

# For each step: the compensations a failure there must run (the steps done before it).
UNDO_BEFORE = {
    RESERVE: [],
    CAPTURE: [RELEASE],
    SHIP: [REFUND, RELEASE],
}


def _drive_to(step: str, answer: Answer) -> Run:
    run = new_order().drive(answer)
    if step == SHIP:
        fulfil_answer = answer
        run.with_spec(process_requested=True).drive(fulfil_answer)
        run.with_spec(fulfillment=FulfillmentRequest(carrier=Carrier.STANDARD)).drive(answer)
    return run


@pytest.mark.parametrize("step", list(UNDO_BEFORE))
def test_permanent_failure_compensates_exactly_the_completed_steps(step: str) -> None:
    def answer(name: str, attempt: int) -> Outcome:
        if name == step:
            return rejected("no")
        return succeed(name, attempt)

    run = _drive_to(step, answer)
    assert run.phase() == Phase.FAILED
    assert run.status.failure_reason == "refused: no"
    assert run.calls.count(step) == 1, "a permanent failure is not retried"
    assert run.calls[run.calls.index(step) + 1 :] == UNDO_BEFORE[step]
    assert run.records[-1] == "OrderFailed"
    assert run.condition(STALLED) == ("True", "OrderFailed")
    assert run.condition(READY) == ("False", "Failed")
    undone = {INVENTORY_RESERVED, PAYMENT_CAPTURED} & {
        c.type for c in run.status.conditions or () if c.reason == "Compensated"
    }
    assert len(undone) == len(UNDO_BEFORE[step])


@pytest.mark.parametrize("step", list(UNDO_BEFORE))
def test_transient_failure_retries_the_same_step_then_goes_on(step: str) -> None:
    def answer(name: str, attempt: int) -> Outcome:
        if name == step and attempt <= 3:
            return Failed("503")
        return succeed(name, attempt)

    run = _drive_to(step, answer)
    assert run.phase() == (Phase.FULFILLED if step == SHIP else Phase.CONFIRMED)
    assert run.calls.count(step) == 4
    assert REFUND not in run.calls
    assert RELEASE not in run.calls


def test_a_retrying_step_says_why_in_its_condition() -> None:
    run = _run_until(Phase.RESERVING_INVENTORY, marked=True)
    move = saga.apply(run.order, call(RESERVE), Failed("connection refused"), POLICY, T0)
    assert move.retry
    assert move.status.phase == Phase.RESERVING_INVENTORY
    cond = next(c for c in move.status.conditions or () if c.type == INVENTORY_RESERVED)
    assert (cond.status, cond.reason) == ("Unknown", "Retrying")
    assert cond.message == "reserve-inventory: connection refused"
    reconciling = next(c for c in move.status.conditions or () if c.type == RECONCILING)
    assert reconciling.status == "True"


def _stall_on(step: str) -> tuple[Run, set[str]]:
    """A saga whose ``step`` failed transiently until past the deadline; the names still down."""
    down = {step}

    def answer(name: str, attempt: int) -> Outcome:
        if name in down:
            return Failed("timeout")
        return succeed(name, attempt)

    run = new_order().drive(answer)  # comes to rest: the saga stops calling
    return run, down


def answer_unless(down: set[str]) -> Answer:
    def answer(name: str, attempt: int) -> Outcome:
        return Failed("timeout") if name in down else succeed(name, attempt)

    return answer


@pytest.mark.parametrize("step", [RESERVE, CAPTURE])
def test_endless_transient_failure_stalls_the_step_past_the_deadline(step: str) -> None:
    run, _down = _stall_on(step)
    phase = steps.step_named(step).phase  # type: ignore[union-attr]
    assert run.phase() == phase, "the phase is kept: nothing is compensated"
    assert run.records[-1] == "DeadlineExceeded"
    assert run.condition(STALLED) == ("True", "DeadlineExceeded")
    assert run.condition(RECONCILING) == ("False", str(phase))
    assert run.condition(READY) == ("False", str(phase))
    condition = steps.step_named(step).condition  # type: ignore[union-attr]
    assert run.condition(condition) == ("Unknown", "DeadlineExceeded"), "still in doubt"
    assert run.status.failure_reason is None
    assert RELEASE not in run.calls
    assert REFUND not in run.calls
    stalled = next(c for c in run.status.conditions or () if c.type == STALLED)
    assert "deadline of 60s exceeded" in stalled.message
    assert "Retry or cancel" in stalled.message
    # At rest: no more calls, whatever time passes, and a spec change keeps it stalled.
    assert isinstance(saga.next_move(run.order, run.now + timedelta(hours=1)), saga.Idle)
    run.with_spec(notes="looked at it").drive()
    assert run.condition(STALLED) == ("True", "DeadlineExceeded")
    assert run.status.observed_generation == run.order.metadata.generation


@pytest.mark.parametrize("step", [RESERVE, CAPTURE])
def test_a_retry_resumes_the_stalled_step_with_a_fresh_deadline(step: str) -> None:
    run, down = _stall_on(step)
    calls_before = run.calls.count(step)
    down.clear()  # the participant is back
    run.with_spec(
        retry=RetryRequest(attempt=1, requested_by="alice", requested_at="2026-01-01T00:05:00Z")
    )
    run.drive()
    assert run.phase() == Phase.CONFIRMED
    assert run.calls.count(step) == calls_before + 1, "the same step, by the same key"
    assert RELEASE not in run.calls
    assert REFUND not in run.calls
    assert run.calls.count(RESERVE) == (1 if step == CAPTURE else calls_before + 1)
    assert run.condition(STALLED) == ("False", "Confirmed")
    assert run.status.last_retry is not None
    assert run.status.last_retry.attempt == 1
    assert run.status.last_retry.resumed_at is not None
    resumed = next(e for e in run.status.history or () if e.type == "SagaResumed")
    assert resumed.data == {
        "attempt": "1",
        "requestedBy": "alice",
        "requestedAt": "2026-01-01T00:05:00Z",
    }
    assert "alice" in resumed.message
    assert step in resumed.message


def test_the_fresh_deadline_counts_from_the_retry() -> None:
    run, down = _stall_on(CAPTURE)
    run.now += timedelta(hours=1)  # long after the first deadline
    run.with_spec(retry=RetryRequest(attempt=1))
    move = saga.next_move(run.order, run.now)
    assert isinstance(move, saga.Advance)
    run._write(move)
    assert saga.deadline_of(run.order, POLICY, run.now) == run.now + POLICY.deadline
    # Still down: it retries within the fresh deadline, then stalls again.
    run.drive(answer_unless(down))
    assert run.condition(STALLED) == ("True", "DeadlineExceeded")
    assert run.records.count("DeadlineExceeded") == 2
    # A second retry is a new attempt; the same attempt again is not acted on twice.
    run.with_spec(retry=RetryRequest(attempt=1, requested_by="again"))
    assert isinstance(saga.next_move(run.order, run.now), saga.Advance)  # observed only
    run.drive(answer_unless(down))
    assert run.records.count("SagaResumed") == 1
    down.clear()
    run.with_spec(retry=RetryRequest(attempt=2)).drive()
    assert run.phase() == Phase.CONFIRMED
    assert run.records.count("SagaResumed") == 2


def test_a_cancellation_of_a_stalled_order_settles_and_undoes_the_step_in_doubt() -> None:
    run, down = _stall_on(CAPTURE)
    down.clear()
    run.with_spec(cancel_requested=True).drive()
    assert run.phase() == Phase.CANCELLED
    # The charge in doubt is settled (replayed) first, then refunded; the reservation released.
    assert run.calls[-3:] == [CAPTURE, REFUND, RELEASE]
    assert run.condition(STALLED) == ("False", "Cancelled")


def test_a_retry_of_an_order_that_is_not_stalled_is_rejected_once() -> None:
    def declined(name: str, attempt: int) -> Outcome:
        return rejected("declined") if name == CAPTURE else succeed(name, attempt)

    run = new_order().drive(declined)
    assert run.phase() == Phase.FAILED
    run.with_spec(retry=RetryRequest(attempt=1, requested_by="bob")).drive(declined)
    assert run.phase() == Phase.FAILED
    assert run.records[-1] == "RetryRejected"
    assert run.calls.count(CAPTURE) == 1, "a permanent failure is not tried again"
    assert run.status.last_retry is not None
    assert run.status.last_retry.resumed_at is None
    rejection = (run.status.history or [])[-1]
    assert "bob" in rejection.message
    assert "permanent" in rejection.message
    assert isinstance(saga.next_move(run.order, run.now), saga.Idle), "said once"


def test_the_deadline_counts_from_the_start_of_the_saga_not_the_creation() -> None:
    # Created an hour ago (the operator was down), started now: the full time is left.
    run = _run_until_marked(new_order(created=T0 - timedelta(hours=1)))
    late = saga.apply(run.order, call(RESERVE), Failed("503"), POLICY, T0)
    assert late.retry
    assert late.status.phase == Phase.RESERVING_INVENTORY
    later = T0 + POLICY.deadline
    stalled = saga.apply(run.order, call(RESERVE), Failed("503"), POLICY, later)
    assert not stalled.retry
    assert conditions.stopped(stalled.status) is steps.RESERVE


def _run_until_marked(run: Run) -> Run:
    """Write the saga's moves until it asks for its first call (a bounded number of them)."""
    for _ in range(10):
        move = saga.next_move(run.order, run.now)
        if isinstance(move, saga.Call):
            return run
        assert isinstance(move, saga.Advance)
        run._write(move)
    raise AssertionError("the saga never asked for a call")


def test_an_open_breaker_defers_within_the_deadline_and_stalls_past_it() -> None:
    def answer(deferrals: int) -> Answer:
        def deferred(name: str, attempt: int) -> Outcome:
            if name == RESERVE and attempt <= deferrals:
                return Deferred("inventory circuit open", retry_after=10.0)
            return succeed(name, attempt)

        return deferred

    brief = new_order().drive(answer(3))  # 3 x 10 s: within the 60 s deadline
    assert brief.phase() == Phase.CONFIRMED
    assert "DeadlineExceeded" not in brief.records
    long = new_order().drive(answer(50))  # 50 x 10 s: far past it
    assert long.phase() == Phase.RESERVING_INVENTORY
    assert long.condition(STALLED) == ("True", "DeadlineExceeded")
    assert RELEASE not in long.calls, "an open breaker never compensates the order"
    long.with_spec(retry=RetryRequest(attempt=1)).drive()
    assert long.phase() == Phase.CONFIRMED


def test_a_deferred_step_says_so_in_its_condition() -> None:
    run = _run_until(Phase.RESERVING_INVENTORY, marked=True)
    deferred = Deferred("inventory circuit open", retry_after=10.0)
    move = saga.apply(run.order, call(RESERVE), deferred, POLICY, T0 + timedelta(seconds=30))
    assert move.retry
    assert move.status.phase == Phase.RESERVING_INVENTORY
    run._write(move)
    assert run.condition(INVENTORY_RESERVED) == ("Unknown", "CircuitOpen")


def test_compensation_never_gives_up_and_stalls_past_the_deadline() -> None:
    def answer(name: str, attempt: int) -> Outcome:
        if name == CAPTURE:
            return rejected("declined")
        if name == RELEASE and attempt <= 10:
            return Failed("503")
        return succeed(name, attempt)

    run = new_order()
    run.drive(answer)
    assert run.phase() == Phase.FAILED
    assert run.calls.count(RELEASE) == 11
    assert run.calls.count(RESERVE) == 1, "a retried undo is not in doubt"
    assert "CompensationRetrying" not in {c.reason for c in run.status.conditions or ()}

    stuck = new_order()
    with pytest.raises(AssertionError, match="did not come to rest"):
        stuck.drive(lambda a, n: answer(a, 1 if a != RELEASE else 0))
    assert stuck.phase() == Phase.COMPENSATING
    assert stuck.condition(STALLED) == ("True", "CompensationRetrying")


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
            run.calls.append(move.name)
            move = saga.apply(run.order, move, succeed(move.name, 1), POLICY, run.now)
        run._write(move)
    raise AssertionError(f"never reached {phase}")


# phase, whether its step is in doubt, the calls a cancellation then makes.
CANCEL_CASES = [
    (None, False, []),
    (Phase.PENDING, False, []),
    (Phase.RESERVING_INVENTORY, False, []),
    (Phase.RESERVING_INVENTORY, True, [RESERVE, RELEASE]),
    (Phase.PROCESSING_PAYMENT, False, [RELEASE]),
    (
        Phase.PROCESSING_PAYMENT,
        True,
        [CAPTURE, REFUND, RELEASE],
    ),
    (Phase.CONFIRMED, False, [REFUND, RELEASE]),
    (Phase.PROCESSING, False, [REFUND, RELEASE]),
]


@pytest.mark.parametrize(("phase", "marked", "undo"), CANCEL_CASES)
@pytest.mark.parametrize("deleting", [False, True], ids=["cancel", "delete"])
def test_cancellation_compensates_what_happened_or_may_have(
    phase: Phase | None, marked: bool, undo: list[str], deleting: bool
) -> None:
    run = _run_until(phase, marked)
    before = len(run.calls)
    if deleting:
        run.deleted()
    else:
        run.with_spec(cancel_requested=True)
    run.drive()
    assert run.phase() == Phase.CANCELLED
    assert run.calls[before:] == undo
    assert run.records[-1] == "OrderCancelled"
    assert "CancellationRequested" in run.records
    assert run.condition(READY) == ("False", "Cancelled")
    assert run.condition(STALLED) == ("False", "Cancelled")


def test_cancel_in_doubt_step_that_was_never_done_undoes_nothing() -> None:
    run = _run_until(Phase.RESERVING_INVENTORY, marked=True).with_spec(cancel_requested=True)
    run.drive(lambda a, n: rejected("out of stock"))
    assert run.phase() == Phase.CANCELLED
    assert run.calls == [RESERVE]
    assert run.condition(INVENTORY_RESERVED) == ("False", "Rejected")


@pytest.mark.parametrize("where", ["shipping", "fulfilled", "failed"])
def test_too_late_to_cancel_is_said_once_and_changes_nothing(where: str) -> None:
    if where == "failed":
        run = new_order().drive(lambda a, n: rejected("out of stock"))
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
    assert REFUND not in run.calls[len(calls_before) :]


def test_deleting_a_final_order_needs_nothing() -> None:
    run = fulfil(confirmed()).deleted()
    assert isinstance(saga.next_move(run.order, run.now), saga.Idle)


def test_deleting_while_compensating_finishes_the_compensation() -> None:
    run = _run_until(Phase.PROCESSING_PAYMENT, marked=True)
    run._write(saga.apply(run.order, call(CAPTURE), rejected("declined"), POLICY, T0))
    assert run.phase() == Phase.COMPENSATING
    run.deleted().drive()
    assert run.phase() == Phase.FAILED
    assert run.calls[-1] == RELEASE


# --- The same event twice -----------------------------------------------------------


@pytest.mark.parametrize(
    "outcome",
    [
        Succeeded(ANSWERS[RESERVE]),
        rejected("out of stock"),
    ],
    ids=["success", "rejection"],
)
def test_the_same_outcome_twice_changes_nothing_the_second_time(outcome: Outcome) -> None:
    run = _run_until(Phase.RESERVING_INVENTORY, marked=True)
    first = saga.apply(run.order, call(RESERVE), outcome, POLICY, T0)
    run._write(first)
    second = saga.apply(run.order, call(RESERVE), outcome, POLICY, T0 + timedelta(seconds=1))
    assert second.status == run.status
    assert second.notes == ()


def test_a_late_answer_for_another_step_changes_nothing() -> None:
    run = confirmed()
    late = saga.apply(run.order, call(RESERVE), Failed("timeout"), POLICY, T0)
    assert late.status == run.status
    assert not late.retry


def test_a_spec_change_with_nothing_to_do_is_still_observed() -> None:
    run = confirmed().with_spec(notes="leave at the door")
    writes = run.writes
    run.drive()
    assert run.writes == writes + 1
    assert run.status.observed_generation == 2
    ready = next(c for c in run.status.conditions or () if c.type == READY)
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
    names = [s.name for s in steps.STEPS] + [c.name for _, c in steps.COMPENSATIONS]
    keys = {steps.idempotency_key(u, n) for u, n in itertools.product(["u1", "u2"], names)}
    assert len(keys) == 2 * len(names)
    assert steps.idempotency_key("u1", CAPTURE) == "u1/capture-payment"


def test_history_is_bounded_and_keeps_the_newest() -> None:
    run = confirmed()
    full = [run.status.history[-1]] * HISTORY_LIMIT  # type: ignore[index]
    run.order = run.order.model_copy(
        update={"status": run.status.model_copy(update={"history": full})}
    )
    run.with_spec(process_requested=True).drive()
    history = run.status.history or []
    assert len(history) == HISTORY_LIMIT
    assert history[-1].type == "OrderProcessing"


def test_compensations_run_in_reverse_order_of_their_steps() -> None:
    undone = [step for step, _ in steps.COMPENSATIONS]
    forward = [s for s in steps.STEPS if s in undone]
    assert undone == list(reversed(forward))


@pytest.mark.parametrize("ending", ["cancel", "fail"])
def test_a_refused_compensation_is_never_reported_as_undone(ending: str) -> None:
    def answer(name: str, attempt: int) -> Outcome:
        if name == RELEASE:
            return Rejected(404, "not_found", "no reservation res-1")
        if ending == "fail" and name == CAPTURE:
            return rejected("declined")
        return succeed(name, attempt)

    run = new_order().drive(answer)
    if ending == "cancel":
        run.with_spec(cancel_requested=True).drive(answer)
    assert run.phase() == (Phase.CANCELLED if ending == "cancel" else Phase.FAILED)
    last = (run.status.history or [])[-1]
    assert "not everything was undone" in last.message
    assert "release-inventory (not_found: no reservation res-1)" in last.message
    assert run.condition(STALLED) == ("True", "CompensationIncomplete")
    assert run.condition(READY) == ("False", str(run.phase()))


def test_a_clean_cancellation_says_so_and_is_not_stalled() -> None:
    run = confirmed().with_spec(cancel_requested=True).drive()
    last = (run.status.history or [])[-1]
    assert last.message == "The order was cancelled; completed steps were undone."
    assert run.condition(STALLED) == ("False", "Cancelled")


def test_a_retry_of_a_stalled_compensation_tries_again_at_once_with_a_fresh_deadline() -> None:
    def answer(name: str, attempt: int) -> Outcome:
        if name == CAPTURE:
            return rejected("declined")
        return Failed("503") if name == RELEASE else succeed(name, attempt)

    stuck = new_order()
    with pytest.raises(AssertionError, match="did not come to rest"):
        stuck.drive(answer)
    assert stuck.condition(STALLED) == ("True", "CompensationRetrying")
    stuck.with_spec(retry=RetryRequest(attempt=1, requested_by="ops"))
    move = saga.next_move(stuck.order, stuck.now)
    assert isinstance(move, saga.Advance)
    assert [n.reason for n in move.notes] == ["SagaResumed"]
    stuck._write(move)
    assert stuck.condition(STALLED) == ("False", "Compensating")
    assert isinstance(saga.next_move(stuck.order, stuck.now), saga.Call)
    stuck.drive()  # the inventory service is back
    assert stuck.phase() == Phase.FAILED
    assert stuck.condition(STALLED) == ("True", "OrderFailed")
