"""Who is calling the façade, and whether Kubernetes lets them do what they ask.

Called by the routes' dependencies (:mod:`korder.api.deps`) before a route touches
an order. There is nothing of our own to configure: identities and permissions are
the cluster's.

- **Authentication.** A caller sends ``Authorization: Bearer <token>``: a
  ServiceAccount token (``kubectl create token``), an OIDC token, anything the API
  server accepts. The façade asks the API server in a ``TokenReview``
  (:func:`korder.kube.reviews.review_token`). No token, or one it does not accept, is
  401 with ``WWW-Authenticate: Bearer`` (RFC 6750). ``KORDER_ALLOW_UNAUTHENTICATED``
  lets a request without a token through as the façade itself, for ``make run`` and
  the demos; the shipped manifests leave it off.
- **Authorisation.** Each request is one verb on ``orders.korder.dev`` in one
  namespace, as ``kubectl`` would send it (create, get, list, watch, update, patch for
  the actions, delete for cancel), and the façade asks the API server's authorizer in
  a ``SubjectAccessReview`` whether the caller may (:func:`korder.kube.reviews.review_access`).
  Denied is 403, naming the permission that is missing.

  Why a SubjectAccessReview and not the caller's own identity on the API server (their
  token, as the Kubernetes Dashboard forwards it, or impersonation): impersonation
  needs the ``impersonate`` verb on users, groups and ServiceAccounts, a right larger
  than everything the façade does, since it could impersonate an admin; forwarding the
  token makes the façade hold a bearer credential it could replay anywhere, and gives
  every caller a connection pool and a watch of their own, where the façade now shares
  one of each (``Prefer: wait``, the console's streams). A review asks the
  authorizer the very question the API server would ask, with the caller's user,
  groups and extras, so the decision is the same; the façade keeps its own narrow
  rights, and the API server's audit log records each review with the caller in it.
- **Caches.** Both answers are kept for ``KORDER_AUTH_CACHE_SECONDS`` (10 s by
  default) in bounded TTL caches (cachetools), keyed by a digest of the token (the
  token itself is never kept) and by the identity and the question. A revoked token or
  a removed RoleBinding is honoured within that time, as with the API server's own
  webhook authenticators, and a cached request costs the API server nothing.

A caller's identity goes into Idempotency-Keys' scope (:attr:`Caller.scope`, a digest,
never the name) so two callers' keys never meet, and the name goes into the access
log line, never the token.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cachetools import TTLCache
from lightkube import AsyncClient

from korder import constants
from korder.api.problems import Problem
from korder.kube import reviews
from korder.kube.reviews import Identity

log = logging.getLogger(__name__)

#: The realm in ``WWW-Authenticate``.
REALM: Final = "korder"
#: A bearer token is a token68 (RFC 6750 §2.1); bound its length, as every server does.
_TOKEN68 = r"[A-Za-z0-9\-._~+/]+=*"
_BEARER = re.compile(rf"^[Bb][Ee][Aa][Rr][Ee][Rr] +({_TOKEN68}) *$")
_TOKEN = re.compile(rf"^{_TOKEN68}$")
MAX_TOKEN: Final = 16 * 1024


@dataclass(frozen=True)
class Caller:
    """Who sent the request: an identity the API server vouched for, or nobody.

    Nobody (``identity`` None) exists only with ``KORDER_ALLOW_UNAUTHENTICATED``: the
    request acts with the façade's own rights.
    """

    identity: Identity | None

    @property
    def name(self) -> str | None:
        return self.identity.username if self.identity else None

    @property
    def scope(self) -> str:
        """What ties an Idempotency-Key to this caller: "" for nobody, else a digest.

        The UID when the authenticator gives one (a ServiceAccount's is random, so the
        digest reveals nothing), else the user name. It goes into resource names and
        annotations, which every reader of the namespace sees, so it is never the name.
        """
        if self.identity is None:
            return ""
        who = self.identity.uid or f"user:{self.identity.username}"
        return hashlib.sha256(f"korder-caller\0{who}".encode()).hexdigest()[:32]


NOBODY: Final = Caller(None)


def unauthenticated(detail: str, error: str | None) -> Problem:
    """401 with the ``WWW-Authenticate`` challenge; ``error`` as RFC 6750 §3.1 names it."""
    challenge = f'Bearer realm="{REALM}"'
    if error:
        challenge += f', error="{error}"'
    return Problem(
        401,
        "unauthenticated",
        "Authentication required",
        detail,
        {"WWW-Authenticate": challenge},
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None when there is no header.

    Raises 401 for a header that is not a bearer token.
    """
    if authorization is None:
        return None
    match = _BEARER.match(authorization)
    if not match or len(match.group(1)) > MAX_TOKEN:
        raise unauthenticated(
            "The Authorization header must be 'Bearer <token>': a Kubernetes token, such as "
            "one from `kubectl create token <service-account>`.",
            "invalid_request",
        )
    return match.group(1)


