"""The one settings class of korder, read from the environment.

Every component (facade, operator, reference participants, tooling) reads its
configuration here, so a setting has one name and one default. Variables are
prefixed ``KORDER_``, except the seed's ``PORT`` and ``CHAOS_MODE``, kept as they are.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field
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
        description="Namespace the facade creates Orders in (the operator watches all).",
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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    chaos_mode: bool = Field(
        default=False,
        validation_alias=AliasChoices("CHAOS_MODE", "KORDER_CHAOS_MODE"),
        description="Make participant calls fail at random (the seed's CHAOS_MODE).",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
