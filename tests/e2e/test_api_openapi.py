"""The OpenAPI document, and schemathesis fuzzing the facade with it.

The fuzzing is bounded (examples per operation, a fixed seed, a timeout) so the suite
stays quick; it must find no server error and no response that breaks the document.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.conftest import AccountFactory, Component, FacadeFactory

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
    **{
        (method, f"/namespaces/{{namespace}}{path}"): f"{verb}Namespaced{rest}"
        for method, path, verb, rest in (
            ("post", "/orders", "create", "Order"),
            ("get", "/orders", "list", "Orders"),
            ("get", "/orders/{order_id}", "get", "Order"),
            ("put", "/orders/{order_id}", "update", "Order"),
            ("delete", "/orders/{order_id}", "cancel", "Order"),
            ("get", "/orders/{order_id}/events", "list", "OrderEvents"),
            ("post", "/orders/{order_id}/process", "process", "Order"),
            ("post", "/orders/{order_id}/fulfill", "fulfill", "Order"),
            ("post", "/orders/{order_id}/retry", "retry", "Order"),
        )
    },
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


def test_schemathesis_finds_no_server_error(
    start_facade: FacadeFactory, account: AccountFactory, namespace: str, tmp_path: Path
) -> None:
    """With authentication on and an editor's token, as a real client calls it."""
    facade = start_facade(KORDER_ALLOW_UNAUTHENTICATED="false")
    editor = account(namespace, "fuzzer", "korder-order-editor")
    cli = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [
            str(cli),
            "run",
            f"{facade.url}/openapi.json",
            f"--header=Authorization: Bearer {editor.token}",
            "--checks=not_a_server_error,content_type_conformance,response_schema_conformance",
            "--phases=examples,coverage,fuzzing",
            "--max-examples=25",
            "--seed=20261129",
            # One worker: with two, hypothesis describes filters by parsing their source
            # in both threads at once, which CPython 3.11's parser does not survive
            # ("AST constructor recursion depth mismatch", a Runtime Error of the run).
            "--workers=1",
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
