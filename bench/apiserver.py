"""``make bench-apiserver``: the local control plane's write ceiling on this machine.

Every performance goal of korder is bounded by how fast the API server can write
Orders, status patches and Events. This measures, against a fresh local control
plane (etcd with fsync, as in production; ``--no-fsync`` for the test setting):

- creates of a ~1 KB Order (POST .../orders),
- status-subresource merge patches that really change the object (PATCH .../status),
- Event posts (POST /api/v1/.../events),

at concurrency 1, 8 and 32, each for a bounded time and count, and reports
throughput, p50 and p99 latency, and how much CPU the load generator itself used
(one asyncio process, aiohttp, bodies serialised up front: it should cost the API
server as little CPU as it can on a 2-core machine).

Results print as a table and are written to ``bench-results/apiserver.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import ssl
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import yaml

from korder import constants
from korder.localcluster import binaries, system
from korder.localcluster.controlplane import ControlPlane

NAMESPACE = "bench"
RESULTS = Path("bench-results")


@dataclass
class Result:
    operation: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    loadgen_cpu_percent: float


def order_body(name: str) -> bytes:
    """A ~1 KB Order, the size of a typical three-line order with addresses."""
    address = {
        "street": "221B Baker Street",
        "city": "London",
        "postalCode": "NW1 6XE",
        "country": "GB",
    }
    body = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": name, "labels": {constants.LABEL_CUSTOMER: "cust-bench"}},
        "spec": {
            "customer": {
                "id": "cust-bench",
                "name": "Bench Customer",
                "email": "bench@example.com",
            },
            "items": [
                {
                    "productId": f"PROD-00{i}",
                    "name": f"Product number {i}",
                    "quantity": i,
                    "price": f"{10 * i}.99",
                }
                for i in range(1, 4)
            ],
            "shippingAddress": address,
            "billingAddress": address,
            "paymentMethod": "credit_card",
            "notes": "Leave the parcel with the neighbour if nobody answers the door, please.",
        },
    }
    return json.dumps(body).encode()


def ssl_context(kubeconfig: Path, folder: Path) -> tuple[str, ssl.SSLContext]:
    """The server URL and a TLS context with the admin client certificate."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    paths = {}
    for key in ("certificate-authority-data", "client-certificate-data", "client-key-data"):
        path = folder / key
        path.write_bytes(
            base64.b64decode(cluster[key] if key.startswith("certificate-authority") else user[key])
        )
        paths[key] = str(path)
    context = ssl.create_default_context(cafile=paths["certificate-authority-data"])
    context.load_cert_chain(paths["client-certificate-data"], paths["client-key-data"])
    return cluster["server"], context


async def run_load(
    name: str,
    concurrency: int,
    request: Callable[[int], Awaitable[int]],
    max_seconds: float,
    max_requests: int,
) -> Result:
    latencies: list[float] = []
    errors = 0
    counter = 0
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal counter, errors
        while time.perf_counter() < deadline and counter < max_requests:
            counter += 1
            start = time.perf_counter()
            status = await request(counter)
            latencies.append(time.perf_counter() - start)
            if status >= 300:
                errors += 1

    cpu_start = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu_end = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_end.ru_utime - cpu_start.ru_utime) + (cpu_end.ru_stime - cpu_start.ru_stime)
    latencies.sort()
    return Result(
        operation=name,
        concurrency=concurrency,
        requests=len(latencies),
        errors=errors,
        seconds=round(elapsed, 2),
        per_second=round(len(latencies) / elapsed, 1),
        p50_ms=round(statistics.median(latencies) * 1000, 2),
        p99_ms=round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
        loadgen_cpu_percent=round(100 * cpu / elapsed, 1),
    )


def orders_url(server: str, namespace: str = NAMESPACE) -> str:
    return f"{server}/apis/{constants.GROUP}/{constants.VERSION}/namespaces/{namespace}/orders"


async def create_namespace(
    session: aiohttp.ClientSession, server: str, namespace: str = NAMESPACE
) -> None:
    """Create the benchmark's namespace (on a fresh control plane; one that exists stays)."""
    async with session.post(
        f"{server}/api/v1/namespaces",
        headers={"Content-Type": "application/json"},
        data=json.dumps({"metadata": {"name": namespace}}),
    ) as r:
        await r.read()


