"""The chaos checker fails on each kind of violation, and only on that one.

A sound run (one Confirmed order created with a key and replayed, one Cancelled
order applied as a manifest, a 503 with Retry-After on the way) passes every
invariant; each test breaks it in one way and expects exactly the invariant that
names that way to fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from chaos import checker
from chaos.history import History, Kind, Op
from korder import constants
from korder.domain.order import Order
from tests.support.orders import resource

STOCK = 100
NOW = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)


def _history(phases: tuple[str, ...], backwards: bool = False) -> list[dict[str, str]]:
    seconds = range(len(phases))
    return [
        {"type": f"Step{i}", "time": f"2026-01-01T00:00:0{s}Z", "phase": phase}
        for i, (s, phase) in enumerate(
            zip(reversed(seconds) if backwards else seconds, phases, strict=True)
        )
    ]


CONFIRMED = ("Pending", "ReservingInventory", "ProcessingPayment", "Confirmed")
CANCELLED = ("Pending", "ReservingInventory", "Cancelling", "Cancelled")


@dataclass
class Run:
    """What a run leaves for the checker, as plain data the tests bend."""

    orders: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"name": "ord-a", "uid": "ua", "key": "ka", "phase": "Confirmed", "path": CONFIRMED},
            {"name": "gitops-b", "uid": "ub", "key": None, "phase": "Cancelled", "path": CANCELLED},
        ]
    )
    ledgers: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {
            "inventory": [
                {"key": "ua/reserve-inventory", "type": "reserve", "orderId": "ua"},
                {"key": "ub/reserve-inventory", "type": "reserve", "orderId": "ub"},
                {"key": "ub/release-inventory", "type": "release", "orderId": "ub"},
            ],
            "payment": [{"key": "ua/capture-payment", "type": "charge", "orderId": "ua"}],
            "shipping": [],
        }
    )
    # ord-a holds 2 x PROD-001 and 1 x PROD-002 (the shared valid spec).
    stock: dict[str, int] = field(default_factory=lambda: {"PROD-001": 98, "PROD-002": 99})
    ops: list[Op] = field(
        default_factory=lambda: [
            Op(Kind.CREATE, 0, "ka", 0.0, 0.1, status=503, retry_after="5"),
            Op(Kind.CREATE, 0, "ka", 5.1, 5.2, status=201, order="ord-a", phase="Pending"),
            Op(Kind.REPLAY, 0, "ka", 5.3, 5.4, status=201, order="ord-a", phase="Pending"),
            Op(Kind.APPLY, 1, None, 0.0, 0.5, status=200, order="gitops-b"),
            Op(Kind.CANCEL, 1, "kc", 0.6, 0.7, status=202, order="gitops-b"),
            Op(Kind.GET, 0, None, 6.0, 6.1, status=200, order="ord-a", phase="Confirmed"),
        ]
    )

    def order(self, raw: dict[str, Any]) -> Order:
        annotations = {constants.ANNOTATION_IDEMPOTENCY_KEY: raw["key"]} if raw["key"] else {}
        status = {
            "phase": raw["phase"],
            "observedGeneration": 1,
            "history": _history(raw["path"], raw.get("backwards", False)),
        }
        return resource(status=status, name=raw["name"], uid=raw["uid"], annotations=annotations)

    def broken(self, requested: dict[str, int] | None = None) -> set[str]:
        observed = checker.Observed(
            orders=[self.order(o) for o in self.orders],
            ledgers=self.ledgers,
            stock=self.stock,
            initial_stock=STOCK,
            now=NOW,
        )
        invariants = checker.check(History(list(self.ops)), observed)
        invariants.append(checker.faults_injected(requested or {}, {"cut": 1}))
        return {i.name for i in invariants if not i.holds}


def test_a_sound_run_passes_every_invariant() -> None:
    assert Run().broken() == set()


def _order(run: Run, name: str) -> dict[str, Any]:
    return next(o for o in run.orders if o["name"] == name)


def _still_reserving(run: Run) -> None:
    _order(run, "ord-a").update(phase="ReservingInventory", path=CONFIRMED[:2])
    run.stock = {"PROD-001": 100, "PROD-002": 100}
    run.ledgers["inventory"] = run.ledgers["inventory"][1:]
    run.ledgers["payment"] = []


def _acknowledged_and_lost(run: Run) -> None:
    run.ops.append(Op(Kind.APPLY, 2, None, 1.0, 1.1, status=200, order="gitops-z"))


def _two_orders_for_a_key(run: Run) -> None:
    _order(run, "gitops-b")["key"] = "ka"


def _replay_names_another_order(run: Run) -> None:
    run.ops[2] = replace(run.ops[2], order="ord-other")
    run.orders.append({**_order(run, "gitops-b"), "name": "ord-other", "uid": "uo"})


def _accepted_cancel_ignored(run: Run) -> None:
    run.ops.append(Op(Kind.CANCEL, 0, "kd", 7.0, 7.1, status=202, order="ord-a"))


def _charged_twice(run: Run) -> None:
    run.ledgers["payment"].append(
        {"key": "ua/capture-payment-2", "type": "charge", "orderId": "ua"}
    )


def _reservation_leaked(run: Run) -> None:
    run.ledgers["inventory"] = run.ledgers["inventory"][:2]


def _effect_of_no_order(run: Run) -> None:
    run.ledgers["shipping"].append({"key": "ux/ship", "type": "ship", "orderId": "ux"})


def _effect_repeated_for_a_key(run: Run) -> None:
    run.ledgers["payment"][0]["key"] = "ua/reserve-inventory"


def _stock_off_by_one(run: Run) -> None:
    run.stock["PROD-002"] = 98


def _skipped_a_phase(run: Run) -> None:
    _order(run, "ord-a")["path"] = ("Pending", "Confirmed")


def _history_out_of_order(run: Run) -> None:
    _order(run, "ord-a")["backwards"] = True


def _internal_error(run: Run) -> None:
    run.ops.append(Op(Kind.GET, 0, None, 8.0, 8.1, status=500, order="ord-a"))


def _unavailable_without_retry_after(run: Run) -> None:
    run.ops[0] = replace(run.ops[0], retry_after=None)


@pytest.mark.parametrize(
    ("breaking", "invariant"),
    [
        (_still_reserving, "settled"),
        (_acknowledged_and_lost, "acknowledged_exist"),
        (_two_orders_for_a_key, "one_order_per_key"),
        (_replay_names_another_order, "one_order_per_key"),
        (_accepted_cancel_ignored, "actions_honoured"),
        (_charged_twice, "effects_match_phase"),
        (_reservation_leaked, "effects_match_phase"),
        (_effect_of_no_order, "effects_match_phase"),
        (_effect_repeated_for_a_key, "no_repeated_effect"),
        (_stock_off_by_one, "stock_adds_up"),
        (_skipped_a_phase, "history_follows_the_saga"),
        (_history_out_of_order, "history_follows_the_saga"),
        (_internal_error, "no_server_error"),
        (_unavailable_without_retry_after, "no_server_error"),
    ],
)
def test_each_violation_breaks_its_invariant_alone(
    breaking: Callable[[Run], None], invariant: str
) -> None:
    run = Run()
    breaking(run)
    assert run.broken() == {invariant}


def test_a_fault_asked_for_and_not_injected_fails_the_run() -> None:
    assert Run().broken({"cut": 1, "etcd_restart": 1}) == {"faults_injected"}
    assert Run().broken({"cut": 1}) == set()


def test_the_report_counts_every_violation_and_shows_a_few() -> None:
    run = Run()
    run.ops += [Op(Kind.GET, 0, None, 9.0, 9.1, status=500) for _ in range(checker.SHOWN + 5)]
    observed = checker.Observed(
        [run.order(o) for o in run.orders], run.ledgers, run.stock, STOCK, NOW
    )
    (inv,) = [i for i in checker.check(History(run.ops), observed) if i.name == "no_server_error"]
    report = inv.report()
    assert report["holds"] is False
    assert report["violations"] == checker.SHOWN + 5
    assert len(report["examples"]) == checker.SHOWN
