"""The trace context's trip across the Kubernetes boundary, and tracing being off by default.

The facade's create writes the current span's context as the Order's annotation
(:func:`korder.tracing.context_annotation`, :func:`korder.kube.orders.create`); the
operator continues from it (:func:`korder.tracing.parent_from`). A tracer provider of
the test's own records the spans, so the process's global one is never set here.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import httpx
import pytest
from fastapi import Request
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from korder import constants, logs, tracing
from korder.api.main import create_app
from korder.domain import saga, steps
from korder.domain.order import OrderSpec
from korder.kube import orders
from korder.operator import performing
from korder.outcomes import Succeeded
from korder.participant_clients import calls, circuitbreaker
from korder.participants.app import create_app as participants_app
from korder.settings import Settings
from tests.support.orders import VALID_SPEC, resource, spec


@pytest.fixture
def recorded() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(recorded: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch) -> trace.Tracer:
    """A tracer recording into ``recorded``, with tracing on as configure() leaves it."""
    monkeypatch.setattr(tracing, "_configured", True)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(recorded))
    return provider.get_tracer("test")


def test_the_annotation_carries_the_current_span_and_the_operator_continues_it(
    tracer: trace.Tracer, recorded: InMemorySpanExporter
) -> None:
    with tracer.start_as_current_span("POST /orders") as span:
        annotation = tracing.context_annotation()
    assert annotation is not None
    sent = span.get_span_context()
    assert json.loads(annotation) == {
        "traceparent": f"00-{sent.trace_id:032x}-{sent.span_id:016x}-{sent.trace_flags:02x}"
    }

    parent = tracing.parent_from(annotation)
    assert parent is not None
    with tracer.start_as_current_span("reconcile Order", context=parent):
        pass
    child = recorded.get_finished_spans()[-1]
    assert child.name == "reconcile Order"
    assert child.context is not None
    assert child.context.trace_id == sent.trace_id
    assert child.parent is not None
    assert child.parent.span_id == sent.span_id


def test_tracestate_goes_along(tracer: trace.Tracer) -> None:
    carrier = {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "shop=42",
    }
    parent = tracing.parent_from(json.dumps(carrier))
    assert parent is not None
    with tracer.start_as_current_span("step", context=parent):
        again = json.loads(tracing.context_annotation() or "{}")
    assert again["tracestate"] == "shop=42"
    assert again["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")


def test_off_no_span_no_annotation(tracer: trace.Tracer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_configured", False)
    with tracing.span(tracer, "create Order") as span:
        assert not span.is_recording()
        assert tracing.context_annotation() is None
        assert tracing.headers() == {}
    assert (
        tracing.parent_from(json.dumps({"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}))
        is None
    )


def test_no_current_span_no_annotation(tracer: trace.Tracer) -> None:
    assert tracing.context_annotation() is None


@pytest.mark.parametrize(
    "annotation",
    [
        None,
        "",
        "not json",
        "[1, 2]",
        '{"traceparent": 7}',
        '{"traceparent": "00-00000000000000000000000000000000-0000000000000000-01"}',
        '{"traceparent": "garbage"}',
        json.dumps({"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "x": "y" * 5000}),
    ],
)
def test_an_annotation_not_of_ours_starts_a_trace_of_its_own(
    tracer: trace.Tracer, annotation: str | None
) -> None:
    assert tracing.parent_from(annotation) is None


class _Client:
    """What :func:`korder.kube.orders.create` uses of lightkube's client."""

    namespace = "shop"

    def __init__(self) -> None:
        self.sent: dict[str, Any] = {}

    async def create(self, resource: Any) -> dict[str, Any]:
        self.sent = resource.to_dict() if hasattr(resource, "to_dict") else dict(resource)
        metadata = {**self.sent["metadata"], "namespace": "shop", "uid": "u-1", "name": "ord-x"}
        return {**self.sent, "metadata": metadata}