def is_token(value: str) -> bool:
    """Whether ``value`` could be a bearer token at all (one pasted into the console's
    login form, or its cookie), before the API server is asked about it."""
    return len(value) <= MAX_TOKEN and _TOKEN.match(value) is not None


def forbidden(caller: Caller, verb: str, namespace: str | None, reason: str = "") -> Problem:
    """403, naming the permission the caller lacks, as the API server words it."""
    resource = f"{constants.PLURAL}.{constants.GROUP}"
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    who = f'User "{caller.name}"' if caller.name else "This service"
    detail = f"{who} cannot {verb} resource {resource!r} {where}."
    if reason:
        detail += f" The authorizer said: {reason}"
    return Problem(
        403,
        "forbidden",
        "Forbidden",
        detail,
        missing={"verb": verb, "group": constants.GROUP, "resource": constants.PLURAL,
                 "namespace": namespace or ""},
    )  # fmt: skip


class Gate:
    """The façade's door: who the caller is (cached), and what they may do (cached)."""

    def __init__(
        self,
        kube: Callable[[], AsyncClient],
        *,
        allow_unauthenticated: bool,
        cache_seconds: float,
        cache_size: int = 10_000,
    ) -> None:
        # Looked up per review: the client is made when the app starts, after the gate.
        self.kube = kube
        self.allow_unauthenticated = allow_unauthenticated
        self._identities: TTLCache[str, Identity | None] = TTLCache(cache_size, cache_seconds)
        self._verdicts: TTLCache[tuple[Identity, str, str], reviews.Verdict] = TTLCache(
            cache_size, cache_seconds
        )

    async def caller(self, token: str | None) -> Caller:
        """The caller who holds ``token``; 401 when there is none and one is required."""
        if token is None:
            if self.allow_unauthenticated:
                return NOBODY
            raise unauthenticated(
                "This API needs 'Authorization: Bearer <token>' with a Kubernetes token, "
                "such as one from `kubectl create token <service-account>`.",
                None,
            )
        digest = hashlib.sha256(token.encode()).hexdigest()
        if digest in self._identities:
            identity = self._identities[digest]
        else:
            identity = await reviews.review_token(self.kube(), token)
            self._identities[digest] = identity
        if identity is None:
            raise unauthenticated(
                "The Kubernetes API server does not accept this token (expired, revoked or "
                "not one of this cluster's); get a new one, e.g. `kubectl create token`.",
                "invalid_token",
            )
        return Caller(identity)

    async def require(self, caller: Caller, verb: str, namespace: str | None) -> None:
        """Return when ``caller`` may ``verb`` orders in ``namespace``; 403 otherwise.

        Nobody is the façade itself: what it may do, the API server decides on its writes.
        """
        if caller.identity is None:
            return
        question = (caller.identity, verb, namespace or "")
        verdict = self._verdicts.get(question)
        if verdict is None:
            verdict = await reviews.review_access(
                self.kube(), caller.identity, verb=verb, namespace=namespace
            )
            self._verdicts[question] = verdict
        if not verdict.allowed:
            raise forbidden(caller, verb, namespace, verdict.reason)
