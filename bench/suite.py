"""``make bench``: every performance figure of issue 12, in one run, on one fresh control plane.

One local control plane (etcd with fsync, as in production), the reference
participants, the REST façade and the operator as real processes, and then, in
this order (each step says what bounds it in the README's benchmark section):

1. the API server's write ceiling for the writes an order costs (creates, status
   patches, Events at concurrency 8), with nothing else running;
2. the façade's overhead: ``POST /orders`` against a direct create of the same
   Order, one at a time (p50) and saturated (throughput), operator stopped;
3. with ``--population`` settled Orders in the cluster (10,000 by default; they get
   the status a real saga writes, made by the saga's own pure code): the operator
   restarted, timed until it is idle again, with the participant calls and API
   writes it made meanwhile (both must be 0), its RSS, and ``GET /orders/{id}`` and
   ``GET /orders`` latency against the same with 100 orders (measured in step 2);
4. W, the API writes of one order from the façade's create to ``Confirmed``,
   counted from the API server's ``apiserver_request_total`` for ``--light``
   orders sent one at a time through the façade with ``Prefer: wait``, split by
   verb and resource; the same orders give the light-load latency;
5. the saga's throughput at a sustained offered load (direct creates at a fixed
   rate above what the operator can take), and the p99 latency at half that rate.
6. the same sustained load with 1, 2 and 4 operator processes on as many shards
   (``--shards``), and then, from every such Order's ``managedFields``, how many were
   written by more than one shard or by a shard that does not own them (must be 0).

Results print as a table and go to ``bench-results/results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench import apiserver
from korder import constants
from korder.domain import saga
from korder.domain.order import Order, OrderSpec
from korder.localcluster import processes, system
from korder.localcluster.controlplane import free_port
from korder.operator import handlers, sharding
from korder.outcomes import Succeeded

NAMESPACE = apiserver.NAMESPACE
#: The ceiling's own Orders live apart, so the façade's listings do not see them.
CEILING_NAMESPACE = "ceiling"
WRITE_VERBS = frozenset({"POST", "PATCH", "PUT", "DELETE", "APPLY"})
JSON = {"Content-Type": "application/json"}
MERGE = {"Content-Type": "application/merge-patch+json"}


# --- The system under test ------------------------------------------------------------


@dataclass
class System:
    """The control plane and korder's processes, for the whole run."""

    state: Path
    cluster: system.Cluster
    server: str
    context: ssl.SSLContext
    env: dict[str, str]
    participants: str
    facade: str
    operator_health: str
    operator_metrics: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: The settings each process was started with besides ``env``.
    extra: dict[str, dict[str, str]] = field(default_factory=dict)

    def start(self, name: str, module: str, health: str, **extra: str) -> None:
        log = self.state / "logs" / f"{name}.log"
        env = {**self.env, **extra}
        self.extra[name] = extra
        self.procs[name] = processes.spawn([sys.executable, "-m", module], env=env, log=log)
        processes.wait_healthy(self.procs[name], health, name, timeout=120)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        processes.stop([proc], timeout=30)

    def env_of(self, name: str) -> dict[str, str]:
        return self.extra[name]

    def start_operator(self) -> None:
        self.start("operator", "korder.operator", self.operator_health)

    def pid(self, name: str) -> int:
        return self.procs[name].pid


