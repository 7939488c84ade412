"""``python -m korder.operator``: run the operator against the cluster in KUBECONFIG.

Watches Orders in every namespace. Several replicas may run: each waits for the
Lease (:mod:`.leadership`) and only the holder runs Kopf; one that loses the Lease
exits at once, so it has stopped acting before another may start, and its pod
restarts as a replica that waits. ``KORDER_OPERATOR_LEADER_ELECTION=false`` runs
Kopf at once, alone. With ``KORDER_OPERATOR_SHARDS=N`` there is a Lease per shard
(:mod:`.sharding`): a replica waits for any of them and acts on that shard's range.

The liveness (``/healthz``) and readiness (``/readyz``) endpoints and the Prometheus
endpoint are served from the start, by every replica, waiting or leading: a waiting
replica is alive too, and ready while it reaches the API server.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field

import kopf
import prometheus_client
from aiohttp import web

from korder import constants, logs, tracing
from korder.kube import orders
from korder.operator import breakers, handlers, leadership, sharding
from korder.settings import Settings, get_settings

logger = logging.getLogger("korder.operator")

#: The exit status of a replica that lost the Lease: not an error of its own.
LOST_LEADERSHIP = 3


@dataclass
class Role:
    """Whether this replica acts now: for the probe's answer and the metric."""

    leading: bool = False
    shard: sharding.Shard | None = None
    #: The Leases this replica looks at (none without leader election).
    electors: list[leadership.Elector] = field(default_factory=list)

    def ready(self) -> bool:
        """Ready when it acts alone, or while the API server answers its looks at a Lease."""
        if not self.electors:
            return self.leading
        return any(e.answering() for e in self.electors)

    def lead(self, shard: sharding.Shard) -> None:
        self.leading, self.shard = True, shard
        leadership.LEADER.set(1)
        SHARD.set(shard.index)
        if shard.sharded:
            # Every line says which shard acted, Kopf's own per-order lines included:
            # the evidence that each order is handled by the shard that owns it.
            for log_handler in logging.getLogger().handlers:
                log_handler.addFilter(_ShardField(shard.label))


SHARD = prometheus_client.Gauge(
    "korder_operator_shard",
    "The index of the shard this replica acts on (0 with one shard), -1 while it waits.",
)


class _ShardField(logging.Filter):
    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def filter(self, record: logging.LogRecord) -> bool:
        record.shard = self.label
        return True


def main() -> None:
    settings = get_settings()
    # korder's shape rather than kopf.configure's: Kopf's per-object records come out
    # with the order's namespace, name and uid as our fields (korder.logs).
    logs.configure(settings.log_level, component="operator", fmt=settings.log_format)
    if settings.log_level != "DEBUG":
        # As kopf.configure does: asyncio's own chatter only when debugging.
        asyncio_logger = logging.getLogger("asyncio")
        asyncio_logger.propagate = False
        asyncio_logger.handlers[:] = [logging.NullHandler()]
        # httpx logs every request at INFO: the status writes and participant calls
        # would drown the transitions, which are logged on their own.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        # lightkube's transport likewise: the Lease renewals alone are a line a second.
        logging.getLogger("httpx2").setLevel(logging.WARNING)
        # Kopf logs two lines at INFO for every handled event; KORDER_LOG_LEVEL says
        # whether they are wanted.
        logging.getLogger("kopf").setLevel(settings.log_level)
    tracing.configure("operator")  # off unless OTEL_* ask for it
    asyncio.run(_run(settings))


async def _run(settings: Settings) -> None:
    role = Role()
    leadership.LEADER.set(0)
    SHARD.set(-1)
    probes = await _serve_probes(settings, role)
    if settings.operator_metrics_port:
        prometheus_client.start_http_server(
            settings.operator_metrics_port, addr=settings.operator_probe_host
        )
    try:
        if not settings.operator_leader_election:
            alone = sharding.Shard(0, 1)
            role.lead(alone)
            await _kopf(alone)
            return
        await _lead(settings, role)
    finally:
        await probes.cleanup()


async def _lead(settings: Settings, role: Role) -> None:
    client = orders.make_client(settings.operator_lease_namespace, handlers.FIELD_MANAGER)
    board = breakers.Board()
    electors = {
        shard: leadership.Elector(
            client,
            namespace=settings.operator_lease_namespace,
            name=shard.lease_name(settings.operator_lease_name),
            identity=settings.operator_identity,
            lease_seconds=settings.operator_lease_seconds,
            renew_deadline=settings.operator_renew_deadline_seconds,
            retry_period=settings.operator_retry_period_seconds,
            annotations=board.annotations,
        )
        for shard in sharding.shards(settings.operator_shards)
    }
    role.electors = list(electors.values())
    elector = await leadership.acquire_any(role.electors, settings.operator_retry_period_seconds)
    shard = next(s for s, e in electors.items() if e is elector)
    role.lead(shard)
    board.on_change(elector.publish)
    kopf_task = asyncio.create_task(_kopf(shard, board))
    keep_task = asyncio.create_task(elector.keep())
    done, _ = await asyncio.wait({kopf_task, keep_task}, return_when=asyncio.FIRST_COMPLETED)
    if keep_task in done:
        # Not one more write: another replica may start once the Lease runs out,
        # and Kopf's own shutdown takes longer than the margin before that.
        logger.error("stopping at once: this replica no longer holds the Lease")
        for log_handler in logging.getLogger().handlers:
            log_handler.flush()
        os._exit(LOST_LEADERSHIP)
    keep_task.cancel()
    await elector.release()  # a clean stop: the next replica need not wait
    await client.close()
    kopf_task.result()


async def _kopf(shard: sharding.Shard, board: breakers.Board | None = None) -> None:
    kopf_settings = kopf.OperatorSettings()
    if shard.sharded:
        # Passed by Kopf to every list and watch of Orders: the API server sends this
        # replica only the Orders of its range.
        kopf_settings.watching.shard_selectors[constants.GROUP, constants.PLURAL] = shard.selector()
    # Standalone: the Lease, not Kopf's peering, decides who acts.
    await kopf.operator(
        clusterwide=True,
        standalone=True,
        settings=kopf_settings,
        memo=kopf.Memo(
            shard=shard,
            field_manager=shard.field_manager(handlers.FIELD_MANAGER),
            breakers=board,
        ),
    )


async def _serve_probes(settings: Settings, role: Role) -> web.AppRunner:
    """``GET /healthz`` (liveness): 200 while the event loop answers, for every replica;
    ``GET /readyz`` (readiness): 200 while the replica reaches the API server (see
    :meth:`Role.ready`), so a rollout waits for a new replica that could take over."""

    async def healthz(_request: web.Request) -> web.Response:
        shard = role.shard.label if role.shard else None
        return web.json_response({"status": "ok", "leader": role.leading, "shard": shard})

    async def readyz(_request: web.Request) -> web.Response:
        if role.ready():
            return web.json_response({"status": "ready", "leader": role.leading})
        why = (
            "the API server has not answered a look at the Lease for a Lease's duration"
            if role.electors
            else "the operator has not started yet"
        )
        return web.json_response({"status": "not ready", "reason": why}, status=503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.operator_probe_host, settings.operator_probe_port)
    await site.start()
    return runner


if __name__ == "__main__":
    main()
