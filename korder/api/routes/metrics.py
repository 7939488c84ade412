"""``GET /metrics``: the facade's Prometheus metrics, in the text exposition format."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_model=str,
    response_class=PlainTextResponse,
    operation_id="getMetrics",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> PlainTextResponse:
    """Request counts and latencies by route, in Prometheus' text format."""
    body = generate_latest(request.app.state.metrics)
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)
