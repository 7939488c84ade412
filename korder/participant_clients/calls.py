"""One participant call, made the safe way: timeout, breaker, retries, idempotency key.

:class:`Participant` is one HTTP service (inventory, payment or shipping) with its
circuit breaker; :meth:`Participant.post` returns what happened as one of the four
:data:`korder.outcomes.Outcome` instead of raising, because each is a different next
step for the saga: ``Succeeded``, ``Rejected`` (a business answer, permanent),
``Failed`` (transient, after a few quick attempts) or ``Deferred`` (the breaker is
open, no call was made). The attempts inside one call are tenacity's loop, on our
backoff curve (:mod:`.backoff`), with a sleep that tests replace. :class:`Participants`
holds the services by name and the shared HTTP client; the operator builds it once
at start-up from the settings.

Each HTTP attempt is a client span (``POST inventory``) carrying its context to the
participant in ``traceparent`` (:mod:`korder.tracing`). These few lines rather than
OpenTelemetry's httpx instrumentation: the span needs the participant's name and the
idempotency key, an open breaker makes no request and so no span, and the outcome,
not the status code alone, says whether the attempt failed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import tenacity
from opentelemetry import trace

from korder import tracing
from korder.outcomes import Deferred, Failed, Outcome, Rejected, Succeeded
from korder.participant_clients import backoff, chaos, circuitbreaker, metrics
from korder.settings import Settings

logger = logging.getLogger(__name__)

#: Answers that say the service is unwell (or busy), not that the request is wrong.
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
#: The longest wait between two attempts inside one call; longer waits happen
#: between retries of the saga step, where the order's status shows them.
IN_CALL_BACKOFF_CAP = 2.0

Sleep = Callable[[float], Awaitable[None]]

_TRACER = tracing.tracer(__name__)


@dataclass
class Participant:
    name: str
    base_url: str
    http: httpx.AsyncClient
    breaker: circuitbreaker.CircuitBreaker
    timeout: float
    attempts: int
    retry_base: float
    rng: random.Random = field(default_factory=random.Random)
    #: How the attempts wait for one another; tests pass one that does not.
    sleep: Sleep = asyncio.sleep

    async def post(self, path: str, key: str, body: Mapping[str, Any] | None = None) -> Outcome:
        """POST ``body`` to ``path`` with the idempotency key, up to ``attempts`` times.

        Only a transient failure is tried again; the last one, after ``attempts``,
        is the answer.
        """
        url = f"{self.base_url.rstrip('/')}/{path.lstrip('/')}"
        attempts = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=tenacity.retry_if_result(lambda outcome: isinstance(outcome, Failed)),
            retry_error_callback=self._gave_up,
            sleep=self.sleep,
        )
        outcome: Outcome = await attempts(self._attempt, url, key, body)
        return outcome

    def _wait(self, state: tenacity.RetryCallState) -> float:
        # attempt_number counts from 1; the first retry waits on the curve's first step.
        retry = state.attempt_number - 1
        return backoff.delay(retry, base=self.retry_base, cap=IN_CALL_BACKOFF_CAP, rng=self.rng)

    def _gave_up(self, state: tenacity.RetryCallState) -> Failed:
        assert state.outcome is not None
        last = state.outcome.result()
        reason = last.reason if isinstance(last, Failed) else repr(last)
        return Failed(f"{self.name}: {reason} (after {state.attempt_number} attempts)")

    async def _attempt(self, url: str, key: str, body: Mapping[str, Any] | None) -> Outcome:
        try:
            permit = self.breaker.acquire()
        except circuitbreaker.CircuitOpen as exc:
            metrics.CALLS.labels(self.name, "rejected_by_breaker").inc()
            return Deferred(str(exc), exc.retry_after)
        with tracing.span(
            _TRACER,
            f"POST {self.name}",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "http.request.method": "POST",
                "url.full": url,
                "korder.participant": self.name,
                "korder.idempotency_key": key,
            },
        ) as span:
            outcome = await self._send(permit, url, key, body)
            # A rejection (409 out of stock, 402 declined) is an answer the saga expects,
            # told by its status code; only a transient failure marks the span an error.
            if isinstance(outcome, Failed):
                span.set_status(trace.Status(trace.StatusCode.ERROR, outcome.reason))
        return outcome

    async def _send(
        self,
        permit: circuitbreaker.Permit,
        url: str,
        key: str,
        body: Mapping[str, Any] | None,
    ) -> Outcome:
        # The span's context goes along (traceparent), so the participant's own server
        # span is this one's child; nothing is added while tracing is off.
        headers = {"Idempotency-Key": key, **tracing.headers()}
        try:
            # httpx's own timeouts bound each phase; this bounds the whole call,
            # so a participant that trickles bytes cannot hold a step forever.
            async with asyncio.timeout(self.timeout):
                response = await self.http.post(url, json=body, headers=headers)
        except (httpx.HTTPError, TimeoutError) as exc:
            permit.failed()
            metrics.CALLS.labels(self.name, "failure").inc()
            trace.get_current_span().set_attribute("error.type", type(exc).__name__)
            return Failed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        except BaseException:
            # Cancelled (the operator stopping): the call proves nothing either way.
            permit.ignored()
            raise
        trace.get_current_span().set_attribute("http.response.status_code", response.status_code)
        if response.is_success:
            permit.succeeded()
            metrics.CALLS.labels(self.name, "success").inc()
            return Succeeded(_json(response))
        if response.status_code in TRANSIENT_STATUS or response.status_code >= 500:
            permit.failed()
            metrics.CALLS.labels(self.name, "failure").inc()
            return Failed(f"HTTP {response.status_code}")
        permit.ignored()
        metrics.CALLS.labels(self.name, "refused").inc()
        answer = _json(response)
        return Rejected(
            response.status_code,
            str(answer.get("error", f"http_{response.status_code}")),
            str(answer.get("detail", response.text[:200])),
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@dataclass
class Participants:
    """The participant services by name (inventory, payment, shipping), for the operator."""

    by_name: dict[str, Participant]
    http: httpx.AsyncClient

    def __getitem__(self, name: str) -> Participant:
        return self.by_name[name]

    @classmethod
    def from_settings(cls, settings: Settings) -> Participants:
        rng = random.Random(settings.chaos_seed)  # noqa: S311 - jitter and chaos, not secrets
        transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport()
        if settings.chaos_mode:
            logger.warning(
                "CHAOS_MODE is on: participant calls fail at random",
                extra={"rate": settings.chaos_rate, "seed": settings.chaos_seed},
            )
            transport = chaos.ChaosTransport(
                transport, rate=settings.chaos_rate, latency_ms=settings.chaos_latency_ms, rng=rng
            )
        http = httpx.AsyncClient(transport=transport, timeout=settings.participant_timeout_seconds)

        def participant(name: str, url: str) -> Participant:
            metrics.register(name)
            breaker = circuitbreaker.CircuitBreaker(
                name,
                window=settings.breaker_window,
                min_calls=settings.breaker_min_calls,
                failure_ratio=settings.breaker_failure_ratio,
                reset_timeout=settings.breaker_reset_seconds,
                half_open_calls=settings.breaker_half_open_calls,
                trial_timeout=settings.participant_timeout_seconds * 2,
                listener=_log_and_count,
            )
            return Participant(
                name,
                url,
                http,
                breaker,
                timeout=settings.participant_timeout_seconds,
                attempts=settings.participant_attempts,
                retry_base=settings.retry_base_seconds,
                rng=rng,
            )

        urls = settings.participant_urls()
        return cls({name: participant(name, url) for name, url in urls.items()}, http)

    async def aclose(self) -> None:
        await self.http.aclose()


def _log_and_count(name: str, before: circuitbreaker.State, after: circuitbreaker.State) -> None:
    level = logging.WARNING if after == circuitbreaker.State.OPEN else logging.INFO
    logger.log(
        level,
        "circuit breaker %s: %s -> %s",
        name,
        before.value,
        after.value,
        extra={"participant": name, "from": before.value, "to": after.value},
    )
    metrics.breaker_moved(name, before, after)
