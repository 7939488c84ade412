"""How the Kubernetes layer names the API server's and the transport's failures."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx2
import pytest
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import Status, StatusCause, StatusDetails

from korder.domain.order import OrderSpec
from korder.kube import orders
from korder.localcluster import certificates
from tests.support.orders import spec


def _raised(exc: Exception) -> orders.KubeError:
    with pytest.raises(orders.KubeError) as caught, orders.translated():
        raise exc
    return caught.value


def _api_error(code: int, reason: str, causes: list[StatusCause] | None = None) -> ApiError:
    status = Status(code=code, reason=reason, message=f"{reason} happened")
    if causes:
        status.details = StatusDetails(causes=causes)
    return ApiError(status=status)


@pytest.mark.parametrize(
    ("code", "reason", "kind"),
    [
        (404, "NotFound", orders.NotFound),
        (409, "AlreadyExists", orders.AlreadyExists),
        (409, "Conflict", orders.Conflict),
        (422, "Invalid", orders.Invalid),
        (429, "TooManyRequests", orders.Unavailable),
        (500, "InternalError", orders.Unavailable),
        (503, "ServiceUnavailable", orders.Unavailable),
    ],
)
def test_api_errors(code: int, reason: str, kind: type[orders.KubeError]) -> None:
    assert type(_raised(_api_error(code, reason))) is kind


@pytest.mark.parametrize(("code", "reason"), [(401, "Unauthorized"), (403, "Forbidden")])
def test_a_refused_identity_is_retried_later_not_a_client_error(code: int, reason: str) -> None:
    # kube-apiserver answers 403 for a few seconds after a restart, until its
    # authorizer has loaded RBAC: the chaos run met it.
    error = _raised(_api_error(code, reason))
    assert type(error) is orders.Refused
    assert isinstance(error, orders.Unavailable)
    assert str(code) in error.message


def test_invalid_carries_the_causes() -> None:
    cause = StatusCause(field="spec.items", message="items cannot change")
    error = _raised(_api_error(422, "Invalid", [cause]))
    assert error.details == ["spec.items: items cannot change"]


def test_transport_failures_are_unavailable() -> None:
    request = httpx2.Request("GET", "https://127.0.0.1:1/")
    assert type(_raised(httpx2.ConnectError("refused", request=request))) is orders.Unavailable
    assert type(_raised(httpx2.ReadTimeout("slow", request=request))) is orders.Unavailable


def test_the_customer_label_and_the_spec_go_into_the_manifest() -> None:
    manifest = orders.manifest(OrderSpec.model_validate(spec()), name="o", annotations={"a": "b"})
    assert manifest["metadata"] == {
        "name": "o",
        "annotations": {"a": "b"},
        "labels": {"korder.dev/customer": "cust-1"},
        "finalizers": ["korder.dev/saga"],
    }
    assert manifest["spec"]["items"][0]["price"] == "19.99"


def test_the_private_request_api_that_paging_relies_on_is_still_there() -> None:
    # list_page uses the generic client behind AsyncClient (see korder.kube.orders):
    # a lightkube upgrade that moves it fails here, not in a list of orders.
    config = KubeConfig.from_dict(
        {
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
    )
    client = AsyncClient(config=config, namespace="shop")
    generic = client._client
    for name in ("prepare_request", "build_adapter_request", "send", "raise_for_status"):
        assert callable(getattr(generic, name)), name
    params = {"limit": 2, "continue": "tok", "fieldSelector": "status.phase=Confirmed"}
    request = generic.build_adapter_request(
        generic.prepare_request("list", orders.OrderResource, params=params)
    )
    assert request.method == "GET"
    assert request.url.path == "/apis/korder.dev/v1alpha1/namespaces/shop/orders"
    assert request.url.params["continue"] == "tok"
    assert request.url.params["limit"] == "2"
    assert request.url.params["fieldSelector"] == "status.phase=Confirmed"


def test_the_client_keeps_its_connections_open_for_reuse(tmp_path: Path) -> None:
    # httpx would keep 20 and close the rest after each request: a TLS handshake per
    # status write under load. The pool is ours, with lightkube's TLS context.
    files = certificates.generate(tmp_path)
    config = KubeConfig.from_dict(
        {
            "clusters": [
                {
                    "name": "c",
                    "cluster": {
                        "server": "https://127.0.0.1:1",
                        "certificate-authority": str(files.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "u",
                    "user": {
                        "client-certificate": str(files.admin_cert),
                        "client-key": str(files.admin_key),
                    },
                }
            ],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
    )
    client = orders.make_client("shop", "tester", config)
    assert client.namespace == "shop"
    transport = client._client._client._transport
    assert isinstance(transport, httpx2.AsyncHTTPTransport)
    pool = transport._pool
    assert pool._max_connections == orders.CONNECTIONS
    assert pool._max_keepalive_connections == orders.CONNECTIONS
    # The TLS context is lightkube's: the cluster's CA, and the client certificate.
    tls = pool._ssl_context
    assert tls is not None
    assert tls.verify_mode == ssl.CERT_REQUIRED
    assert tls.get_ca_certs()[0]["subject"] == ((("commonName", "korder-local-ca"),),)