async def test_the_create_writes_the_annotation_of_its_own_client_span(
    tracer: trace.Tracer, recorded: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orders, "_TRACER", tracer)
    client = _Client()
    with tracer.start_as_current_span("POST /orders"):
        created = await orders.create(
            client,  # type: ignore[arg-type]
            OrderSpec.model_validate(VALID_SPEC),
            generate_name="ord-",
            annotations={constants.ANNOTATION_IDEMPOTENCY_KEY: "k"},
        )
    written = client.sent["metadata"]["annotations"]
    assert written[constants.ANNOTATION_IDEMPOTENCY_KEY] == "k"
    [create_span, post] = recorded.get_finished_spans()
    assert (create_span.name, create_span.kind) == ("create Order", trace.SpanKind.CLIENT)
    assert create_span.parent is not None
    assert create_span.parent.span_id == post.context.span_id
    carried = json.loads(written[constants.ANNOTATION_TRACE_CONTEXT])
    span_context = create_span.context
    assert carried["traceparent"].startswith(
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
    )
    assert dict(create_span.attributes or {})["korder.order.uid"] == "u-1"
    assert created.metadata.annotations == written


async def test_the_create_without_tracing_writes_no_annotation() -> None:
    client = _Client()
    await orders.create(client, OrderSpec.model_validate(VALID_SPEC), generate_name="ord-")  # type: ignore[arg-type]
    assert "annotations" not in client.sent["metadata"]


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, False),
    ],
)
def test_tracing_is_off_unless_an_endpoint_is_configured(environ: dict[str, str], on: bool) -> None:
    assert tracing.enabled(environ) is on


def test_off_nothing_is_set_up() -> None:
    assert tracing.configure("api", environ={}) is False
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    app = create_app()
    before = list(app.user_middleware)
    tracing.instrument(app)
    assert app.user_middleware == before


async def test_a_step_is_a_span_whose_participant_call_carries_it_to_the_participant(
    tracer: trace.Tracer, recorded: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(performing, "_TRACER", tracer)
    monkeypatch.setattr(calls, "_TRACER", tracer)
    app = participants_app(Settings())
    seen: list[str] = []

    @app.middleware("http")
    async def note_traceparent(request: Request, call_next: Any) -> Any:
        seen.append(request.headers.get("traceparent", ""))
        return await call_next(request)

    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    breaker = circuitbreaker.CircuitBreaker("inventory")
    inventory = calls.Participant(
        "inventory", "http://p/inventory", http, breaker, timeout=5, attempts=1, retry_base=0.01
    )
    order = resource(spec(), status={"phase": "ReservingInventory", "total": "44.98"}, uid="u-2")
    call = saga.Call(steps.RESERVE.name, steps.RESERVE.request("u-2", order.spec, order.status))
    outcome = await performing.perform(
        calls.Participants({"inventory": inventory}, http), call, order
    )
    await http.aclose()

    assert isinstance(outcome, Succeeded)
    [client, step] = recorded.get_finished_spans()
    assert (step.name, client.name) == ("step reserve-inventory", "POST inventory")
    assert client.kind == trace.SpanKind.CLIENT
    assert client.parent is not None
    assert client.parent.span_id == step.context.span_id
    [sent] = seen
    assert sent.startswith(f"00-{client.context.trace_id:032x}-{client.context.span_id:016x}-")
    attributes = dict(step.attributes or {})
    assert attributes["korder.order.uid"] == "u-2"
    assert attributes["korder.order.phase"] == "ReservingInventory"
    assert attributes["korder.saga.outcome"] == "succeeded"
    assert attributes["korder.saga.compensation"] is False
    assert dict(client.attributes or {})["http.response.status_code"] == 201


def test_a_log_line_inside_a_span_names_its_trace(
    tracer: trace.Tracer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # configure() installs the hook; the lines outside any span carry no trace_id.
    monkeypatch.setattr(logs, "trace_id_of", tracing.current_trace_id)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logs.formatter("operator", "json", buffer))
    handler.addFilter(logs.ContextFields())
    log = logging.getLogger("korder.test.tracing")
    log.addHandler(handler)
    log.propagate = False
    try:
        with tracer.start_as_current_span("step") as span:
            log.warning("inside")
        log.warning("outside")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    inside, outside = (json.loads(line) for line in buffer.getvalue().splitlines())
    assert inside["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert "trace_id" not in outside
