"""Ask the API server who a bearer token belongs to, and what that caller may do.

Called by the façade's access layer (:mod:`korder.api.access`), which caches the
answers. Two cluster-scoped, create-only APIs do it, the ones an aggregated API
server or kube-rbac-proxy use (the built-in ``system:auth-delegator`` ClusterRole
grants exactly them):

- a ``TokenReview`` says whether the API server accepts a token, and whose it is:
  ServiceAccount tokens, OIDC tokens, anything its authenticators take;
- a ``SubjectAccessReview`` says whether RBAC (or whatever authorizer the cluster
  runs) lets that identity do a verb on a resource in a namespace.

Both answers come back in the created object's status; nothing is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lightkube import AsyncClient
from lightkube.models.authentication_v1 import TokenReviewSpec
from lightkube.models.authorization_v1 import ResourceAttributes, SubjectAccessReviewSpec
from lightkube.resources.authentication_v1 import TokenReview
from lightkube.resources.authorization_v1 import SubjectAccessReview

from korder import constants
from korder.kube import orders


@dataclass(frozen=True)
class Identity:
    """A caller as the API server knows it (a TokenReview's ``status.user``)."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    #: Extra attributes of the authenticator (a ServiceAccount token's pod, for one),
    #: which an authorizer may look at, so they go into each access review.
    extra: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())


@dataclass(frozen=True)
class Verdict:
    """What the authorizer said: allowed or not, and its reason, if it gave one."""

    allowed: bool
    reason: str = ""


async def review_token(client: AsyncClient, token: str) -> Identity | None:
    """The identity ``token`` belongs to, or None when the API server does not accept it.

    Raises :class:`korder.kube.orders.Unavailable` (``Refused`` when our own
    ServiceAccount may not create TokenReviews) when the API server cannot answer.
    """
    review = TokenReview(spec=TokenReviewSpec(token=token))
    with orders.translated():
        answered = await client.create(review)
    status = answered.status
    if status is None or not status.authenticated or status.user is None:
        return None
    user = status.user
    if not user.username:
        return None
    return Identity(
        username=user.username,
        uid=user.uid or "",
        groups=tuple(user.groups or ()),
        extra=_extra(user.extra or {}),
    )


def _extra(raw: Mapping[str, object]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    pairs = []
    for key, values in sorted(raw.items()):
        listed = values if isinstance(values, list) else [values]
        pairs.append((str(key), tuple(str(v) for v in listed)))
    return tuple(pairs)


async def review_access(
    client: AsyncClient,
    identity: Identity,
    *,
    verb: str,
    namespace: str | None,
    resource: str = constants.PLURAL,
    group: str = constants.GROUP,
) -> Verdict:
    """Whether ``identity`` may ``verb`` ``resource`` in ``namespace`` (None: cluster-wide)."""
    review = SubjectAccessReview(
        spec=SubjectAccessReviewSpec(
            user=identity.username,
            uid=identity.uid or None,
            groups=list(identity.groups) or None,
            extra={k: list(v) for k, v in identity.extra} or None,
            resourceAttributes=ResourceAttributes(
                group=group, resource=resource, verb=verb, namespace=namespace or None
            ),
        )
    )
    with orders.translated():
        answered = await client.create(review)
    status = answered.status
    if status is None:
        return Verdict(False, "the authorizer gave no answer")
    return Verdict(bool(status.allowed), status.reason or status.evaluationError or "")
