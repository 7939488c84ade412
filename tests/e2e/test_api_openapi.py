"""The OpenAPI document, and schemathesis fuzzing the facade with it.

The fuzzing is bounded (examples per operation, a fixed seed, a timeout) so the suite
stays quick; it must find no server error and no response that breaks the document.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.conftest import Component

OPERATIONS = {
    ("get", "/livez"): "getLiveness",
    ("get", "/health"): "getHealth",
    ("get", "/metrics"): "getMetrics",
    ("post", "/orders"): "createOrder",
    ("get", "/orders"): "listOrders",
    ("get", "/orders/{order_id}"): "getOrder",
    ("put", "/orders/{order_id}"): "updateOrder",
    ("delete", "/orders/{order_id}"): "cancelOrder",
    ("get", "/orders/{order_id}/events"): "listOrderEvents",
    ("post", "/orders/{order_id}/process"): "processOrder",
    ("post", "/orders/{order_id}/fulfill"): "fulfillOrder",
    ("post", "/orders/{order_id}/retry"): "retryOrder",
}


def test_every_endpoint_is_documented_with_a_clean_operation_id(facade: Component) -> None:
    document = httpx.get(f"{facade.url}/openapi.json").json()
    found = {
        (method, path): operation["operationId"]
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    assert found == OPERATIONS
    created = document["paths"]["/orders"]["post"]["responses"]["201"]
    assert set(created["headers"]) == {
        "Location",
        "ETag",
        "Idempotent-Replayed",
        "Preference-Applied",
    }
    too_large = document["paths"]["/orders"]["post"]["responses"]["413"]["content"]
    assert list(too_large) == ["application/problem+json"]
    assert too_large["application/problem+json"]["schema"]["required"] == [
        "type",
        "title",
        "status",
        "detail",
    ]
    assert httpx.get(f"{facade.url}/docs").status_code == 200


def test_schemathesis_finds_no_server_error(facade: Component, tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [
            str(cli),
            "run",
            f"{facade.url}/openapi.json",
            "--checks=not_a_server_error,content_type_conformance,response_schema_conformance",
            "--phases=examples,coverage,fuzzing",
            "--max-examples=25",
            "--seed=20261129",
            "--workers=2",
            "--generation-database=none",
            "--request-timeout=30",
            "--no-color",
            f"--report-dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
