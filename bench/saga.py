"""``make bench-saga``: many orders through the whole saga at once.

Starts a fresh local control plane, the reference participants and the operator as
real processes, creates ``--orders`` Orders at once through the API server (the
way ``kubectl apply`` of many manifests would), and waits until every order is
settled (Confirmed, or Failed/Cancelled). It then reports:

- the makespan (first create to last order settled) and the orders per second;
- each order's time from creation to Confirmed, read from its durable
  ``status.history`` (p50, p99);
- and it checks the saga's invariants against the participants' ledgers
  (:func:`chaos.checker.of_the_saga`, the same code as the chaos run's): every
  order at rest, one reservation and one charge per confirmed order and nothing
  undone, every effect of a failed one undone, no effect repeated, stock adding
  up, every history a path of the saga's phase graph.

The exit status is 1 when any invariant is broken or an order never settles.
Results go to ``bench-results/saga.json``. Faults are ``make chaos``'s business.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx

from bench import apiserver
from chaos import checker
from korder.kube.orders import to_order
from korder.localcluster import processes, system
from korder.localcluster.controlplane import free_port

SETTLED = {"Confirmed", "Failed", "Cancelled"}
NAMESPACE = apiserver.NAMESPACE


@dataclass
class Report:
    orders: int
    settled: int
    confirmed: int
    failed: int
    makespan_s: float
    orders_per_s: float
    confirm_p50_s: float | None
    confirm_p99_s: float | None
    violations: list[str]


async def _create_all(server: str, context: Any, count: int) -> float:
    base = apiserver.orders_url(server)
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(ssl=context, limit=32)
    async with aiohttp.ClientSession(connector=connector) as session:
        await apiserver.create_namespace(session, server)
        started = time.perf_counter()

        async def create(i: int) -> None:
            async with session.post(
                base, data=apiserver.order_body(f"order-{i}"), headers=headers
            ) as r:
                await r.read()
                if r.status != 201:
                    sys.exit(f"create order-{i}: {r.status}")

        await asyncio.gather(*(create(i) for i in range(count)))
    return started


def _orders(cluster: system.Cluster) -> list[dict[str, Any]]:
    out = cluster.kubectl_run("get", "orders", "-n", NAMESPACE, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def _confirm_seconds(order: dict[str, Any]) -> float | None:
    created = datetime.fromisoformat(order["metadata"]["creationTimestamp"])
    for entry in order.get("status", {}).get("history", []):
        if entry["type"] == "OrderConfirmed":
            return (datetime.fromisoformat(entry["time"]) - created).total_seconds()
    return None


def check_invariants(
    orders: list[dict[str, Any]],
    ledgers: dict[str, list[dict[str, Any]]],
    stock: dict[str, int],
    initial_stock: int,
) -> list[str]:
    """The chaos checker's saga invariants; an empty list is a pass."""
    observed = checker.Observed(
        orders=[to_order(o) for o in orders],
        ledgers=ledgers,
        stock=stock,
        initial_stock=initial_stock,
        now=datetime.now(UTC),
    )
    return [f"{i.name}: {v}" for i in checker.of_the_saga(observed) for v in i.violations]


def run(args: argparse.Namespace) -> Report:
    with apiserver.fresh_cluster("saga") as (state, cluster):
        kubeconfig = cluster.kubeconfig
        p_port, probe, metrics = free_port(), free_port(), free_port()
        env = system.component_env(
            kubeconfig,
            KORDER_PARTICIPANTS_PORT=str(p_port),
            KORDER_OPERATOR_PROBE_PORT=str(probe),
            KORDER_OPERATOR_METRICS_PORT=str(metrics),
            KORDER_LOG_LEVEL="WARNING",
            **system.participant_urls(str(p_port)),
        )
        logs = state / "logs"
        logs.mkdir()
        children = [
            processes.spawn(
                [sys.executable, "-m", "korder.participants"],
                env=env,
                log=logs / "participants.log",
            ),
        ]
        try:
            processes.wait_healthy(children[0], f"http://127.0.0.1:{p_port}/health", "participants")
            children.append(
                processes.spawn(
                    [sys.executable, "-m", "korder.operator"],
                    env=env,
                    log=logs / "operator.log",
                )
            )
            processes.wait_healthy(children[1], f"http://127.0.0.1:{probe}/healthz", "operator")
            participants = f"http://127.0.0.1:{p_port}"
            initial = httpx.get(f"{participants}/inventory/stock").json()["PROD-001"]
            server, context = apiserver.ssl_context(kubeconfig, state)
            started = asyncio.run(_create_all(server, context, args.orders))
            deadline = time.monotonic() + args.timeout
            while True:
                orders = _orders(cluster)
                settled = [o for o in orders if o.get("status", {}).get("phase") in SETTLED]
                if len(settled) == args.orders or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            makespan = time.perf_counter() - started
            ledgers = {
                service: httpx.get(f"{participants}/{service}/ledger").json()
                for service in ("inventory", "payment", "shipping")
            }
            stock = httpx.get(f"{participants}/inventory/stock").json()
        finally:
            processes.stop(children)
    phases = Counter(o.get("status", {}).get("phase") for o in orders)
    violations = check_invariants(orders, ledgers, stock, initial)
    if len(settled) != args.orders:
        violations.append(f"{args.orders - len(settled)} orders never settled: {dict(phases)}")
    latencies = sorted(s for o in orders if (s := _confirm_seconds(o)) is not None)
    return Report(
        orders=args.orders,
        settled=len(settled),
        confirmed=phases["Confirmed"],
        failed=phases["Failed"],
        makespan_s=round(makespan, 2),
        orders_per_s=round(len(settled) / makespan, 1),
        confirm_p50_s=round(statistics.median(latencies), 2) if latencies else None,
        confirm_p99_s=(
            round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2)
            if latencies
            else None
        ),
        violations=violations,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.saga")
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to settle")
    args = parser.parse_args()
    report = run(args)
    title = "saga throughput"
    print(f"{title}: {report.orders} orders created at once through the API server")
    print(
        f"  settled {report.settled} (Confirmed {report.confirmed}, Failed {report.failed}) "
        f"in {report.makespan_s} s: {report.orders_per_s} orders/s"
    )
    print(f"  creation -> Confirmed: p50 {report.confirm_p50_s} s, p99 {report.confirm_p99_s} s")
    print("  invariants: " + ("all hold" if not report.violations else "BROKEN"))
    for violation in report.violations:
        print(f"    - {violation}")
    apiserver.RESULTS.mkdir(exist_ok=True)
    out = apiserver.RESULTS / "saga.json"
    out.write_text(json.dumps(asdict(report), indent=2))
    print(f"written to {out}")
    sys.exit(1 if report.violations else 0)


if __name__ == "__main__":
    main()
