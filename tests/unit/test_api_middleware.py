"""The facade's middleware (korder.api.middleware): body limit, metrics, request context."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from korder import logs as korder_logs
from korder.api.middleware import BodyLimit, Metrics, RequestContext


def _app(seen: list[bytes]) -> FastAPI:
    app = FastAPI()

    @app.post("/echo/{x}")
    async def echo(x: str, request: Request, response: Response) -> dict[str, int]:
        body = await request.body()
        seen.append(body)
        if x == "again":
            response.headers["Idempotent-Replayed"] = "true"
        return {"size": len(body)}

    return app


def test_bodies_up_to_the_limit_pass_whole_and_larger_ones_never_reach_the_app() -> None:
    seen: list[bytes] = []
    client = TestClient(BodyLimit(_app(seen), limit=10))
    assert client.post("/echo/1", content=b"0123456789").json() == {"size": 10}
    assert seen == [b"0123456789"]
    refused = client.post("/echo/1", content=b"0123456789A")
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "https://korder.dev/problems/payload-too-large"

    def chunks() -> Iterator[bytes]:
        yield b"01234"
        yield b"56789"
        yield b"AB"

    assert client.post("/echo/1", content=chunks()).status_code == 413
    assert seen == [b"0123456789"], "the app never saw a refused body"


def test_metrics_count_by_route_template() -> None:
    registry = CollectorRegistry()
    client = TestClient(Metrics(_app([]), registry=registry))
    client.post("/echo/a", content=b"x")
    client.post("/echo/again", content=b"x")
    text = generate_latest(registry).decode()
    assert 'korder_api_requests_total{method="POST",route="/echo/{x}",status="200"} 2.0' in text
    assert 'korder_api_idempotent_replays_total{method="POST",route="/echo/{x}"} 1.0' in text


def _context_app() -> TestClient:
    app = _app([])

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/logs")
    async def logs_inside() -> dict[str, str]:
        logging.getLogger("korder.test").info("inside")
        return {}

    # As create_app installs them: inside Starlette's own error middleware.
    app.add_middleware(BodyLimit, limit=10)
    app.add_middleware(RequestContext, namespace="shop")
    return TestClient(app, raise_server_exceptions=True)


def test_a_sane_request_id_is_echoed_and_anything_else_replaced() -> None:
    client = _context_app()
    assert (
        client.post("/echo/a", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
        == "abc-123"
    )
    for insane in ("x" * 129, "has space", "tab\there"):
        made = client.post("/echo/a", headers={"X-Request-ID": insane}).headers["X-Request-ID"]
        assert made != insane, insane
        assert len(made) == 32, made
    first, second = (client.post("/echo/a").headers["X-Request-ID"] for _ in range(2))
    assert first != second, "a new id for every request without one"


def test_errors_carry_the_request_id_in_header_and_body_and_a_bug_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.handler.addFilter(korder_logs.ContextFields())
    client = _context_app()
    refused = client.post("/echo/a", content=b"0123456789A", headers={"X-Request-ID": "r-413"})
    assert refused.status_code == 413
    assert refused.headers["X-Request-ID"] == "r-413"
    assert refused.json()["requestId"] == "r-413"
    with caplog.at_level(logging.INFO):
        failed = client.get("/boom", headers={"X-Request-ID": "r-500"})
    assert failed.status_code == 500
    assert failed.headers["content-type"] == "application/problem+json"
    assert failed.headers["X-Request-ID"] == "r-500"
    assert failed.json()["type"] == "https://korder.dev/problems/internal"
    assert failed.json()["requestId"] == "r-500"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]  # any logger
    assert len(errors) == 1, "logged once"
    (error,) = errors
    assert error.exc_info is not None
    assert "a bug" in str(error.exc_info[1])
    assert error.__dict__["request_id"] == "r-500"
    assert error.__dict__["route"] == "/boom"


def test_every_line_of_a_request_and_its_access_line_carry_its_context(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.handler.addFilter(korder_logs.ContextFields())
    client = _context_app()
    with caplog.at_level(logging.INFO):
        client.get("/logs", headers={"X-Request-ID": "r-1", "Idempotency-Key": "k-1"})
        client.post("/echo/ord-7", content=b"x", headers={"X-Request-ID": "r-2"})
    inside, access, echo = [r for r in caplog.records if r.name.startswith("korder")]
    assert (inside.getMessage(), inside.__dict__["request_id"]) == ("inside", "r-1")
    assert inside.__dict__["idempotency_key"] == "k-1"
    assert access.name == "korder.access"
    assert access.getMessage() == "GET /logs 200"
    assert access.__dict__["request_id"] == "r-1"
    assert access.__dict__["status"] == 200
    assert access.__dict__["route"] == "/logs"
    assert isinstance(access.__dict__["duration_ms"], float)
    assert echo.__dict__["request_id"] == "r-2"
    assert "order" not in echo.__dict__, "only /orders/{order_id} names an order"


def test_the_access_line_names_the_order_of_the_path_or_of_a_create() -> None:
    app = FastAPI()
    seen: list[dict[str, str]] = []

    @app.get("/orders/{order_id}")
    async def get(order_id: str) -> dict[str, str]:
        return {}

    @app.post("/orders", status_code=201)
    async def create(response: Response) -> dict[str, str]:
        response.headers["Location"] = "/orders/ord-new"
        return {}

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name == "korder.access":
                seen.append(dict(korder_logs.current()))

    keep, access = Keep(), logging.getLogger("korder.access")
    access.addHandler(keep)
    access.setLevel(logging.INFO)
    try:
        client = TestClient(RequestContext(app, namespace="shop"))
        client.get("/orders/ord-1")
        client.post("/orders")
    finally:
        access.removeHandler(keep)
        access.setLevel(logging.NOTSET)
    assert [(s["order"], s["namespace"]) for s in seen] == [("ord-1", "shop"), ("ord-new", "shop")]
