"""Helpers the REST API's e2e tests share: requests against a facade, problem checks."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.e2e.conftest import Component
from tests.support.orders import spec
from tests.support.waiting import wait_for

PROBLEM_TYPES = "https://korder.dev/problems/"


def create(
    facade: Component, body: dict[str, Any] | None = None, key: str | None = None, **headers: str
) -> httpx.Response:
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(
        f"{facade.url}/orders", json=body if body is not None else spec(), headers=headers
    )


def created(facade: Component, **kwargs: Any) -> dict[str, Any]:
    """A new order's body; fails the test unless the facade answered 201."""
    response = create(facade, **kwargs)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def get(facade: Component, order_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = httpx.get(f"{facade.url}/orders/{order_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_for_status(
    facade: Component, order_id: str, *statuses: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        order = get(facade, order_id, headers)
        return order if order["status"] in statuses else None

    found = wait_for(reached, timeout=60, what=f"order {order_id} to reach {statuses}")
    assert isinstance(found, dict)
    return found


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem of this status and type; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["type"] == PROBLEM_TYPES + kind, problem
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    return problem


async def create_concurrently(
    facades: Component | list[Component], count: int, key: str
) -> list[httpx.Response]:
    """``count`` creates of one order with one key, all in flight at once, spread over
    ``facades`` (several facade processes stand for several replicas)."""
    replicas = facades if isinstance(facades, list) else [facades]
    clients = [httpx.AsyncClient(base_url=f.url, timeout=60) for f in replicas]
    try:
        return list(
            await asyncio.gather(
                *(
                    clients[i % len(clients)].post(
                        "/orders", json=spec(), headers={"Idempotency-Key": key}
                    )
                    for i in range(count)
                )
            )
        )
    finally:
        for client in clients:
            await client.aclose()
