"""The circuit breaker, driven by an injected clock: no sleeping, no flakiness."""

from __future__ import annotations

import pytest

from korder.participant_clients.circuitbreaker import CircuitBreaker, CircuitOpen, State
from tests.support.clock import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def moves() -> list[tuple[State, State]]:
    return []


@pytest.fixture
def breaker(clock: Clock, moves: list[tuple[State, State]]) -> CircuitBreaker:
    return CircuitBreaker(
        "inventory",
        window=10,
        min_calls=4,
        failure_ratio=0.5,
        reset_timeout=30.0,
        half_open_calls=2,
        trial_timeout=5.0,
        clock=clock,
        listener=lambda name, before, after: moves.append((before, after)),
    )


def calls(breaker: CircuitBreaker, pattern: str) -> None:
    """Report one call per character: s = success, f = failure, b = business answer."""
    for c in pattern:
        permit = breaker.acquire()
        {"s": permit.succeeded, "f": permit.failed, "b": permit.ignored}[c]()


def open_breaker(breaker: CircuitBreaker) -> None:
    calls(breaker, "ffff")
    assert breaker.state() == State.OPEN


def test_stays_closed_below_the_minimum_number_of_calls(breaker: CircuitBreaker) -> None:
    calls(breaker, "fff")
    assert breaker.state() == State.CLOSED


def test_opens_at_half_failures_over_the_window(breaker: CircuitBreaker) -> None:
    calls(breaker, "ssf")
    assert breaker.state() == State.CLOSED
    calls(breaker, "f")  # 2 of 4
    assert breaker.state() == State.OPEN


def test_below_the_ratio_it_stays_closed(breaker: CircuitBreaker) -> None:
    calls(breaker, "ssfsfsssfs")  # never half: 1/3, 2/5, 3/9, 3/10
    assert breaker.state() == State.CLOSED


def test_not_a_count_of_consecutive_failures(breaker: CircuitBreaker) -> None:
    # Alternating: never two failures in a row, yet half the calls failed.
    calls(breaker, "sfs")
    assert breaker.state() == State.CLOSED
    calls(breaker, "f")
    assert breaker.state() == State.OPEN


def test_old_calls_slide_out_of_the_window(breaker: CircuitBreaker) -> None:
    calls(breaker, "sssffsssss" + "sssss")  # the two failures slid out of the last 10
    calls(breaker, "fff")  # 3 of 10; with the old two it would have been 5
    assert breaker.state() == State.CLOSED
    calls(breaker, "ff")  # 5 of the last 10
    assert breaker.state() == State.OPEN


def test_business_answers_count_as_neither(breaker: CircuitBreaker) -> None:
    calls(breaker, "bbbbbbbbff")
    assert breaker.state() == State.CLOSED, "2 calls so far, below the minimum"
    calls(breaker, "bbss")
    assert breaker.state() == State.OPEN  # 2 failures, 2 successes


def test_open_refuses_with_the_time_left(breaker: CircuitBreaker, clock: Clock) -> None:
    open_breaker(breaker)
    clock.now += 10
    with pytest.raises(CircuitOpen) as refused:
        breaker.acquire()
    assert refused.value.retry_after == pytest.approx(20.0)
    assert breaker.retry_after() == pytest.approx(20.0)


def test_half_open_after_the_reset_timeout_then_closed_by_a_trial(
    breaker: CircuitBreaker, clock: Clock, moves: list[tuple[State, State]]
) -> None:
    open_breaker(breaker)
    clock.now += 30
    assert breaker.state() == State.HALF_OPEN
    breaker.acquire().succeeded()
    assert breaker.state() == State.CLOSED
    assert moves == [
        (State.CLOSED, State.OPEN),
        (State.OPEN, State.HALF_OPEN),
        (State.HALF_OPEN, State.CLOSED),
    ]
    # A clean slate: the failures that opened it do not count any more.
    calls(breaker, "fff")
    assert breaker.state() == State.CLOSED


def test_a_failed_trial_opens_it_again_for_a_full_timeout(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    open_breaker(breaker)
    clock.now += 30
    breaker.acquire().failed()
    assert breaker.state() == State.OPEN
    assert breaker.retry_after() == pytest.approx(30.0)


def test_half_open_lets_a_bounded_number_of_trials_through(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    open_breaker(breaker)
    clock.now += 30
    first, second = breaker.acquire(), breaker.acquire()
    with pytest.raises(CircuitOpen):
        breaker.acquire()
    # A business answer frees its slot without deciding anything.
    first.ignored()
    assert breaker.state() == State.HALF_OPEN
    third = breaker.acquire()
    second.succeeded()
    assert breaker.state() == State.CLOSED
    third.failed()  # from the half-open epoch: stale now
    assert breaker.state() == State.CLOSED


def test_a_hung_trial_cannot_wedge_the_breaker(breaker: CircuitBreaker, clock: Clock) -> None:
    open_breaker(breaker)
    clock.now += 30
    hung = breaker.acquire()
    breaker.acquire()  # the other slot, also never reported
    with pytest.raises(CircuitOpen):
        breaker.acquire()
    clock.now += 5  # the trial timeout: the hung trials count as failed
    assert breaker.state() == State.OPEN
    clock.now += 30
    assert breaker.state() == State.HALF_OPEN
    trial = breaker.acquire()
    hung.succeeded()  # far too late: it must not close the breaker
    assert breaker.state() == State.HALF_OPEN
    trial.succeeded()
    assert breaker.state() == State.CLOSED


def test_a_call_from_before_the_breaker_opened_does_not_count_after(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    slow = breaker.acquire()
    open_breaker(breaker)
    clock.now += 30
    slow.succeeded()
    assert breaker.state() == State.HALF_OPEN


def test_a_permit_reports_once(breaker: CircuitBreaker) -> None:
    permit = breaker.acquire()
    permit.failed()
    permit.failed()
    permit.failed()
    calls(breaker, "ss")
    assert breaker.state() == State.CLOSED  # 1 failure of 3, not 3 of 5
