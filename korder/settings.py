"""The one settings class of korder, read from the environment.

Every component (facade, operator, reference participants, tooling) reads its
configuration here, so a setting has one name and one default. Variables are
prefixed ``KORDER_``, except the seed's ``PORT`` and ``CHAOS_MODE``, kept as they are.
"""

from __future__ import annotations

import os
import socket
from decimal import Decimal
from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """korder's configuration. Each field is the environment variable ``KORDER_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="KORDER_", extra="ignore", frozen=True)

    port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        validation_alias=AliasChoices("PORT", "KORDER_PORT"),
        description="TCP port of the REST facade (the seed's PORT).",
    )
    host: str = Field(default="127.0.0.1", description="Address the REST facade binds to.")
    namespace: str = Field(
        default="default",
        description="The facade's default namespace: the one /orders serves "
        "(/namespaces/{namespace}/orders serves any other; the operator watches all).",
    )
    operator_probe_port: int = Field(
        default=8081,
        ge=1,
        le=65535,
        description="Port of the operator's liveness endpoint (/healthz).",
    )
    operator_probe_host: str = Field(
        default="127.0.0.1", description="Address the operator's liveness endpoint binds to."
    )
    allow_unauthenticated: bool = Field(
        default=False,
        description="Let REST and console requests without a bearer token through, acting "
        "with the facade's own rights: for make run and demos on a laptop. Off, every "
        "request needs 'Authorization: Bearer <token>' that the API server accepts (401 "
        "otherwise). A request with a token is always reviewed.",
    )
    auth_cache_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="How long the facade keeps the API server's answer about a token "
        "(TokenReview) and about a permission (SubjectAccessReview): a revoked token or a "
        "removed RoleBinding counts within this long.",
    )
    idempotency_key_required: bool = Field(
        default=False,
        description="Make the facade refuse writes without an Idempotency-Key header (400).",
    )
    idempotency_record_limit: int = Field(
        default=32,
        ge=1,
        le=200,
        description="How many Idempotency-Keys of updates and actions an order remembers; "
        "the oldest are forgotten first.",
    )
    max_body_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="Largest request body the facade reads; a larger one is refused with 413 "
        "before it is parsed. 100 order lines fit in about 30 KiB.",
    )
    max_wait_seconds: int = Field(
        default=60,
        ge=0,
        le=600,
        description="The longest wait a client may ask for with 'Prefer: wait=N'; "
        "a longer one is cut to this.",
    )
    page_size: int = Field(
        default=50, ge=1, le=500, description="Orders per page of GET /orders without a limit."
    )
    console_stream_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How long one live update stream of the web console (/console) lasts; "
        "the browser then reconnects and starts from a fresh list. A stopping façade waits "
        "for its open streams (as for a Prefer: wait) up to this long.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "text", "json"] = Field(
        default="auto",
        description="How log lines are written: 'text' (one readable line each, coloured "
        "on a terminal), 'json' (one object a line, for a log collector), or 'auto': text "
        "when stderr is a terminal, else JSON.",
    )
    health_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="The facade's /health answers from its last look at the API server "
        "while it is younger than this; concurrent probes share one look (0: look every time).",
    )
    chaos_mode: bool = Field(
        default=False,
        validation_alias=AliasChoices("CHAOS_MODE", "KORDER_CHAOS_MODE"),
        description="Make participant calls fail at random (the seed's CHAOS_MODE).",
    )
    chaos_rate: float = Field(
        default=0.2, ge=0.0, le=1.0, description="With CHAOS_MODE, the share of calls that fail."
    )
    chaos_seed: int | None = Field(
        default=None, description="With CHAOS_MODE, the random seed (unset: a new one each run)."
    )
    chaos_latency_ms: int = Field(
        default=200, ge=0, description="With CHAOS_MODE, up to this much latency added per call."
    )

    # The reference participants (python -m korder.participants) and where the
    # operator finds them: point these at a shop's real services instead.
    inventory_url: str = Field(
        default="http://127.0.0.1:8001/inventory", description="Base URL of the inventory service."
    )
    payment_url: str = Field(
        default="http://127.0.0.1:8001/payment", description="Base URL of the payment service."
    )
    shipping_url: str = Field(
        default="http://127.0.0.1:8001/shipping", description="Base URL of the shipping service."
    )

    def participant_urls(self) -> dict[str, str]:
        """Each participant's base URL by the name the saga's steps call it."""
        return {
            "inventory": self.inventory_url,
            "payment": self.payment_url,
            "shipping": self.shipping_url,
        }

    participants_port: int = Field(
        default=8001, ge=1, le=65535, description="Port of the reference participants' process."
    )
    participants_host: str = Field(
        default="127.0.0.1", description="Address the reference participants bind to."
    )
    participants_state: str = Field(
        default=":memory:",
        min_length=1,
        description="The reference participants' SQLite database: stock, reservations, "
        "charges, shipments, idempotency records and ledgers. A file path survives a restart; "
        "':memory:' (the default, for tests and make run) starts a fresh shop each time.",
    )
    inventory_stock: int = Field(
        default=1000,
        ge=0,
        description="Units in stock of each of PROD-001...PROD-005 in a new state "
        "(a state file that has stock keeps it).",
    )
    payment_decline_over: Decimal = Field(
        default=Decimal("10000.00"),
        ge=0,
        description="The reference payment service declines a charge over this amount.",
    )

    # The operator's calls to the participants.
    participant_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Every participant call is abandoned after this long."
    )
    participant_attempts: int = Field(
        default=3, ge=1, description="Attempts of one call before the step is retried later."
    )
    retry_base_seconds: float = Field(
        default=0.2, gt=0, description="First backoff of a retry; it doubles, with jitter."
    )
    retry_cap_seconds: float = Field(
        default=30.0, gt=0, description="The longest backoff between two retries of a step."
    )
    breaker_window: int = Field(
        default=20, ge=1, description="A circuit breaker judges the last this many calls."
    )
    breaker_min_calls: int = Field(
        default=5, ge=1, description="A circuit breaker opens only after this many calls."
    )
    breaker_failure_ratio: float = Field(
        default=0.5, gt=0, le=1, description="A circuit breaker opens at this share of failures."
    )
    breaker_reset_seconds: float = Field(
        default=10.0, gt=0, description="An open circuit breaker lets trial calls after this long."
    )
    breaker_half_open_calls: int = Field(
        default=1, ge=1, description="Trial calls a half-open circuit breaker lets through at once."
    )
    saga_deadline_seconds: float = Field(
        default=300.0,
        gt=0,
        description="An order still failing transiently this long after creation is compensated.",
    )
    operator_metrics_port: int = Field(
        default=8082, ge=0, le=65535, description="Port of the operator's Prometheus /metrics."
    )
    operator_worker_limit: int = Field(
        default=200, ge=1, description="Orders the operator works on at the same time, at most."
    )
    # Operator replicas elect one leader on a coordination.k8s.io Lease; the others wait.
    operator_leader_election: bool = Field(
        default=True, description="Act only while holding the Lease (off: act at once, alone)."
    )
    operator_identity: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        min_length=1,
        description="This replica's name in the Lease (the pod's name in a cluster).",
    )
    operator_lease_name: str = Field(
        default="korder-operator", description="The Lease the operator replicas compete for."
    )
    operator_lease_namespace: str = Field(
        default="default", description="The namespace of that Lease (the operator's own)."
    )
    operator_lease_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A Lease not renewed for this long may be taken over by another replica.",
    )
    operator_renew_deadline_seconds: float = Field(
        default=7.0,
        gt=0,
        description="The leader stops acting when it could not renew for this long "
        "(shorter than the Lease, so it stops before another may start).",
    )
    operator_retry_period_seconds: float = Field(
        default=2.0, gt=0, description="How often the leader renews and the others look."
    )
    # Shards (korder.operator.sharding): each replica acts on one range of Order UIDs.
    operator_shards: int = Field(
        default=1,
        ge=1,
        le=64,
        description="How many ranges of Order UIDs the replicas share out, one Lease "
        "each; a replica acts on one range at a time. Run at least one more replica "
        "than shards, so a dead one's range is taken over without waiting for a restart.",
    )

    @model_validator(mode="after")
    def _leader_stops_before_the_lease_ends(self) -> Settings:
        if self.operator_renew_deadline_seconds >= self.operator_lease_seconds:
            raise ValueError(
                "KORDER_OPERATOR_RENEW_DEADLINE_SECONDS must be shorter than "
                "KORDER_OPERATOR_LEASE_SECONDS, or two replicas could act at once"
            )
        return self

    @model_validator(mode="after")
    def _shards_are_taken_by_lease(self) -> Settings:
        if self.operator_shards > 1 and not self.operator_leader_election:
            raise ValueError(
                "KORDER_OPERATOR_SHARDS > 1 needs KORDER_OPERATOR_LEADER_ELECTION: "
                "a replica's range is the shard whose Lease it holds"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
