"""The body-size limit and the metrics middleware (korder.api.middleware)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from korder.api.middleware import BodyLimit, Metrics


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
