"""The operator's login in a pod: the API server by the kubernetes Service's address."""

from __future__ import annotations

import kopf

from korder.operator.handlers import in_cluster_server

FROM_SERVICE_ACCOUNT = kopf.ConnectionInfo(
    server="https://kubernetes.default.svc", token="t0ken", default_namespace="korder-system"
)


def test_the_service_address_replaces_the_dns_name() -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    info = in_cluster_server(FROM_SERVICE_ACCOUNT, env)
    assert info.server == "https://10.96.0.1:443"
    # Everything else of the service account's login stays.
    assert info.token == "t0ken"
    assert info.default_namespace == "korder-system"


def test_an_ipv6_service_address_is_bracketed() -> None:
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    assert in_cluster_server(FROM_SERVICE_ACCOUNT, env).server == "https://[fd00::1]:6443"


def test_without_the_service_variables_the_name_stays() -> None:
    assert in_cluster_server(FROM_SERVICE_ACCOUNT, {}).server == "https://kubernetes.default.svc"
