"""The plugin's connection to the cluster: the user's kubeconfig, context and namespace.

Called by :mod:`.main` for every command. kubectl hands a plugin the environment
(``KUBECONFIG``) but none of its own flags, so the plugin takes ``--kubeconfig``,
``--context`` and ``-n`` itself, with kubectl's defaults: the context's namespace,
else ``default``. Actions go through :func:`act`, which asks the domain what the
action sets and whether the order allows it (:func:`korder.domain.actions.request`,
:func:`korder.domain.rules.refusal`), exactly as the façade's routes do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lightkube import AsyncClient, KubeConfig
from lightkube.config.kubeconfig import SingleConfig
from lightkube.core.exceptions import ConfigError
from lightkube.models.authentication_v1 import SelfSubjectReviewStatus
from lightkube.resources.authentication_v1 import SelfSubjectReview

from korder.domain import actions, rules
from korder.domain.actions import Action
from korder.domain.order import Carrier, Order
from korder.kube import orders

#: The plugin's writes say who made them in the Order's managedFields.
FIELD_MANAGER = "kubectl-korder"
#: How often an action re-reads and tries again when the order changed under it.
ATTEMPTS = 8


class Trouble(Exception):
    """A failure for the user: printed as ``error: <message>``, exit status 1."""


@dataclass(frozen=True)
class Target:
    """Where the user points the plugin."""

    kubeconfig: Path | None = None
    context: str | None = None
    namespace: str | None = None


@dataclass
class Session:
    client: AsyncClient
    namespace: str
    config: SingleConfig

    async def close(self) -> None:
        await self.client.close()


def connect(target: Target) -> Session:
    """A client for the user's cluster, as kubectl would pick it."""
    try:
        config = _load(target.kubeconfig).get(context_name=target.context)
    except ConfigError as exc:
        raise Trouble(f"kubeconfig: {exc}") from exc
    if config is None:
        raise Trouble("kubeconfig: no current context; pass --context")
    namespace = target.namespace or config.namespace
    client = AsyncClient(config=config, namespace=namespace, field_manager=FIELD_MANAGER)
    return Session(client, namespace, config)


def _load(path: Path | None) -> KubeConfig:
    if path is not None:
        return KubeConfig.from_file(path)
    # kubectl merges every file of KUBECONFIG; the first one holding a current
    # context is what nearly every setup means, and what is read here.
    for name in os.environ.get("KUBECONFIG", "").split(os.pathsep):
        if name and Path(name).expanduser().exists():
            return KubeConfig.from_file(Path(name).expanduser())
    default = Path("~/.kube/config").expanduser()
    if default.exists():
        return KubeConfig.from_file(default)
    raise Trouble("no kubeconfig: set KUBECONFIG or pass --kubeconfig")


async def whoami(session: Session) -> str:
    """The user as the API server authenticated them (SelfSubjectReview); else the
    kubeconfig's user name. Recorded as who asked for a retry."""
    try:
        with orders.translated():
            review = await session.client.create(SelfSubjectReview())
    except orders.KubeError:
        return session.config.context.user or "unknown"
    status = review.status or SelfSubjectReviewStatus()
    info = status.userInfo
    return (info.username if info else None) or session.config.context.user or "unknown"


async def act(
    session: Session,
    name: str,
    action: Action,
    *,
    carrier: Carrier | None = None,
    by: str | None = None,
) -> Order:
    """Ask for ``action`` on the order ``name``: the spec field the façade's route sets.

    Raises :class:`Trouble` with the domain's reason when the order does not allow it.
    """
    for _ in range(ATTEMPTS):
        order = await orders.get(session.client, name, namespace=session.namespace)
        refused = rules.refusal(action, order, carrier)
        if refused:
            raise Trouble(f"cannot {action} order {name}: {refused}")
        spec = actions.request(action, order, carrier=carrier, by=by, now=datetime.now(UTC))
        try:
            return await orders.update(session.client, order, spec, {})
        except orders.Conflict:
            continue  # the operator (or someone) wrote in between: decide again
    raise Trouble(f"order {name} kept changing while the plugin tried to write it; try again")
