"""OpenTelemetry traces for every korder process: one trace per order, off unless configured.

:func:`configure` is called once at start-up by the facade (:mod:`korder.api.__main__`),
the operator (:mod:`korder.operator.__main__`) and the reference participants
(:mod:`korder.participants.__main__`), each with its component's name; :func:`instrument`
gives a FastAPI app (the facade's, the participants') a server span per request. The
spans of our own (the API server create in :mod:`korder.kube.orders`, the operator's
reconciliations and saga steps, the participant calls) use :func:`tracer`.

**Off unless configured.** Tracing is on when an OTLP endpoint is set
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``), unless
``OTEL_TRACES_EXPORTER`` is ``none`` or ``OTEL_SDK_DISABLED`` is ``true``. Off, nothing
is set up: the SDK and the exporter are not even imported, no middleware is added, no
thread runs, and :func:`span` hands out one shared no-op context manager instead of the
API's no-op spans (which cost tens of function calls each), so no annotation or header
is written either.

**Settings** are the standard ``OTEL_*`` variables, read by the SDK itself: the endpoint,
headers and protocol of the exporter, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*`` for the
batching, ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_PROPAGATORS``. They are not copied into
:class:`korder.settings.Settings`, which would make two readers of one variable; only
the on/off decision above reads them here. The service name is ``korder-<component>``
unless ``OTEL_SERVICE_NAME`` says otherwise. The exporter is OTLP over HTTP with
protobuf (no gRPC stack in the image).

**Across the Kubernetes boundary** the trace context travels on the Order: the facade's
create writes the propagators' carrier (W3C ``traceparent``, and ``tracestate`` when
there is one) as the annotation ``korder.dev/trace-context``
(:data:`korder.constants.ANNOTATION_TRACE_CONTEXT`, :func:`context_annotation`), and
the operator continues that trace from it (:func:`parent_from`). An Order created
without it (``kubectl apply``) gets a trace of its own per reconciliation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Final

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from korder import __version__, logs

if TYPE_CHECKING:
    from fastapi import FastAPI

logger = logging.getLogger(__name__)

#: The longest annotation value read back: a carrier is two short headers; anything
#: longer was not written by us and is ignored rather than parsed.
MAX_CARRIER_CHARS = 4096

_configured = False
#: What :func:`span` gives while tracing is off: reusable, and it does nothing.
_OFF: Final = contextlib.nullcontext(trace.INVALID_SPAN)


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the standard variables ask for traces to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if exporter == "none":
        return False
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint:
        return False
    if exporter != "otlp":
        logger.warning("OTEL_TRACES_EXPORTER=%s is not supported; traces go over OTLP", exporter)
    return True


def configure(component: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Set up the SDK for ``component`` (``api``, ``operator``, ``participants``) if asked.

    True when traces are exported from now on. Called once per process, before any span.
    """
    global _configured
    if _configured or not enabled(environ):
        return _configured
    # Imported here, not at the top: a process with tracing off never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {SERVICE_VERSION: __version__}
    if not environ.get("OTEL_SERVICE_NAME"):  # the variable wins, as the standard says
        attributes[SERVICE_NAME] = f"korder-{component}"
    # The provider flushes its batches when the interpreter exits (shutdown_on_exit).
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True
    logs.trace_id_of = current_trace_id  # every log line inside a span names its trace
    logger.info(
        "exporting traces over OTLP",
        extra={"service": provider.resource.attributes.get(SERVICE_NAME)},
    )
    return True


def instrument(app: FastAPI) -> None:
    """A server span per request of ``app``, continuing the caller's ``traceparent``.

    OpenTelemetry's own FastAPI instrumentation (its ASGI middleware, outermost, with
    the route template as the span's name); the probes and scrapes are left out, and
    so are its two extra spans per request for the ASGI messages sent and received.
    Nothing is added when tracing is off. Call before the app serves its first request.
    """
    if not _configured:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="/health,/healthz,/readyz,/metrics", exclude_spans=["receive", "send"]
    )


def tracer(name: str) -> trace.Tracer:
    """The tracer of module ``name``; the API's no-op one while tracing is off."""
    return trace.get_tracer(name, __version__)


def span(
    tracer: trace.Tracer,
    name: str,
    *,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    attributes: Mapping[str, str | bool | int | float] | None = None,
    context: otel_context.Context | None = None,
) -> AbstractContextManager[trace.Span]:
    """A new current span of ``tracer`` (child of ``context``, else of the current one).

    While tracing is off, a shared context manager that does nothing, so the spans in
    the saga's and the facade's paths cost nothing then.
    """
    if not _configured:
        return _OFF
    return tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes)


def current_trace_id() -> str | None:
    """The current span's trace id as Jaeger and the W3C header write it, or None."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def headers() -> dict[str, str]:
    """The current trace context as HTTP headers (``traceparent``...); empty when off."""
    if not _configured:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_annotation() -> str | None:
    """The current trace context as the Order's annotation value; None when there is none."""
    carrier = headers()
    return json.dumps(carrier, sort_keys=True, separators=(",", ":")) if carrier else None


def parent_from(annotation: str | None) -> otel_context.Context | None:
    """The trace context an Order's annotation carries, to continue; None if it has none.

    The annotation is anyone's to write (``kubectl annotate``), so a value that is not
    a carrier of ours is ignored: the spans then start a trace of their own.
    """
    if not _configured or not annotation or len(annotation) > MAX_CARRIER_CHARS:
        return None
    try:
        carrier = json.loads(annotation)
    except ValueError:
        return None
    if not isinstance(carrier, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in carrier.items()
    ):
        return None
    parent = propagate.extract(carrier)
    if not trace.get_current_span(parent).get_span_context().is_valid:
        return None
    return parent
