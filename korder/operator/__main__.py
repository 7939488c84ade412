"""``python -m korder.operator``: run the operator against the cluster in KUBECONFIG.

Watches Orders in every namespace. Several replicas may run: each waits for the
Lease (:mod:`.leadership`) and only the holder runs Kopf; one that loses the Lease
exits at once, so it has stopped acting before another may start, and its pod
restarts as a replica that waits. ``KORDER_OPERATOR_LEADER_ELECTION=false`` runs
Kopf at once, alone.

The liveness endpoint (``/healthz``) and the Prometheus endpoint are served from
the start, by every replica, waiting or leading: a waiting replica is alive too.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass

import kopf
import prometheus_client
from aiohttp import web

from korder.kube import orders
from korder.operator import handlers, leadership
from korder.settings import Settings, get_settings

logger = logging.getLogger("korder.operator")

#: The exit status of a replica that lost the Lease: not an error of its own.
LOST_LEADERSHIP = 3


@dataclass
class Role:
    """Whether this replica acts now: for the probe's answer and the metric."""

    leading: bool = False

    def lead(self) -> None:
        self.leading = True
        leadership.LEADER.set(1)


def main() -> None:
    settings = get_settings()
    kopf.configure(
        debug=settings.log_level == "DEBUG",
        log_format=kopf.LogFormat.JSON,
        log_refkey="object",
    )
    if settings.log_level != "DEBUG":
        # httpx logs every request at INFO: the status writes and participant calls
        # would drown the transitions, which are logged on their own.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        # Kopf logs two lines at INFO for every handled event; KORDER_LOG_LEVEL says
        # whether they are wanted (kopf.configure sets INFO whatever it is).
        logging.getLogger("kopf").setLevel(settings.log_level)
    asyncio.run(_run(settings))


async def _run(settings: Settings) -> None:
    role = Role()
    leadership.LEADER.set(0)
    probes = await _serve_probes(settings, role)
    if settings.operator_metrics_port:
        prometheus_client.start_http_server(
            settings.operator_metrics_port, addr=settings.operator_probe_host
        )
    try:
        if not settings.operator_leader_election:
            role.lead()
            await _kopf()
            return
        await _lead(settings, role)
    finally:
        await probes.cleanup()


async def _lead(settings: Settings, role: Role) -> None:
    client = orders.make_client(settings.operator_lease_namespace, handlers.FIELD_MANAGER)
    elector = leadership.Elector(
        client,
        namespace=settings.operator_lease_namespace,
        name=settings.operator_lease_name,
        identity=settings.operator_identity,
        lease_seconds=settings.operator_lease_seconds,
        renew_deadline=settings.operator_renew_deadline_seconds,
        retry_period=settings.operator_retry_period_seconds,
    )
    await elector.acquire()
    role.lead()
    kopf_task = asyncio.create_task(_kopf())
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


async def _kopf() -> None:
    # Standalone: the Lease, not Kopf's peering, decides who acts.
    await kopf.operator(clusterwide=True, standalone=True)


async def _serve_probes(settings: Settings, role: Role) -> web.AppRunner:
    """``GET /healthz``: 200 while the event loop answers, for every replica."""

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "leader": role.leading})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.operator_probe_host, settings.operator_probe_port)
    await site.start()
    return runner


if __name__ == "__main__":
    main()