async def measure(
    server: str,
    context: ssl.SSLContext,
    seconds: float,
    max_requests: int,
    *,
    namespace: str = NAMESPACE,
    concurrencies: Sequence[int] = (1, 8, 32),
) -> list[Result]:
    """Each write an order costs, at each concurrency, on Orders and Events of ``namespace``."""
    base = orders_url(server, namespace)
    events = f"{server}/api/v1/namespaces/{namespace}/events"
    json_header = {"Content-Type": "application/json"}
    merge_header = {"Content-Type": "application/merge-patch+json"}
    connector = aiohttp.TCPConnector(ssl=context, limit=64)
    results: list[Result] = []
    async with aiohttp.ClientSession(connector=connector) as session:
        await create_namespace(session, server, namespace)
        # Warm up: the first write of a new CRD's type builds its storage and caches.
        for i in range(20):
            async with session.post(base, data=order_body(f"warmup-{i}"), headers=json_header) as r:
                await r.read()
        for concurrency in concurrencies:
            prefix = f"c{concurrency}-"
            bodies = [order_body(f"{prefix}{i}") for i in range(max_requests + concurrency + 1)]

            async def create(i: int, bodies: list[bytes] = bodies) -> int:
                async with session.post(base, data=bodies[i], headers=json_header) as r:
                    await r.read()
                    return r.status

            created = await run_load("create Order", concurrency, create, seconds, max_requests)
            results.append(created)
            names = [f"{prefix}{i}" for i in range(1, created.requests + 1)]

            async def patch_status(i: int, names: list[str] = names) -> int:
                name = names[i % len(names)]
                body = json.dumps({"status": {"phase": "Pending", "observedGeneration": i}})
                async with session.patch(
                    f"{base}/{name}/status", data=body, headers=merge_header
                ) as r:
                    await r.read()
                    return r.status

            results.append(
                await run_load("patch status", concurrency, patch_status, seconds, max_requests)
            )

            async def post_event(i: int, names: list[str] = names, prefix: str = prefix) -> int:
                now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                body = json.dumps(
                    {
                        "metadata": {"name": f"{prefix}ev-{i}", "namespace": namespace},
                        "involvedObject": {
                            "apiVersion": constants.API_VERSION,
                            "kind": constants.KIND,
                            "namespace": namespace,
                            "name": names[i % len(names)],
                        },
                        "reason": "InventoryReserved",
                        "message": "Reserved 3 lines.",
                        "type": "Normal",
                        "source": {"component": "korder-bench"},
                        "firstTimestamp": now,
                        "lastTimestamp": now,
                        "count": 1,
                    }
                )
                async with session.post(events, data=body, headers=json_header) as r:
                    await r.read()
                    return r.status

            results.append(
                await run_load("post Event", concurrency, post_event, seconds, max_requests)
            )
    return results


def table(results: list[Result], title: str) -> str:
    lines = [
        title,
        f"{'operation':<14}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'n':>7}{'err':>5}{'loadgen CPU':>13}",
    ]
    for r in results:
        lines.append(
            f"{r.operation:<14}{r.concurrency:>5}{r.per_second:>9}{r.p50_ms:>9}"
            f"{r.p99_ms:>9}{r.requests:>7}{r.errors:>5}{r.loadgen_cpu_percent:>12}%"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def fresh_cluster(name: str, *, fsync: bool = False) -> Iterator[tuple[Path, system.Cluster]]:
    """A new local control plane with the CRD, in a temporary folder, for one benchmark.

    Yields the folder (for logs and certificates) and the cluster; all of it goes at the end.
    """
    bins = binaries.resolve()
    with tempfile.TemporaryDirectory(prefix=f"korder-bench-{name}-") as tmp:
        state = Path(tmp)
        kubeconfig = state / "kubeconfig"
        with ControlPlane(bins, state_dir=state / "cp", kubeconfig=kubeconfig, ephemeral=not fsync):
            cluster = system.Cluster(kubeconfig, bins.kubectl)
            cluster.install_crds()
            yield state, cluster


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.apiserver")
    parser.add_argument("--seconds", type=float, default=6.0, help="time per measurement")
    parser.add_argument("--max-requests", type=int, default=5000, help="requests per measurement")
    parser.add_argument("--no-fsync", action="store_true", help="etcd --unsafe-no-fsync")
    args = parser.parse_args()
    with fresh_cluster("apiserver", fsync=not args.no_fsync) as (state, cluster):
        server, context = ssl_context(cluster.kubeconfig, state)
        results = asyncio.run(measure(server, context, args.seconds, args.max_requests))
    fsync = "off (--unsafe-no-fsync)" if args.no_fsync else "on"
    print(
        table(results, f"kube-apiserver write ceiling, {os.cpu_count()} cores, etcd fsync {fsync}")
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("apiserver-nofsync.json" if args.no_fsync else "apiserver.json")
    out.write_text(
        json.dumps({"fsync": not args.no_fsync, "results": [asdict(r) for r in results]}, indent=2)
    )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
