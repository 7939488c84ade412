"""The Idempotency-Key rules of korder.api.idempotency, without a cluster."""

from __future__ import annotations

import json
import re

import pytest

from korder import constants
from korder.api import idempotency
from korder.api.problems import Problem
from korder.domain.order import Order
from tests.support.orders import resource


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("abc", "abc"),
        ('"abc"', "abc"),
        ("  a b  ", "a b"),
        ('"a\\"b"', 'a"b'),
        ("~" * 255, "~" * 255),
    ],
)
def test_valid_keys(raw: str, key: str) -> None:
    assert idempotency.parse_key(raw, required=True) == key


@pytest.mark.parametrize("raw", ["", '""', "   ", "k" * 256, "café", "tab\there", "\x7f"])
def test_invalid_keys_are_400(raw: str) -> None:
    with pytest.raises(Problem) as caught:
        idempotency.parse_key(raw, required=False)
    assert (caught.value.status, caught.value.kind) == (400, "idempotency-key-invalid")


def test_missing_key_is_fine_unless_required() -> None:
    assert idempotency.parse_key(None, required=False) is None
    with pytest.raises(Problem) as caught:
        idempotency.parse_key(None, required=True)
    assert (caught.value.status, caught.value.kind) == (400, "idempotency-key-missing")


def test_resource_name_is_deterministic_valid_and_spread() -> None:
    names = {idempotency.resource_name(f"key-{i}") for i in range(1000)}
    assert len(names) == 1000
    assert idempotency.resource_name("x") == idempotency.resource_name("x")
    for name in [*names, idempotency.resource_name("~" * 255)]:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
        assert len(name) <= 63


def test_fingerprint_ignores_key_order_but_not_content() -> None:
    a = idempotency.fingerprint("POST", "/orders", {"a": 1, "b": [1, 2]})
    assert a == idempotency.fingerprint("POST", "/orders", {"b": [1, 2], "a": 1})
    assert a != idempotency.fingerprint("POST", "/orders", {"a": 1, "b": [2, 1]})
    assert a != idempotency.fingerprint("PUT", "/orders", {"a": 1, "b": [1, 2]})


def _order(annotations: dict[str, str]) -> Order:
    return resource(annotations=annotations)


def test_check_created_replays_refuses_reuse_and_collisions() -> None:
    order = _order(idempotency.create_annotations("k", "fp"))
    idempotency.check_created(order, "k", "fp")
    with pytest.raises(Problem) as reused:
        idempotency.check_created(order, "k", "other")
    assert (reused.value.status, reused.value.kind) == (422, "idempotency-key-reused")
    for foreign in (order, _order({})):
        with pytest.raises(Problem) as collision:
            idempotency.check_created(foreign, "another-key", "fp")
        assert collision.value.status == 409


def test_records_are_found_bounded_and_oldest_dropped_first() -> None:
    order = _order({})
    for i in range(5):
        record = idempotency.Record(f"k{i}", f"fp{i}", 202)
        order = _order(idempotency.records_annotation(order, record, limit=3))
    assert [r.key for r in idempotency.records_of(order)] == ["k2", "k3", "k4"]
    assert idempotency.replay_of(order, "k3", "fp3") == idempotency.Record("k3", "fp3", 202)
    assert idempotency.replay_of(order, "k0", "fp0") is None, "forgotten: the oldest went first"
    with pytest.raises(Problem) as reused:
        idempotency.replay_of(order, "k4", "fp-other")
    assert reused.value.status == 422


def test_a_hand_edited_record_annotation_is_ignored() -> None:
    broken = _order({idempotency.RECORDS_ANNOTATION: "{not json"})
    assert idempotency.records_of(broken) == []
    wrong = _order({idempotency.RECORDS_ANNOTATION: json.dumps([{"key": "k"}])})
    assert idempotency.records_of(wrong) == []


def test_annotation_keys_are_korders() -> None:
    annotations = idempotency.create_annotations("k", "fp")
    assert set(annotations) == {
        constants.ANNOTATION_IDEMPOTENCY_KEY,
        constants.ANNOTATION_REQUEST_FINGERPRINT,
    }
    assert idempotency.RECORDS_ANNOTATION.startswith("korder.dev/")


def test_a_key_belongs_to_its_caller() -> None:
    alice, bob = "a" * 32, "b" * 32
    # Without a caller the name is what it always was; with one, each caller has their own.
    assert idempotency.resource_name("k", "") == idempotency.resource_name("k")
    names = {idempotency.resource_name("k", scope) for scope in ("", alice, bob)}
    assert len(names) == 3
    order = _order(idempotency.create_annotations("k", "fp", alice))
    idempotency.check_created(order, "k", "fp", alice)
    with pytest.raises(Problem) as foreign:
        idempotency.check_created(order, "k", "fp", bob)
    assert foreign.value.status == 409, "another caller's order is never replayed"
    record = idempotency.Record("k", "fp", 202, alice)
    acted = _order(idempotency.records_annotation(_order({}), record, limit=3))
    assert idempotency.replay_of(acted, "k", "fp", alice) == record
    # Bob's same key, even with another request, is new to him: no replay, no 422.
    assert idempotency.replay_of(acted, "k", "other", bob) is None
