"""The Idempotency-Key header, with the semantics of the IETF httpapi draft.

Called by the routes of :mod:`korder.api.routes.orders` for every write. There is
no store of our own: the Order resource is the record.

- Create: the key maps to the order's resource name (:func:`resource_name`), and
  the raw key and the request's fingerprint go into annotations of the new order.
  The API server refuses a second object of that name, so of any number of
  concurrent twins, on any number of facade replicas, exactly one creates; the
  others read the winner and :func:`check_created` decides: same key and same
  request replays, same key and another request is 422, another key that happens
  to hash to the same name (never seen, but checked) is 409.
- Update and actions: the key, the fingerprint and the status code go into a
  bounded list in one annotation (:data:`RECORDS_ANNOTATION`), written by the same
  patch as the action and guarded by the resourceVersion the decision was made on.
  A twin that loses that race re-reads, finds the record and replays.

A key belongs to its caller, as the draft ties it to the client: the caller's scope
(a digest of their identity, :attr:`korder.api.access.Caller.scope`) goes into the
name's hash and into each record, so the same key from two callers makes two
orders, and neither replays, nor learns anything of, the other's. Without
authentication (``KORDER_ALLOW_UNAUTHENTICATED``) the scope is empty and the names
are what they were before keys had callers.

The draft makes the field a Structured Field String (``"abc"``); many clients send
the bare token (``abc``), so both are accepted and mean the same key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Final

from korder import constants
from korder.api.problems import Problem
from korder.domain.order import Order

HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
MAX_KEY_LENGTH: Final = 255
RECORDS_ANNOTATION: Final = f"{constants.GROUP}/idempotency-records"
#: Orders created with a key are named this prefix and 26 base32 characters (130 bits).
NAME_PREFIX: Final = "ord-"
_NAME_HASH_CHARS: Final = 26


def parse_key(raw: str | None, *, required: bool) -> str | None:
    """The key in an Idempotency-Key header value, or None; 400 when it cannot be one."""
    if raw is None:
        if required:
            raise Problem(
                400,
                "idempotency-key-missing",
                "Idempotency-Key required",
                f"This server requires an {HEADER} header on every write.",
            )
        return None
    key = raw.strip(" \t")
    if len(key) >= 2 and key.startswith('"') and key.endswith('"'):
        key = key[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if not key or len(key) > MAX_KEY_LENGTH or not all(" " <= ch <= "~" for ch in key):
        raise Problem(
            400,
            "idempotency-key-invalid",
            "Invalid Idempotency-Key",
            f"An {HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.",
        )
    return key


def fingerprint(method: str, route: str, body: Any) -> str:
    """A digest of what the request asks for: method, route and the parsed body.

    The body is the validated model's JSON, so key order and whitespace do not count,
    and a field given its default value is the same request as the field left out.
    """
    canonical = json.dumps(
        {"method": method, "route": route, "body": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def resource_name(key: str, scope: str = "") -> str:
    """The Order name for a create with ``key`` by the caller of ``scope``: deterministic,
    a valid DNS label, and telling nothing of the caller or the key."""
    material = f"{scope}\0{key}" if scope else key
    digest = hashlib.sha256(material.encode()).digest()
    encoded = base64.b32encode(digest).decode().lower()
    return NAME_PREFIX + encoded[:_NAME_HASH_CHARS]


def create_annotations(key: str, request_fingerprint: str, scope: str = "") -> dict[str, str]:
    annotations = {
        constants.ANNOTATION_IDEMPOTENCY_KEY: key,
        constants.ANNOTATION_REQUEST_FINGERPRINT: request_fingerprint,
    }
    if scope:
        annotations[constants.ANNOTATION_IDEMPOTENCY_CALLER] = scope
    return annotations


def _reused() -> Problem:
    return Problem(
        422,
        "idempotency-key-reused",
        "Idempotency-Key reused",
        f"This {HEADER} was already used for a different request. Use a new key for a new request.",
    )


def check_created(existing: Order, key: str, request_fingerprint: str, scope: str = "") -> None:
    """Return when ``existing`` is the order a create with this key and request made.

    Raises 422 when the key made it for a different request, and 409 when the name is
    taken by an order that this key did not make.
    """
    annotations = existing.metadata.annotations
    if (
        annotations.get(constants.ANNOTATION_IDEMPOTENCY_KEY) != key
        or annotations.get(constants.ANNOTATION_IDEMPOTENCY_CALLER, "") != scope
    ):
        raise Problem(
            409,
            "idempotency-key-collision",
            "Idempotency-Key collides",
            f"The order name this {HEADER} maps to is taken by another order. Use another key.",
        )
    if annotations.get(constants.ANNOTATION_REQUEST_FINGERPRINT) != request_fingerprint:
        raise _reused()


@dataclass(frozen=True)
class Record:
    """What an update or action with a key did: enough to replay it."""

    key: str
    fingerprint: str
    status: int
    #: The scope of the caller who sent it ("" without authentication).
    caller: str = ""


def records_of(order: Order) -> list[Record]:
    """The records on ``order``, oldest first; an unreadable annotation counts as none."""
    raw = order.metadata.annotations.get(RECORDS_ANNOTATION)
    if not raw:
        return []
    try:
        return [
            Record(str(r["key"]), str(r["fingerprint"]), int(r["status"]), str(r.get("caller", "")))
            for r in json.loads(raw)
        ]
    except (ValueError, TypeError, KeyError):
        # Someone edited the annotation by hand; forgetting is safer than failing every write.
        return []


def replay_of(order: Order, key: str, request_fingerprint: str, scope: str = "") -> Record | None:
    """The record to replay for ``key`` of the caller of ``scope``, None when the key is
    new to them; 422 when they used it for another request."""
    for record in records_of(order):
        if record.key == key and record.caller == scope:
            if record.fingerprint != request_fingerprint:
                raise _reused()
            return record
    return None


def records_annotation(order: Order, record: Record, limit: int) -> dict[str, str]:
    """The annotation that adds ``record`` to the order's, keeping the newest ``limit``."""
    records = [*records_of(order), record][-limit:]
    return {RECORDS_ANNOTATION: json.dumps([asdict(r) for r in records], separators=(",", ":"))}
