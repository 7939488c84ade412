"""The invariants of a chaos run, checked against the history, the orders and the ledgers.

Pure code: it reads what clients were told (:mod:`.history`), the Orders as the
API server holds them at the end, and the participants' ledgers and stock, and
says of each invariant whether it holds and, if not, where it broke. What a phase
means comes from the domain itself (:mod:`korder.domain.steps`, :mod:`.saga`), so
the checker and the product cannot drift apart. The unit tests feed it histories
with each kind of violation: a checker that cannot fail proves nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chaos.history import History, Kind, Op
from korder import constants
from korder.domain import conditions, saga, steps
from korder.domain.order import Order, Phase

#: Violations listed per invariant in the report; the count is always whole.
SHOWN = 20
Ledgers = Mapping[str, Sequence[Mapping[str, Any]]]


@dataclass
class Invariant:
    name: str
    description: str
    violations: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return not self.violations

    def report(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "holds": self.holds,
            "violations": len(self.violations),
            "examples": self.violations[:SHOWN],
        }


@dataclass(frozen=True)
class Observed:
    """What the run left behind: the orders, the ledgers, the stock."""

    orders: Sequence[Order]
    ledgers: Ledgers
    stock: Mapping[str, int]
    initial_stock: int
    #: The moment the checker judges "settled" at (no clock of its own).
    now: datetime


def check(history: History, observed: Observed) -> list[Invariant]:
    """Every invariant, in the order the report lists them."""
    by_name = {o.metadata.name: o for o in observed.orders}
    told = [
        acknowledged_exist(history, by_name),
        one_order_per_key(history, observed.orders),
        actions_honoured(history, by_name),
        no_server_error(history),
    ]
    return [*of_the_saga(observed), *told]


def of_the_saga(observed: Observed) -> list[Invariant]:
    """The invariants that need no client's history: the orders against the ledgers.

    Also what ``make bench-saga`` checks of orders it created straight at the API server.
    """
    return [
        settled(observed),
        effects_match_phase(observed.orders, _effects(observed.ledgers)),
        no_repeated_effect(observed.ledgers),
        stock_adds_up(observed),
        history_follows_the_saga(observed.orders),
    ]


def settled(observed: Observed) -> Invariant:
    inv = Invariant("settled", "every order is at rest: nothing left for the saga to do")
    for order in observed.orders:
        move = saga.next_move(order, observed.now)
        if not isinstance(move, saga.Idle):
            inv.violations.append(
                f"{order.metadata.name} in {_phase(order)}: {type(move).__name__}"
            )
    return inv


def acknowledged_exist(history: History, by_name: Mapping[str, Order]) -> Invariant:
    inv = Invariant("acknowledged_exist", "every order a client was told of exists")
    told = {op.order for op in history.ops if op.order and _ok(op)}
    inv.violations += [
        f"{name} was acknowledged and is missing" for name in sorted(told - by_name.keys())
    ]
    return inv


def one_order_per_key(history: History, orders: Sequence[Order]) -> Invariant:
    inv = Invariant(
        "one_order_per_key",
        "a 201 for an Idempotency-Key means exactly one Order; every replay named it",
    )
    holders: defaultdict[str, list[Order]] = defaultdict(list)
    for order in orders:
        key = order.metadata.annotations.get(constants.ANNOTATION_IDEMPOTENCY_KEY)
        if key:
            holders[key].append(order)
    answers: defaultdict[str, set[tuple[str | None, str | None]]] = defaultdict(set)
    for op in history.ops:
        if op.kind in (Kind.CREATE, Kind.REPLAY) and op.key and _ok(op):
            answers[op.key].add((op.order, op.uid))
    for key, named in sorted(answers.items()):
        found = holders.get(key, [])
        if len(found) != 1:
            inv.violations.append(f"key {key}: acknowledged, {len(found)} orders hold it")
            continue
        truth = found[0].metadata
        inv.violations += [
            f"key {key}: an answer named {name}, the order is {truth.name}"
            for name, uid in sorted(named, key=str)
            if name != truth.name or (uid is not None and uid != truth.uid)
        ]
    return inv


#: Where an order must end once the façade accepted the action (202): the cancel
#: was written while the saga could still be interrupted, a fulfilment cannot be
#: taken back, and a processed order is fulfilled or cancelled from there.
_ENDS_AFTER: dict[Kind, frozenset[Phase]] = {
    Kind.CANCEL: frozenset({Phase.CANCELLED}),
    Kind.PROCESS: frozenset({Phase.PROCESSING, Phase.FULFILLED, Phase.CANCELLED}),
    Kind.FULFILL: frozenset({steps.DONE}),
}


def actions_honoured(history: History, by_name: Mapping[str, Order]) -> Invariant:
    inv = Invariant(
        "actions_honoured", "an accepted cancel, process or fulfil is carried out by the saga"
    )
    for op in history.ops:
        ends = _ENDS_AFTER.get(op.kind)
        if ends is None or op.status != 202 or op.order is None or op.order not in by_name:
            continue
        phase = _phase(by_name[op.order])
        if phase not in ends:
            inv.violations.append(f"{op.order}: {op.kind} was accepted, the order ended {phase}")
    return inv


def _effects(ledgers: Ledgers) -> dict[str, Counter[str]]:
    effects: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for entries in ledgers.values():
        for entry in entries:
            effects[str(entry["orderId"])][str(entry["type"])] += 1
    return effects


def effects_match_phase(orders: Sequence[Order], effects: Mapping[str, Counter[str]]) -> Invariant:
    inv = Invariant(
        "effects_match_phase",
        "at most one reservation and one charge per order; a confirmed order holds both, "
        "a failed or cancelled one has them released and refunded",
    )
    known = {o.metadata.uid for o in orders}
    for order in orders:
        seen = effects.get(order.metadata.uid, Counter())
        name, phase = order.metadata.name, _phase(order)
        problems = [f"{n} {kind}s" for kind, n in seen.items() if n > 1]
        if phase in steps.READY:
            held = seen["reserve"] - seen["release"], seen["charge"] - seen["refund"]
            if held != (1, 1):
                problems.append("not exactly one live reservation and one charge")
            if (seen["ship"] == 1) != (phase == steps.DONE):
                problems.append(f"{seen['ship']} shipments")
        elif phase in (Phase.FAILED, Phase.CANCELLED) and (
            seen["reserve"] != seen["release"] or seen["charge"] != seen["refund"]
        ):
            problems.append("an effect left undone")
        if problems:
            inv.violations.append(f"{name} {phase} with {dict(seen)}: {'; '.join(problems)}")
    inv.violations += [
        f"effects of an order that does not exist: {uid}" for uid in effects if uid not in known
    ]
    return inv


def no_repeated_effect(ledgers: Ledgers) -> Invariant:
    inv = Invariant("no_repeated_effect", "no participant effect is repeated for one key")
    keys = Counter(str(e["key"]) for entries in ledgers.values() for e in entries)
    inv.violations += [f"key {k}: {n} effects" for k, n in sorted(keys.items()) if n > 1]
    return inv


def stock_adds_up(observed: Observed) -> Invariant:
    inv = Invariant(
        "stock_adds_up",
        "stock left plus what confirmed (or stalled) orders hold is the initial stock",
    )
    held: Counter[str] = Counter()
    effects = _effects(observed.ledgers)
    for order in observed.orders:
        # A saga stalled on its deadline (waiting for a retry) may hold its reservation
        # (the step in doubt may have arrived): the ledger says whether it does.
        seen = effects.get(order.metadata.uid, Counter())
        stalled_holding = conditions.stopped(order.status) is not None and (
            seen["reserve"] - seen["release"] == 1
        )
        if _phase(order) in steps.READY or stalled_holding:
            for item in order.spec.items:
                held[item.product_id] += item.quantity
    for product, left in sorted(observed.stock.items()):
        if left + held[product] != observed.initial_stock:
            inv.violations.append(
                f"{product}: {left} left + {held[product]} held != {observed.initial_stock}"
            )
    return inv


def history_follows_the_saga(orders: Iterable[Order]) -> Invariant:
    inv = Invariant(
        "history_follows_the_saga",
        "every order's status.history is a path of the saga's phase graph, in time order",
    )
    for order in orders:
        history = order.status.history or []
        name = order.metadata.name
        inv.violations += [f"{name}: {a} -> {b}" for a, b in saga.illegal_moves(history)]
        times = [datetime.fromisoformat(e.time) for e in history]
        if times != sorted(times):
            inv.violations.append(f"{name}: history out of time order")
    return inv


def no_server_error(history: History) -> Invariant:
    inv = Invariant("no_server_error", "no client ever got a 5xx but a 503 that says when to retry")
    for op in history.ops:
        if op.status is None or op.status < 500:
            continue
        if op.status != 503 or not op.retry_after:
            inv.violations.append(f"{op.kind} {op.order or op.key}: {op.status} {op.detail or ''}")
    return inv


def _ok(op: Op) -> bool:
    return op.status is not None and 200 <= op.status < 300


def _phase(order: Order) -> Phase:
    return order.status.phase or Phase.PENDING


def faults_injected(requested: Mapping[str, int], injected: Mapping[str, int]) -> Invariant:
    """Not of the product but of the run: a fault that never happened proved nothing."""
    inv = Invariant("faults_injected", "every fault the run asked for was injected")
    inv.violations += [
        f"{kind}: {injected.get(kind, 0)} of {n}"
        for kind, n in sorted(requested.items())
        if injected.get(kind, 0) < n
    ]
    return inv