@contextlib.contextmanager
def korder_system(facade_port: int | None = None) -> Iterator[System]:
    with apiserver.fresh_cluster("suite", fsync=True) as (state, cluster):
        (state / "logs").mkdir()
        server, context = apiserver.ssl_context(cluster.kubeconfig, state)
        p_port, api_port, probe, metrics = (free_port() for _ in range(4))
        env = system.component_env(
            cluster.kubeconfig,
            KORDER_PARTICIPANTS_PORT=str(p_port),
            KORDER_OPERATOR_PROBE_PORT=str(probe),
            KORDER_OPERATOR_METRICS_PORT=str(metrics),
            # One operator alone: its Lease renewals would only add writes to the counts.
            KORDER_OPERATOR_LEADER_ELECTION="false",
            KORDER_LOG_LEVEL="WARNING",
            KORDER_NAMESPACE=NAMESPACE,
            # The load sends no token; a cached review costs no API call (korder.api.access).
            KORDER_ALLOW_UNAUTHENTICATED="true",
            PORT=str(facade_port or api_port),
            **system.participant_urls(str(p_port)),
        )
        sut = System(
            state=state,
            cluster=cluster,
            server=server,
            context=context,
            env=env,
            participants=f"http://127.0.0.1:{p_port}",
            facade=f"http://127.0.0.1:{facade_port or api_port}",
            operator_health=f"http://127.0.0.1:{probe}/healthz",
            operator_metrics=f"http://127.0.0.1:{metrics}/metrics",
        )
        for namespace in (NAMESPACE, CEILING_NAMESPACE):
            cluster.kubectl_run("create", "namespace", namespace)
        try:
            sut.start("participants", "korder.participants", f"{sut.participants}/health")
            sut.start("facade", "korder.api", f"{sut.facade}/health")
            yield sut
        finally:
            processes.stop(list(sut.procs.values()), timeout=30)
            # The components' logs outlive the run's temporary folder, for a look after.
            shutil.copytree(state / "logs", apiserver.RESULTS / "logs", dirs_exist_ok=True)


# --- Small measuring tools ------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def control_plane_pids(state: Path) -> dict[str, int]:
    """etcd's and kube-apiserver's pids: the processes whose command line names ``state``."""
    pids = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(state).encode() in b" ".join(argv):
            pids[Path(argv[0].decode()).name] = int(proc.name)
    return pids


def cpu_by_process(sut: System) -> dict[str, float]:
    """CPU seconds used so far by each process of the system, and by this benchmark."""
    pids = {**control_plane_pids(sut.state), **{n: p.pid for n, p in sut.procs.items()}}
    pids["bench (load)"] = os.getpid()
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


async def write_counts(session: aiohttp.ClientSession, server: str) -> Counter[str]:
    """The API server's writes so far to Orders and Events, by verb and resource."""
    async with session.get(f"{server}/metrics") as r:
        text = await r.text()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, value = line[len("apiserver_request_total{") :].rsplit("} ", 1)
        labels = dict(re.findall(r'(\w+)="([^"]*)"', labels_text))
        if labels.get("verb") not in WRITE_VERBS or labels.get("resource") not in (
            "orders",
            "events",
        ):
            continue
        resource = labels["resource"] + (
            f"/{labels['subresource']}" if labels["subresource"] else ""
        )
        counts[f"{labels['verb']} {resource}"] += int(float(value))
    return counts


def session(sut: System, limit: int = 64) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=sut.context, limit=limit))


def facade_session(limit: int = 64) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit))


def order_spec() -> dict[str, Any]:
    """The benchmark's ~1 KB Order, as the façade takes it (its spec)."""
    body: dict[str, Any] = json.loads(apiserver.order_body("x"))
    return dict(body["spec"])


def direct_body(name: str, namespace: str = NAMESPACE) -> bytes:
    """A direct create of the Order the façade would make: the saga's finalizer already set."""
    body = json.loads(apiserver.order_body(name))
    body["metadata"]["namespace"] = namespace
    body["metadata"]["finalizers"] = [constants.FINALIZER]
    return json.dumps(body).encode()


async def timed(call: Callable[[], Awaitable[int]], count: int) -> list[float]:
    """``count`` calls one after another; their latencies in ms (a failed call aborts)."""
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        status = await call()
        latencies.append((time.perf_counter() - start) * 1000)
        if status >= 300:
            sys.exit(f"benchmark request failed with {status}")
    return latencies


