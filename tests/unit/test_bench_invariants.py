"""The chaos run's invariant check must catch what it claims to catch."""

from __future__ import annotations

from typing import Any

from bench.saga import check_invariants


def order(uid: str, phase: str, quantity: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"uid": uid, "name": f"order-{uid}"},
        "spec": {"items": [{"productId": "PROD-001", "quantity": quantity}]},
        "status": {"phase": phase},
    }


def entry(uid: str, kind: str, key: str | None = None) -> dict[str, Any]:
    return {"orderId": uid, "type": kind, "key": key or f"{uid}/{kind}"}


FULL_STOCK = {"PROD-001": 1000, "PROD-002": 1000, "PROD-003": 1000}


def test_a_clean_run_passes() -> None:
    orders = [order("a", "Confirmed"), order("b", "Failed")]
    ledgers = {
        "inventory": [entry("a", "reserve"), entry("b", "reserve"), entry("b", "release")],
        "payment": [entry("a", "charge")],
    }
    stock = {**FULL_STOCK, "PROD-001": 998}
    assert check_invariants(orders, ledgers, stock, 1000) == []


def test_a_double_charge_is_caught() -> None:
    orders = [order("a", "Confirmed")]
    ledgers = {
        "inventory": [entry("a", "reserve")],
        "payment": [entry("a", "charge"), entry("a", "charge", key="a/other")],
    }
    violations = check_invariants(orders, ledgers, {**FULL_STOCK, "PROD-001": 998}, 1000)
    assert any("Confirmed with effects" in v for v in violations)


def test_a_repeated_key_is_caught() -> None:
    orders = [order("a", "Failed")]
    ledgers = {
        "inventory": [
            entry("a", "reserve"),
            entry("a", "reserve"),
            entry("a", "release"),
            entry("a", "release", key="a/release-2"),
        ]
    }
    violations = check_invariants(orders, ledgers, FULL_STOCK, 1000)
    assert any("has 2 effects" in v for v in violations)


def test_a_failed_order_holding_stock_is_caught() -> None:
    orders = [order("a", "Failed")]
    ledgers = {"inventory": [entry("a", "reserve")]}
    violations = check_invariants(orders, ledgers, {**FULL_STOCK, "PROD-001": 998}, 1000)
    assert any("Failed with effects" in v for v in violations)
    assert any("stock of PROD-001" in v for v in violations)


def test_a_history_off_the_phase_graph_is_caught() -> None:
    skipped = order("a", "Confirmed")
    skipped["status"]["history"] = [
        {"type": "OrderAccepted", "time": "2026-01-01T00:00:00Z", "phase": "Pending"},
        {"type": "OrderConfirmed", "time": "2026-01-01T00:00:01Z", "phase": "Confirmed"},
    ]
    ledgers = {"inventory": [entry("a", "reserve")], "payment": [entry("a", "charge")]}
    stock = {**FULL_STOCK, "PROD-001": 998}
    assert check_invariants([skipped], ledgers, stock, 1000) == [
        "order-a went Pending -> Confirmed, off the saga's phase graph"
    ]
