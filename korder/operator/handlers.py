"""Kopf handlers for Orders: thin wiring from Kopf's events to the saga.

Each handler hands the Order to :func:`korder.operator.reconciling.reconcile`
and turns its answer into Kopf's terms (a retry after a delay). Kopf's own
settings are chosen in :func:`configure`, each with its reason; the clients the
handlers share (the Kubernetes API, the participants) are built there too and
kept in Kopf's memo.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import random
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, cast

import kopf
from lightkube import AsyncClient

from korder import constants, logs, tracing
from korder.domain import saga, steps
from korder.domain.order import MESSAGE_LENGTH, Order, clip
from korder.kube import orders, status_writing
from korder.operator import bookkeeping, breakers, reconciling, sharding
from korder.participant_clients import calls
from korder.settings import get_settings

#: The operator's name: the field manager of its writes, the reporting controller of its Events.
FIELD_MANAGER = "korder-operator"

_TRACER = tracing.tracer(__name__)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    ours = get_settings()
    # Kopf's bookkeeping costs no write on the way of a saga (the module says how):
    # what was handled is remembered in memory, and a handler's progress is stored
    # only for a retry, in annotations under our prefix (the structural schema
    # prunes unknown status fields, so status.kopf would be lost).
    settings.persistence.progress_storage = bookkeeping.RetriesOnlyProgress(
        prefix=constants.KOPF_ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = bookkeeping.GenerationDiffBase()
    # `kubectl delete order` must run the compensations first: our finalizer name.
    settings.persistence.finalizer = constants.FINALIZER
    # Log lines are for logs; Events are the order's transitions, posted on purpose
    # with kopf.event (which these two settings do not silence).
    settings.posting.loggers = False
    settings.posting.level = logging.CRITICAL
    # Our Events come from korder's operator, not from "kopf": `From: korder-operator`
    # in `kubectl describe`, and the replica that posted each one.
    settings.posting.reporting_component = FIELD_MANAGER
    settings.posting.reporting_instance = ours.operator_identity
    settings.posting.event_name_prefix = f"{FIELD_MANAGER}-"
    # A burst of orders must not become a burst of unbounded concurrent calls to
    # the API server and the participants: at most this many orders at once. An
    # order sleeping out a retry delay keeps its worker, so the limit is sized
    # well above the orders expected in flight, not at the participants' capacity.
    settings.queueing.worker_limit = ours.operator_worker_limit
    # A worker whose Order has nothing more to do gives its place up at once, not
    # after Kopf's default 5 s of idling: with the limit above, 10,000 settled Orders
    # listed at a restart would otherwise take 10,000 / 200 x 5 s = 250 s to go
    # through, and a new order would queue behind them. A new event of the Order
    # starts a new worker (an asyncio task, cheap).
    settings.queueing.idle_timeout = 0.1
    # A watch that goes silent (a dropped connection no one closed, Kopf issues
    # #585 and #957) must not freeze the operator: the server ends each watch and
    # the client gives up soon after, then Kopf re-lists and watches again. What
    # bounds a silent watch is Kopf's inactivity_timeout (70 s: the API server sends
    # a bookmark every 60 s), kept at its default: the chaos run's dropping cut
    # measures it (the saga resumed 70 s after the watch went silent).
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    # The first list of Orders (at start, and after a watch is lost) comes in pages: in
    # one piece, 10,000 settled Orders were held at once as raw JSON and parsed dicts, and
    # the process kept that peak (RSS 282 MB, peak 392 MB); in pages of 500 it stays at
    # 99 MB (peak 103 MB), for 20 list requests instead of one (make bench, step 3).
    settings.watching.chunk_size = 500
    # Any single API request (a status write, an event post) is bounded too.
    settings.networking.request_timeout = 60
    # Every handler here is async: participant calls wait on the event loop and
    # never queue behind Kopf's thread pool (six threads), which sync handlers use.

    # A shard writes as a field manager of its own (the entry point names it), so an
    # Order's managedFields say which shards wrote its status.
    kube = orders.make_client("default", memo.get("field_manager", FIELD_MANAGER))
    memo.kube = kube
    memo.reconciling = reconciling.Context(
        read=functools.partial(_read, kube),
        write=functools.partial(status_writing.write, kube),
        participants=calls.Participants.from_settings(ours),
        policy=saga.Policy(deadline=timedelta(seconds=ours.saga_deadline_seconds)),
        retry_base=ours.retry_base_seconds,
        retry_cap=ours.retry_cap_seconds,
        attempts_per_call=ours.participant_attempts,
        rng=random.Random(ours.chaos_seed),  # noqa: S311 - jitter, not secrets
    )
    board: breakers.Board | None = memo.get("breakers")
    if board is not None:  # published on the Lease for `kubectl korder top`
        board.watch(memo.reconciling.participants)


def in_cluster_server(info: kopf.ConnectionInfo, env: Mapping[str, str]) -> kopf.ConnectionInfo:
    """``info`` pointed at the API server the way client-go finds it in a pod.

    Kopf's own service-account login names the server ``kubernetes.default.svc``, which
    only a cluster DNS resolves; the kubelet gives every container the ``kubernetes``
    Service's address in ``KUBERNETES_SERVICE_HOST`` and ``_PORT``, DNS or not (the
    local cluster of ``make cluster-up`` has none). The serving certificate names that
    address as well as the name.
    """
    host = env.get("KUBERNETES_SERVICE_HOST")
    if not host:
        return info
    port = env.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return dataclasses.replace(info, server=f"https://{host}:{port}")


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Kopf's two built-in logins, in Kopf's order: the pod's service account, else
    the kubeconfig (a handler of ours replaces Kopf's defaults, so both are named)."""
    info = kopf.login_with_service_account(**kwargs)
    if info is not None:
        return in_cluster_server(info, os.environ)
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    context: reconciling.Context = memo.reconciling
    await context.participants.aclose()
    await memo.kube.close()