async def saturated(call: Callable[[], Awaitable[int]], concurrency: int, seconds: float) -> float:
    """Calls per second with ``concurrency`` callers for ``seconds``."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            if await call() >= 300:
                sys.exit("benchmark request failed")
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


# --- 1. The write ceiling ----------------------------------------------------------------


async def ceiling(sut: System, seconds: float) -> dict[str, float]:
    """Writes per second of each kind an order costs, at concurrency 8, in their own namespace."""
    results = await apiserver.measure(
        sut.server, sut.context, seconds, 5000, namespace=CEILING_NAMESPACE, concurrencies=(8,)
    )
    rates = {r.operation: r.per_second for r in results}
    return {
        "POST orders": rates["create Order"],
        "PATCH orders/status": rates["patch status"],
        "PATCH orders": rates["patch status"],  # an object patch costs what a status patch does
        "POST events": rates["post Event"],
    }


async def delete_all(sut: System, namespace: str) -> None:
    """Every Order of ``namespace`` gone, in one request (they carry no finalizer)."""
    async with session(sut) as s, s.delete(apiserver.orders_url(sut.server, namespace)) as r:
        await r.read()


def orders_ceiling(rates: dict[str, float], writes: Counter[str], orders: int) -> float:
    """Orders per second the API server could take with these writes per order: 1 / Σ(wᵢ/rateᵢ)."""
    seconds = sum(
        n / orders / rates.get(kind, rates["PATCH orders/status"]) for kind, n in writes.items()
    )
    return 1 / seconds


# --- 2. The façade's overhead, and reads with few orders ---------------------------------


async def facade_overhead(sut: System, count: int, seconds: float) -> dict[str, float]:
    spec = json.dumps(order_spec()).encode()
    base = apiserver.orders_url(sut.server)
    counter = iter(range(10**9))
    async with session(sut) as s, facade_session() as f:

        async def direct() -> int:
            async with s.post(base, data=direct_body(f"d-{next(counter)}"), headers=JSON) as r:
                await r.read()
                return r.status

        async def through_facade() -> int:
            async with f.post(f"{sut.facade}/orders", data=spec, headers=JSON) as r:
                await r.read()
                return r.status

        await timed(direct, 20)
        await timed(through_facade, 20)
        # Alternated, so drifting background load touches both alike.
        direct_ms: list[float] = []
        facade_ms: list[float] = []
        # The façade's CPU per create (its own work, which the p50 difference shows
        # blurred by the machine's other load), read from /proc around its requests.
        facade_cpu = 0.0
        for _ in range(4):
            direct_ms += await timed(direct, count // 4)
            before = cpu_seconds(sut.pid("facade"))
            facade_ms += await timed(through_facade, count // 4)
            facade_cpu += cpu_seconds(sut.pid("facade")) - before
        direct_rate = await saturated(direct, 16, seconds)
        facade_rate = await saturated(through_facade, 16, seconds)
    return {
        "direct_create_p50_ms": round(statistics.median(direct_ms), 2),
        "facade_create_p50_ms": round(statistics.median(facade_ms), 2),
        "facade_cpu_ms_per_create": round(facade_cpu * 1000 / len(facade_ms), 2),
        "facade_overhead_p50_ms": round(
            statistics.median(facade_ms) - statistics.median(direct_ms), 2
        ),
        "direct_creates_per_s": round(direct_rate, 1),
        "facade_creates_per_s": round(facade_rate, 1),
        "facade_throughput_ratio": round(facade_rate / direct_rate, 3),
    }


async def read_latency(sut: System, count: int) -> dict[str, float]:
    """p50 of ``GET /orders/{id}`` and of ``GET /orders`` (first page), through the façade."""
    async with facade_session() as f:
        async with f.get(f"{sut.facade}/orders", params={"limit": "50"}) as r:
            ids = [o["id"] for o in (await r.json())["orders"]]
        picks = iter(ids * (count // len(ids) + 1))

        async def one() -> int:
            async with f.get(f"{sut.facade}/orders/{next(picks)}") as r:
                await r.read()
                return r.status

        async def page() -> int:
            async with f.get(f"{sut.facade}/orders") as r:
                await r.read()
                return r.status

        await timed(one, 10)
        await timed(page, 10)
        one_ms = await timed(one, count)
        page_ms = await timed(page, count)
    return {
        "get_p50_ms": round(statistics.median(one_ms), 2),
        "list_p50_ms": round(statistics.median(page_ms), 2),
    }


# --- 3. Many settled orders --------------------------------------------------------------


def settled_status(uid: str) -> dict[str, Any]:
    """The status the saga writes for a Confirmed order, made by the saga's own pure code."""
    spec = OrderSpec.model_validate(order_spec())
    now = datetime.now(UTC)
    order = Order.model_validate(
        {
            "metadata": {"name": "x", "namespace": NAMESPACE, "uid": uid, "generation": 1},
            "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
    )
    answers = {"reservationId": f"res-{uid[:8]}", "paymentId": f"pay-{uid[:8]}"}
    for _ in range(20):
        move = saga.next_move(order, now)
        if isinstance(move, saga.Idle):
            break
        if isinstance(move, saga.Call):
            move = saga.apply(order, move, Succeeded(answers), saga.Policy(), now)
        order = order.model_copy(update={"status": move.status})
    return order.status.model_dump(mode="json", by_alias=True, exclude_none=True)


async def populate(sut: System, population: int) -> int:
    """Top the cluster up to ``population`` Orders and give each one a settled status."""
    async with session(sut, limit=16) as s:
        listing: list[dict[str, Any]] = []
        for namespace in (NAMESPACE, CEILING_NAMESPACE):
            async with s.get(apiserver.orders_url(sut.server, namespace)) as r:
                listing += (await r.json())["items"]
        missing = max(0, population - len(listing))
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(missing):
            queue.put_nowait(i)
        created: list[dict[str, Any]] = []

        async def create() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                async with s.post(
                    apiserver.orders_url(sut.server), data=direct_body(f"p-{i}"), headers=JSON
                ) as r:
                    created.append(await r.json())

        await asyncio.gather(*(create() for _ in range(16)))
        todo = [o for o in listing + created if o.get("status", {}).get("phase") != "Confirmed"]
        work: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for o in todo:
            work.put_nowait(o)

        async def settle() -> None:
            while not work.empty():
                meta = work.get_nowait()["metadata"]
                url = f"{apiserver.orders_url(sut.server, meta['namespace'])}/{meta['name']}/status"
                body = json.dumps({"status": settled_status(meta["uid"])})
                async with s.patch(url, data=body, headers=MERGE) as r:
                    await r.read()

        await asyncio.gather(*(settle() for _ in range(16)))
    return len(listing) + len(created)


def operator_calls(sut: System) -> int:
    """Participant calls the running operator made since it started (its own counter)."""
    text = httpx.get(sut.operator_metrics, timeout=10).text
    found = re.findall(r"^korder_participant_calls_total\{[^}]*\} (\S+)$", text, re.MULTILINE)
    return int(sum(float(v) for v in found))


def wait_idle(pid: int, quiet: float = 0.05, window: float = 2.0, timeout: float = 600) -> float:
    """Seconds until the process used less than ``quiet`` of a core over ``window`` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_seconds(pid)
        time.sleep(window)
        if cpu_seconds(pid) - before < quiet * window:
            return time.monotonic() - started - window
    return float("inf")


async def restart(sut: System) -> dict[str, Any]:
    """The operator started on a cluster full of settled Orders: time to idle, and what it did."""
    async with session(sut) as s:
        writes_before = await write_counts(s, sut.server)
        started = time.monotonic()
        sut.start_operator()
        healthy = time.monotonic() - started
        idle = wait_idle(sut.pid("operator"))
        writes = await write_counts(s, sut.server) - writes_before
    return {
        "operator_restart_s": round(healthy + idle, 1),
        "participant_calls_on_restart": operator_calls(sut),
        "api_writes_on_restart": sum(writes.values()),
        "api_writes_on_restart_by_kind": dict(writes),
        "operator_rss_mb_10k": rss_mb(sut.pid("operator")),
    }


# --- 4. W and the light-load latency -----------------------------------------------------


async def light(sut: System, count: int) -> dict[str, Any]:
    """``count`` orders one at a time through the façade with ``Prefer: wait``; W from them."""
    spec = json.dumps(order_spec()).encode()
    headers = {**JSON, "Prefer": "wait=30"}
    async with session(sut) as s, facade_session() as f:

        async def one() -> int:
            async with f.post(f"{sut.facade}/orders", data=spec, headers=headers) as r:
                body = await r.json()
                if body.get("status") != "Confirmed":
                    sys.exit(f"an order was not Confirmed within its wait: {body}")
                return r.status

        await timed(one, 3)  # warm-up: first connections, first watches
        await asyncio.sleep(2)
        before = await write_counts(s, sut.server)
        latencies = await timed(one, count)
        # Events are posted after the status write, in the background: let them land.
        await asyncio.sleep(3)
        writes = await write_counts(s, sut.server) - before
    per_order = {kind: round(n / count, 2) for kind, n in sorted(writes.items())}
    return {
        "writes_per_order": round(sum(writes.values()) / count, 2),
        "writes_per_order_by_kind": per_order,
        "writes": writes,
        "saga_p50_ms_light": round(statistics.median(latencies), 1),
        "saga_p99_ms_light": round(percentile(latencies, 0.99), 1),
    }


# --- 5. Sustained load -------------------------------------------------------------------


class Watcher:
    """When each Order of the namespace was first seen settled, from one watch."""

    def __init__(self, prefix: str, expected: int) -> None:
        self.prefix = prefix
        self.settled: dict[str, float] = {}
        self.confirmed = 0
        self.expected = expected
        self.all_settled = asyncio.Event()

    async def run(self, s: aiohttp.ClientSession, server: str) -> None:
        async with s.get(apiserver.orders_url(server), params={"limit": "1"}) as r:
            version = (await r.json())["metadata"]["resourceVersion"]
        params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "false"}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with s.get(apiserver.orders_url(server), params=params, timeout=timeout) as r:
            async for line in r.content:
                obj = json.loads(line)["object"]
                phase = obj.get("status", {}).get("phase")
                name = obj["metadata"]["name"]
                if not name.startswith(self.prefix) or name in self.settled:
                    continue
                if phase in ("Confirmed", "Failed", "Cancelled"):
                    self.settled[name] = time.perf_counter()
                    self.confirmed += phase == "Confirmed"
                    if len(self.settled) >= self.expected:
                        self.all_settled.set()


async def offered(sut: System, rate: float, seconds: float, prefix: str) -> dict[str, float]:
    """Direct creates at ``rate`` per second for ``seconds``; completions and latencies."""
    total = int(rate * seconds)
    watcher = Watcher(f"{prefix}-", total)
    sent: dict[str, float] = {}
    async with session(sut) as s:
        watch = asyncio.create_task(watcher.run(s, sut.server))
        await asyncio.sleep(0.5)
        started = time.perf_counter()

        async def create(i: int) -> None:
            name = f"{prefix}-{i}"
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            sent[name] = time.perf_counter()
            async with s.post(
                apiserver.orders_url(sut.server), data=direct_body(name), headers=JSON
            ) as r:
                await r.read()

        await asyncio.gather(*(create(i) for i in range(total)))
        offered_until = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watcher.all_settled.wait(), max(120.0, seconds * 4))
        watch.cancel()
    latencies = [(watcher.settled[n] - t) * 1000 for n, t in sent.items() if n in watcher.settled]
    # The steady state: completions after the first quarter of the offered window, up to its end.
    window_start = started + seconds / 4
    steady = [
        t for n, t in watcher.settled.items() if n in sent and window_start <= t <= offered_until
    ]
    last = max(watcher.settled[n] for n in sent if n in watcher.settled)
    return {
        "offered_per_s": round(rate, 1),
        "orders": total,
        "settled": len(latencies),
        "steady_per_s": round(len(steady) / (offered_until - window_start), 1),
        "overall_per_s": round(len(latencies) / (last - started), 1),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
    }


# --- 6. Shards ----------------------------------------------------------------------------


def start_shards(sut: System, count: int) -> list[str]:
    """``count`` operator processes sharing ``count`` shards, once each acts on one."""
    names = []
    for i in range(count):
        name, probe, metrics = f"operator-{count}-shards-{i}", free_port(), free_port()
        sut.start(
            name,
            "korder.operator",
            f"http://127.0.0.1:{probe}/healthz",
            KORDER_OPERATOR_LEADER_ELECTION="true",
            KORDER_OPERATOR_SHARDS=str(count),
            KORDER_OPERATOR_IDENTITY=name,
            KORDER_OPERATOR_PROBE_PORT=str(probe),
            KORDER_OPERATOR_METRICS_PORT=str(metrics),
        )
        names.append(name)
    health = {n: sut.env_of(n)["KORDER_OPERATOR_PROBE_PORT"] for n in names}
    deadline = time.monotonic() + 60
    while True:
        held = {
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["shard"]
            for port in health.values()
        }
        if len(held - {None}) == count:
            return names
        if time.monotonic() > deadline:
            sys.exit(f"the {count} shards were not all taken: {held}")
        time.sleep(0.5)


async def handled_twice(sut: System, prefix: str) -> dict[str, int]:
    """Orders whose status two shards of one count wrote, or a shard outside its range.

    Each shard writes as a field manager of its own (:mod:`korder.operator.sharding`),
    so ``managedFields`` is a durable record of every shard that wrote an order. An
    order a run left unsettled is finished by the next run's shards (another count):
    that is a handover, not a second handler, so shards are compared within a count.
    """
    counts = {"orders": 0, "handled_twice": 0, "by_another_shard": 0}
    async with session(sut) as s, s.get(apiserver.orders_url(sut.server)) as r:
        items = (await r.json())["items"]
    for item in items:
        meta = item["metadata"]
        if not meta["name"].startswith(prefix):
            continue
        writers = sharding.writers(
            [f["manager"] for f in meta.get("managedFields", []) if f.get("subresource")],
            handlers.FIELD_MANAGER,
        )
        by_count = Counter(w.count for w in writers)
        counts["orders"] += 1
        counts["handled_twice"] += any(n > 1 for n in by_count.values())
        counts["by_another_shard"] += any(not w.holds(meta["uid"]) for w in writers)
    return counts


def shards(sut: System, counts: list[int], rate: float, seconds: float) -> dict[str, Any]:
    """The sustained load of step 5 again, with 1, 2, 4... operator shards."""
    sut.stop("operator")
    figures: dict[str, Any] = {}
    for count in counts:
        names = start_shards(sut, count)
        cpu_before = cpu_by_process(sut)
        load = asyncio.run(offered(sut, rate, seconds, f"shards-{count}"))
        cpu = cpu_by_process(sut)
        # CPU seconds by process over the load: where the cores went.
        used = {name: round(cpu[name] - cpu_before.get(name, 0.0), 1) for name in cpu}
        figures[str(count)] = {**load, "cpu_s": used}
        for name in names:
            sut.stop(name)
    return figures


# --- The run and its report --------------------------------------------------------------

#: key -> (target, whether the figure must be at most (True) or at least (False) it)
TARGETS: dict[str, tuple[float, bool]] = {
    "writes_per_order": (6, True),
    "facade_overhead_p50_ms": (2, True),
    "facade_throughput_ratio": (0.9, False),
    "saga_ceiling_ratio": (0.75, False),
    "saga_p50_ms_light": (60, True),
    "saga_p99_ms_half_load": (1000, True),
    "operator_rss_mb_10k": (150, True),
    "facade_rss_mb": (120, True),
    "get_latency_ratio_10k_vs_100": (1.5, True),
    "list_latency_ratio_10k_vs_100": (1.5, True),
    "operator_restart_s_10k": (30, True),
    "participant_calls_on_restart": (0, True),
    "orders_handled_twice": (0, True),
}


def table(results: dict[str, Any]) -> str:
    lines = [f"{'figure':<34}{'value':>12}{'target':>10}  ok"]
    for key, value in results.items():
        if isinstance(value, dict | list):
            continue
        target = TARGETS.get(key)
        mark = ""
        if target is not None and isinstance(value, int | float):
            limit, at_most = target
            mark = "yes" if (value <= limit if at_most else value >= limit) else "NO"
        shown = "" if target is None else f"{'<=' if target[1] else '>='}{target[0]:g}"
        value = "not measured" if value is None else value
        lines.append(f"{key:<34}{value!s:>12}{shown:>10}  {mark}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"cores": os.cpu_count(), "population": args.population}
    with korder_system() as sut:
        rates = asyncio.run(ceiling(sut, args.ceiling_seconds))
        results["write_ceiling_by_kind_per_s"] = rates
        if not args.quick:
            results.update(asyncio.run(facade_overhead(sut, args.samples, args.ceiling_seconds)))
            results["facade_rss_mb"] = rss_mb(sut.pid("facade"))
            few = asyncio.run(read_latency(sut, args.samples))
            # The ceiling's Orders carry no finalizer (the operator would add it, one patch
            # each, as for any Order applied without): the population is the façade's kind.
            asyncio.run(delete_all(sut, CEILING_NAMESPACE))
            results["population"] = asyncio.run(populate(sut, args.population))
            many = asyncio.run(read_latency(sut, args.samples))
            results["get_p50_ms_100"], results["get_p50_ms_10k"] = (
                few["get_p50_ms"],
                many["get_p50_ms"],
            )
            results["list_p50_ms_100"], results["list_p50_ms_10k"] = (
                few["list_p50_ms"],
                many["list_p50_ms"],
            )
            results["get_latency_ratio_10k_vs_100"] = round(
                many["get_p50_ms"] / few["get_p50_ms"], 2
            )
            results["list_latency_ratio_10k_vs_100"] = round(
                many["list_p50_ms"] / few["list_p50_ms"], 2
            )
            results["facade_rss_mb"] = max(results["facade_rss_mb"], rss_mb(sut.pid("facade")))
            results.update(asyncio.run(restart(sut)))
            results["operator_restart_s_10k"] = results.pop("operator_restart_s")
        else:
            # The ceiling's Orders would be sagas for the operator: they go first.
            asyncio.run(delete_all(sut, CEILING_NAMESPACE))
            sut.start_operator()
        w = asyncio.run(light(sut, args.light))
        results.update({k: v for k, v in w.items() if k != "writes"})
        per_order_ceiling = orders_ceiling(rates, w["writes"], args.light)
        results["write_ceiling_per_s"] = round(per_order_ceiling * w["writes_per_order"], 1)
        results["orders_ceiling_per_s"] = round(per_order_ceiling, 1)
        if not args.quick:
            # Offered above what the system can take, so the rate it settles at is its capacity.
            cpu_before = cpu_by_process(sut)
            full = asyncio.run(offered(sut, args.offered_rate, args.seconds, "full"))
            cpu = cpu_by_process(sut)
            # Where the two cores went: CPU ms per settled order, by process.
            results["cpu_ms_per_order"] = {
                name: round((cpu[name] - cpu_before.get(name, 0.0)) * 1000 / full["settled"], 1)
                for name in cpu
            }
            results["sustained"] = full
            # Created faster than they settle: settled ÷ (first create to last settled).
            results["saga_throughput_per_s"] = full["overall_per_s"]
            results["saga_ceiling_ratio"] = round(full["overall_per_s"] / per_order_ceiling, 3)
            results["facade_rss_mb"] = max(results["facade_rss_mb"], rss_mb(sut.pid("facade")))
            half = asyncio.run(offered(sut, full["overall_per_s"] / 2, args.seconds, "half"))
            results["half_load"] = half
            results["saga_p99_ms_half_load"] = half["p99_ms"]
            results["operator_rss_mb_under_load"] = rss_mb(sut.pid("operator"))
        # With --quick only when asked for: --shards 1 2 4.
        counts = args.shards if args.shards is not None else [] if args.quick else [1, 2, 4]
        if counts:
            results["shards_sustained"] = shards(sut, counts, args.offered_rate, args.seconds)
            results["shards"] = {
                n: figure["overall_per_s"] for n, figure in results["shards_sustained"].items()
            }
            twice = asyncio.run(handled_twice(sut, "shards-"))
            results["shards_checked"] = twice
            results["orders_handled_twice"] = twice["handled_twice"] + twice["by_another_shard"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.suite")
    parser.add_argument("--population", type=int, default=10_000, help="settled Orders for step 3")
    parser.add_argument("--light", type=int, default=20, help="orders one at a time (W, light p50)")
    parser.add_argument("--samples", type=int, default=200, help="requests per latency figure")
    parser.add_argument("--ceiling-seconds", type=float, default=4.0)
    parser.add_argument("--offered-rate", type=float, default=60.0, help="orders/s offered")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of an offered load")
    parser.add_argument("--quick", action="store_true", help="only the ceiling, W and light load")
    parser.add_argument(
        "--shards",
        type=int,
        nargs="*",
        default=None,
        help="operator shard counts to run the sustained load with again "
        "(default 1 2 4; with --quick none; --shards alone: none)",
    )
    parser.add_argument("--out", type=Path, default=apiserver.RESULTS / "results.json")
    args = parser.parse_args()
    results = run(args)
    print(table(results))
    print(
        "writes per order: "
        + ", ".join(f"{k} {v}" for k, v in results["writes_per_order_by_kind"].items())
    )
    if results.get("shards"):
        print(
            "saga throughput by operator shards: "
            + ", ".join(f"{n}: {v}/s" for n, v in results["shards"].items())
        )
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
