"""One chaos run, from a fresh control plane to the report.

The set-up is korder's as a cluster would run it, on this machine: etcd and
kube-apiserver (:class:`~korder.localcluster.controlplane.ControlPlane`), the CRD
and exactly ``manifests/rbac``, the operator replicas and the façade with their
own ServiceAccounts' tokens, and the reference participants on a durable state
file. Each operator reaches the API server through its own
:class:`~chaos.proxies.Partition` and the participants through the
:class:`~chaos.proxies.CallGate`; the façade and the GitOps client reach the API
server directly. Then the workload and the faults run together, the partitions
heal, the run waits for every order to come to rest, and the checker judges.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from chaos import checker
from chaos.faults import Injector, Plan, Timeline
from chaos.history import History
from chaos.proxies import CallGate, Partition
from chaos.supervisor import Managed, Supervisor
from chaos.workload import Mix, Workload
from korder.domain import saga
from korder.domain.order import Order
from korder.kube.orders import to_order
from korder.localcluster import binaries, system
from korder.localcluster.controlplane import ControlPlane, free_port

log = logging.getLogger(__name__)
NAMESPACE = "chaos"
#: Plenty, so no order fails for stock: out-of-stock is not what this run probes.
STOCK = 1_000_000
_OPENED = re.compile(r'^korder_circuit_breaker_transitions_total\{.*state="open".*\} (\S+)$', re.M)


@dataclass(frozen=True)
class Options:
    orders: int = 200
    concurrency: int = 8
    #: The workload's stories start over about this long, and the faults fall in it.
    duration: float = 120.0
    seed: int = 1
    replicas: int = 1
    #: Ranges of Order UIDs the replicas share out (korder.operator.sharding); more than
    #: one needs a spare replica or more, to take a killed shard's range over.
    shards: int = 1
    plan: Plan = field(default_factory=Plan)
    mix: Mix = field(default_factory=Mix)
    #: After the workload: how long every order gets to come to rest.
    settle_seconds: float = 180.0
    out: Path = Path("bench-results/chaos")
    #: The Lease of two replicas, short so a failover fits a short run.
    lease_seconds: float = 4.0

    def __post_init__(self) -> None:
        if self.shards > 1 and self.replicas <= self.shards:
            raise ValueError(
                f"{self.shards} shards need {self.shards + 1} operator replicas or more: "
                "a killed shard's range is taken over by a spare"
            )


@dataclass
class Report:
    options: dict[str, Any]
    duration_s: float
    orders: int
    phases: dict[str, int]
    requests: dict[str, int]
    answers: dict[str, int]
    client_retries: int
    faults: dict[str, int]
    timeline: list[tuple[float, str, str]]
    participant_calls: dict[str, int]
    participant_retries: int
    breaker_openings: int
    restarts: dict[str, dict[str, int]]
    invariants: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(i["holds"] for i in self.invariants)


async def run(options: Options) -> Report:
    out = options.out
    # A run of its own: an earlier run's participant state would carry its ledgers in.
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    bins = binaries.resolve()
    plane = ControlPlane(
        bins, state_dir=out / "controlplane", kubeconfig=out / "kubeconfig", ephemeral=True
    )
    await asyncio.to_thread(plane.start)
    try:
        return await _run(options, plane, system.Cluster(plane.kubeconfig, bins.kubectl))
    finally:
        await asyncio.to_thread(plane.stop)


async def _run(options: Options, plane: ControlPlane, cluster: system.Cluster) -> Report:
    out, rng = options.out, random.Random(options.seed)
    await asyncio.to_thread(_prepare, cluster)
    api_port = int(plane.api_url.rsplit(":", 1)[1])
    partitions = [Partition("127.0.0.1", api_port) for _ in range(options.replicas)]
    for p in partitions:
        await p.start()
    participants = _participants(out)
    injector: Injector | None = None

    async def after_call(kind: str) -> None:
        if injector is not None:
            await injector.after_call(kind)

    gate = CallGate(participants.health_url.removesuffix("/health"), after_call)
    await gate.start()
    operators = [
        _operator(options, cluster, out, i, partitions[i].port, gate.url)
        for i in range(options.replicas)
    ]
    facade = _facade(cluster, out)
    supervisor = Supervisor([participants, *operators, facade])
    history, timeline = History(), Timeline()
    try:
        await supervisor.start()
        injector = Injector(options.plan, supervisor, plane, partitions, rng, timeline)
        workload = Workload(
            facade=facade.health_url.removesuffix("/health"),
            namespace=NAMESPACE,
            kubectl=cluster.kubectl,
            kubeconfig=cluster.kubeconfig,
            history=history,
            rng=random.Random(rng.random()),
            mix=options.mix,
            orders=options.orders,
            concurrency=options.concurrency,
            spread_seconds=options.duration,
        )
        async with _scraping(operators) as openings:
            await asyncio.gather(workload.run(), injector.run(options.duration))
            for p in partitions:
                p.heal()
            orders = await _settled(cluster, options.settle_seconds)
        stock_url = f"{gate.url}/inventory/stock"
        async with httpx.AsyncClient(timeout=10) as http:
            ledgers = {
                s: (await http.get(f"{gate.url}/{s}/ledger")).json()
                for s in ("inventory", "payment", "shipping")
            }
            stock = (await http.get(stock_url)).json()
    finally:
        await supervisor.stop()
        await gate.close()
        for p in partitions:
            await p.close()
    history.write(out / "history.jsonl")
    observed = checker.Observed(
        orders=orders,
        ledgers=ledgers,
        stock=stock,
        initial_stock=STOCK,
        now=datetime.now(UTC),
    )
    invariants = checker.check(history, observed)
    invariants.append(checker.faults_injected(options.plan.requested(), timeline.injected))
    (out / "observed.json").write_text(
        json.dumps(
            {"orders": [o.model_dump(mode="json", by_alias=True) for o in orders],
             "ledgers": ledgers, "stock": stock}
        )
    )  # fmt: skip
    return Report(
        options=_plain(options),
        duration_s=round(time.monotonic() - timeline.started, 1),
        orders=len(orders),
        phases=dict(Counter(str(o.status.phase) for o in orders)),
        requests=dict(Counter(str(op.kind) for op in history.ops)),
        answers=dict(Counter(str(op.status or op.error) for op in history.ops)),
        client_retries=sum(1 for op in history.ops if op.indeterminate or op.status == 503),
        faults=dict(timeline.injected),
        timeline=timeline.events,
        participant_calls=dict(gate.calls),
        participant_retries=sum(gate.keys.values()) - len(gate.keys),
        breaker_openings=int(sum(openings.values())),
        restarts={m.name: dict(m.exits) for m in supervisor.managed},
        invariants=[i.report() for i in invariants],
    )


# --- set-up ---------------------------------------------------------------------------


def _prepare(cluster: system.Cluster) -> None:
    cluster.install_crds()
    cluster.install_rbac()
    cluster.kubectl_run("create", "namespace", NAMESPACE)
    # What a shop does for each namespace a façade serves.
    cluster.kubectl_run(
        "create", "rolebinding", "korder-api", "-n", NAMESPACE, "--clusterrole=korder-api",
        f"--serviceaccount={system.SYSTEM_NAMESPACE}:korder-api",
    )  # fmt: skip


def _participants(out: Path) -> Managed:
    port = free_port()
    env = system.component_env(
        Path("/dev/null"),
        KORDER_PARTICIPANTS_PORT=str(port),
        KORDER_PARTICIPANTS_STATE=str(out / "participants.sqlite"),
        KORDER_INVENTORY_STOCK=str(STOCK),
    )
    return Managed(
        "participants", "korder.participants", env, out / "participants.log",
        f"http://127.0.0.1:{port}/health",
    )  # fmt: skip


def _operator(
    options: Options, cluster: system.Cluster, out: Path, i: int, api_port: int, gate: str
) -> Managed:
    """Operator replica ``i``: its ServiceAccount's token, the API server through its partition."""
    kubeconfig = cluster.service_account_kubeconfig(
        "korder-operator", out / f"operator-{i}.kubeconfig"
    )
    config = yaml.safe_load(kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{api_port}"
    kubeconfig.write_text(yaml.safe_dump(config))
    probe, metrics = free_port(), free_port()
    plan = options.plan
    settings = {
        "KORDER_OPERATOR_PROBE_PORT": str(probe),
        "KORDER_OPERATOR_METRICS_PORT": str(metrics),
        "KORDER_INVENTORY_URL": f"{gate}/inventory",
        "KORDER_PAYMENT_URL": f"{gate}/payment",
        "KORDER_SHIPPING_URL": f"{gate}/shipping",
        "KORDER_RETRY_CAP_SECONDS": "2",
        "KORDER_BREAKER_RESET_SECONDS": "2",
        "KORDER_OPERATOR_LEASE_NAMESPACE": system.SYSTEM_NAMESPACE,
    }
    if options.replicas == 1:
        settings["KORDER_OPERATOR_LEADER_ELECTION"] = "false"
    else:
        settings["KORDER_OPERATOR_SHARDS"] = str(options.shards)
        lease = options.lease_seconds
        settings |= {
            "KORDER_OPERATOR_LEASE_SECONDS": str(lease),
            "KORDER_OPERATOR_RENEW_DEADLINE_SECONDS": str(lease * 0.75),
            "KORDER_OPERATOR_RETRY_PERIOD_SECONDS": str(lease / 4),
        }
    if plan.participant_failure_rate:
        settings |= {
            "CHAOS_MODE": "true",
            "KORDER_CHAOS_RATE": str(plan.participant_failure_rate),
            "KORDER_CHAOS_SEED": str(options.seed + i),
            "KORDER_CHAOS_LATENCY_MS": "20",
        }
    return Managed(
        f"operator-{i}",
        "korder.operator",
        system.component_env(kubeconfig, **settings),
        out / f"operator-{i}.log",
        f"http://127.0.0.1:{probe}/healthz",
        f"http://127.0.0.1:{metrics}/metrics",
    )


def _facade(cluster: system.Cluster, out: Path) -> Managed:
    kubeconfig = cluster.service_account_kubeconfig("korder-api", out / "api.kubeconfig")
    port = free_port()
    # The clients send no token: who may call the façade is not what this run proves.
    env = system.component_env(
        kubeconfig, PORT=str(port), KORDER_NAMESPACE=NAMESPACE, KORDER_ALLOW_UNAUTHENTICATED="true"
    )
    return Managed(
        "facade", "korder.api", env, out / "facade.log", f"http://127.0.0.1:{port}/health"
    )


# --- the end ----------------------------------------------------------------------------


def _read_orders(cluster: system.Cluster) -> list[Order]:
    done = cluster.kubectl_run("get", "orders", "-n", NAMESPACE, "-o", "json", check=False)
    if done.returncode != 0:
        return []
    return [to_order(item) for item in json.loads(done.stdout)["items"]]


async def _settled(cluster: system.Cluster, seconds: float) -> list[Order]:
    """The orders, once none has anything left to do (or after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        orders = await asyncio.to_thread(_read_orders, cluster)
        now = datetime.now(UTC)
        busy = [o for o in orders if not isinstance(saga.next_move(o, now), saga.Idle)]
        if (orders and not busy) or time.monotonic() > deadline:
            return orders
        await asyncio.sleep(1.0)


@contextlib.asynccontextmanager
async def _scraping(operators: list[Managed]) -> AsyncIterator[dict[tuple[str, int], float]]:
    """Breaker openings, read from each operator process's /metrics while it lives."""
    seen: dict[tuple[str, int], float] = {}

    async def scrape() -> None:
        async with httpx.AsyncClient(timeout=1.0) as http:
            while True:
                for m in operators:
                    with contextlib.suppress(httpx.HTTPError):
                        text = (await http.get(m.metrics_url)).text
                        seen[(m.name, m.starts)] = sum(float(v) for v in _OPENED.findall(text))
                await asyncio.sleep(1.0)

    task = asyncio.create_task(scrape())
    try:
        yield seen
    finally:
        task.cancel()


def _plain(options: Options) -> dict[str, Any]:
    return {
        "orders": options.orders,
        "concurrency": options.concurrency,
        "duration": options.duration,
        "seed": options.seed,
        "replicas": options.replicas,
        "shards": options.shards,
        "plan": {k: v for k, v in vars(options.plan).items()},
        "mix": dict(vars(options.mix)),
    }