async def _read(kube: AsyncClient, namespace: str, name: str) -> Order:
    return await orders.get(kube, name, namespace=namespace)


def _announce(order: Order, note: steps.Note) -> None:
    kind = "Warning" if note.warning else "Normal"
    # kopf.event only reads apiVersion, kind and metadata to build the reference.
    meta = order.metadata
    reference = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": meta.name, "namespace": meta.namespace, "uid": meta.uid},
    }
    kopf.event(
        kopf.Body(cast(kopf.RawBody, reference)),
        type=kind,
        reason=note.reason,
        message=clip(note.message, MESSAGE_LENGTH),
    )


def in_this_shard(meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> bool:
    """Whether the Order is in the range of the shard this replica acts on.

    A guard besides the API server's shard selector, which a server without the
    ShardedListAndWatch feature gate ignores: an Order of another range is then
    sent here too, and must not even count as handled (a deletion handler that
    "succeeded" would let Kopf remove the finalizer before the owner compensates).
    """
    shard: sharding.Shard | None = memo.get("shard")
    return shard is None or not shard.sharded or shard.holds(meta.uid or "")


@kopf.on.create(constants.GROUP, constants.VERSION, constants.PLURAL, when=in_this_shard)
@kopf.on.update(constants.GROUP, constants.VERSION, constants.PLURAL, when=in_this_shard)
@kopf.on.resume(constants.GROUP, constants.VERSION, constants.PLURAL, when=in_this_shard)
async def drive(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    """Any change of an Order, or the operator starting: move its saga on."""
    await _reconcile(body, memo, retry)


@kopf.on.delete(constants.GROUP, constants.VERSION, constants.PLURAL, when=in_this_shard)
async def finalize(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    """`kubectl delete order`: compensate what the saga did, then let the object go."""
    await _reconcile(body, memo, retry)


async def _reconcile(body: kopf.Body, memo: kopf.Memo, retry: int) -> None:
    order = orders.to_order(body)
    meta = order.metadata
    # Every line of this handling names the order, the participant calls' included;
    # one span per run of a handler, in the trace of the request that created the
    # Order (its annotation); Kopf's retries and restarts are runs, and spans, of their own.
    with (
        logs.scope(namespace=meta.namespace, order=meta.name, uid=meta.uid),
        tracing.span(
            _TRACER,
            f"reconcile {constants.KIND}",
            context=tracing.parent_from(meta.annotations.get(constants.ANNOTATION_TRACE_CONTEXT)),
            attributes={
                "k8s.namespace.name": meta.namespace or "",
                "korder.order.name": meta.name,
                "korder.order.uid": meta.uid,
                "korder.order.phase": str(order.status.phase or ""),
                "korder.kopf.retry": retry,
                "korder.order.deleting": order.deleting,
            },
        ) as span,
    ):
        delay = await reconciling.reconcile(
            memo.reconciling, order, retry=retry, announce=_announce
        )
        if delay is not None:
            span.set_attribute("korder.retry_delay_seconds", delay)
    if delay is not None:
        # Kopf keeps the handler pending and calls it again after the delay, or
        # sooner if the Order changes (a cancellation must not wait out a backoff).
        raise kopf.TemporaryError("the saga waits for a retry", delay=delay)
