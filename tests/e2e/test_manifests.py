"""manifests/ against the real API server: every kustomization builds and dry-runs, every
pod template passes the restricted Pod Security profile, the samples take their paths, and
the shipped RBAC is least privilege.

Builds use the kubectl of the control-plane cache (its built-in kustomize), as
``make deploy`` does. The RBAC is the one the session applied (``identities``) and that
the operator and the facades of the whole suite run with.
"""

from __future__ import annotations

import concurrent.futures
import copy
import ipaddress
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from korder.localcluster import controlplane, system
from tests.e2e.conftest import Component, Identities, Kubectl, bind_api
from tests.support.waiting import wait_for

MANIFESTS = system.MANIFESTS
#: Every kustomization a user applies (the participants component is built through default).
KUSTOMIZATIONS = [
    "crd",
    "rbac",
    "operator",
    "api",
    "network-policy",
    "samples",
    "default",
    "overlays/kind",
    "overlays/local",
    "overlays/sharded",
]
OPERATOR = f"system:serviceaccount:{system.SYSTEM_NAMESPACE}:korder-operator"
API = f"system:serviceaccount:{system.SYSTEM_NAMESPACE}:korder-api"


def test_every_kustomization_is_checked() -> None:
    found = {str(k.parent.relative_to(MANIFESTS)) for k in MANIFESTS.rglob("kustomization.yaml")}
    # The components cannot be built alone: default includes participants, overlays/sharded
    # includes sharded, and argocd goes into the kustomization that installs Argo CD (its
    # own test below).
    # monitoring too, for a cluster with the Prometheus Operator (tests/monitoring builds it).
    assert found == {*KUSTOMIZATIONS, "participants", "sharded", "argocd", "monitoring"}


def test_the_local_overlay_never_pulls_and_finds_the_participants_by_address(
    kubectl: Kubectl,
) -> None:
    """The local cluster has no registry and no DNS (korder/localcluster/node.py)."""
    objects = build(kubectl, MANIFESTS / "overlays" / "local")
    for name, deployment in by_kind(objects, "Deployment").items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert container["imagePullPolicy"] == "Never", name
    address = by_kind(objects, "Service")["korder-participants"]["spec"]["clusterIP"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(controlplane.SERVICE_CIDR)
    (config,) = by_kind(objects, "ConfigMap").values()
    for service in ("inventory", "payment", "shipping"):
        assert config["data"][f"KORDER_{service.upper()}_URL"] == (
            f"http://{address}:8001/{service}"
        )


def test_the_sharded_overlay_runs_one_replica_more_than_shards(kubectl: Kubectl) -> None:
    """A dead shard's range is taken over by the standby, not left until a restart."""
    objects = build(kubectl, MANIFESTS / "overlays" / "sharded")
    operator = by_kind(objects, "Deployment")["korder-operator"]
    config = next(c for n, c in by_kind(objects, "ConfigMap").items() if "operator" in n)
    shards = int(config["data"]["KORDER_OPERATOR_SHARDS"])
    assert shards > 1
    assert operator["spec"]["replicas"] == shards + 1
    # The participants' URLs of the default build are kept, not replaced by the merge.
    assert config["data"]["KORDER_INVENTORY_URL"].startswith("http://korder-participants")


def build(kubectl: Kubectl, folder: Path) -> list[dict[str, Any]]:
    out = kubectl("kustomize", str(folder)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.mark.parametrize("folder", KUSTOMIZATIONS)
def test_kustomization_builds_and_passes_a_server_dry_run(
    kubectl: Kubectl, identities: Identities, namespace: str, folder: str
) -> None:
    # The session applied korder-system (the namespace of rbac, default and kind) with the
    # RBAC; the others name no namespace and go into this test's.
    objects = build(kubectl, MANIFESTS / folder)
    assert objects
    placed = any(o["metadata"].get("namespace") for o in objects)
    where = [] if placed else ["-n", namespace]
    result = kubectl(
        "apply", "--server-side", "--dry-run=server", *where, "-k", str(MANIFESTS / folder)
    )
    assert result.stdout.count("(server dry run)") == len(objects), result.stdout
    # korder-system warns about Pod Security violations: a workload template would say so.
    assert "Warning" not in result.stderr, result.stderr


def test_default_deploys_every_role_the_way_the_issue_asks(kubectl: Kubectl) -> None:
    objects = build(kubectl, MANIFESTS / "default")
    deployments = by_kind(objects, "Deployment")
    assert set(deployments) == {"korder-api", "korder-operator", "korder-participants"}
    cluster_scoped = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    for o in objects:
        if o["kind"] not in cluster_scoped:
            assert o["metadata"]["namespace"] == system.SYSTEM_NAMESPACE, o["metadata"]
    roles = {}
    for name, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "korder:dev"
        roles[name] = container["args"]
    assert roles == {
        "korder-api": ["api"],
        "korder-operator": ["operator"],
        "korder-participants": ["participants"],
    }

    api = deployments["korder-api"]["spec"]
    assert api["replicas"] == 3
    assert api["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    (container,) = api["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] != "/health", (
        "liveness must not call the API server"
    )
    hpa = by_kind(objects, "HorizontalPodAutoscaler")["korder-api"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    assert "korder-api" in by_kind(objects, "PodDisruptionBudget")

    operator = deployments["korder-operator"]["spec"]
    assert operator["replicas"] == 2
    (container,) = operator["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["KORDER_OPERATOR_PROBE_HOST"]["value"] == "0.0.0.0"  # noqa: S104 - in a pod
    assert env["KORDER_OPERATOR_IDENTITY"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.name"
    )
    # The participants keep their state on a volume of their own, the root stays read-only.
    participants = deployments["korder-participants"]["spec"]
    assert participants["replicas"] == 1
    assert participants["strategy"]["type"] == "Recreate"
    (container,) = participants["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    state = Path(env["KORDER_PARTICIPANTS_STATE"])
    mounts = {m["name"]: Path(m["mountPath"]) for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in participants["template"]["spec"]["volumes"]}
    assert mounts["state"] == state.parent
    assert "emptyDir" in volumes["state"] or "persistentVolumeClaim" in volumes["state"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The participants component points the operator at its Service.
    (config,) = by_kind(objects, "ConfigMap").values()
    assert config["data"]["KORDER_INVENTORY_URL"] == "http://korder-participants:8001/inventory"

    namespace = by_kind(objects, "Namespace")[system.SYSTEM_NAMESPACE]
    for mode in ("enforce", "audit", "warn"):
        assert namespace["metadata"]["labels"][f"pod-security.kubernetes.io/{mode}"] == (
            "restricted"
        )


def test_default_without_the_participants_component(kubectl: Kubectl, tmp_path: Path) -> None:
    """What a shop with its own services does: default, minus the `components:` entry."""
    shop = tmp_path / "shop"
    shutil.copytree(MANIFESTS / "default", shop)
    kustomization = yaml.safe_load((shop / "kustomization.yaml").read_text())
    del kustomization["components"]
    relative = os.path.relpath(MANIFESTS, shop)
    kustomization["resources"] = [
        r if not r.startswith("../") else f"{relative}/{r[3:]}" for r in kustomization["resources"]
    ]
    (shop / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))

    objects = build(kubectl, shop)
    assert "participants" not in yaml.safe_dump_all(objects).replace("korder-participants", "")
    assert not [o for o in objects if "participants" in o["metadata"]["name"]]
    (config,) = by_kind(objects, "ConfigMap").values()
    assert config["data"]["KORDER_INVENTORY_URL"] == "https://inventory.example.com"


def test_the_argocd_component_puts_the_health_check_into_argocd_cm(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    """What an Argo CD install's kustomization does with manifests/argocd."""
    install = tmp_path / "argocd"
    install.mkdir()
    existing = {"url": "https://argocd.example.com"}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm"}}
    (install / "argocd-cm.yaml").write_text(yaml.safe_dump({**config, "data": existing}))
    kustomization = {
        "resources": ["argocd-cm.yaml"],
        "components": [os.path.relpath(MANIFESTS / "argocd", install)],
    }
    (install / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))

    (built,) = build(kubectl, install)
    assert built["metadata"]["name"] == "argocd-cm"  # Argo CD reads it by that name
    assert built["data"] == {
        **existing,
        "resource.customizations.health.korder.dev_Order": (
            MANIFESTS / "argocd" / "health.lua"
        ).read_text(),
    }


def pods_of(kubectl: Kubectl) -> dict[str, dict[str, Any]]:
    """Each Deployment's pod template of manifests/default, as a Pod."""
    pods = {}
    for name, deployment in by_kind(build(kubectl, MANIFESTS / "default"), "Deployment").items():
        template = copy.deepcopy(deployment["spec"]["template"])
        pods[name] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": template["metadata"]["labels"]},
            "spec": template["spec"],
        }
    return pods


def test_pod_templates_pass_the_restricted_profile_and_a_broken_one_does_not(
    kubectl: Kubectl, namespace: str
) -> None:
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    # A Pod must name an existing ServiceAccount on a cluster that admits them.
    for account in ("korder-api", "korder-operator", "korder-participants"):
        kubectl("create", "serviceaccount", account, "-n", namespace)
    pods = pods_of(kubectl)
    assert len(pods) == 3

    def dry_run(pod: dict[str, Any]) -> Any:
        return kubectl(
            "create", "--dry-run=server", "-n", namespace, "-f", "-",
            stdin=yaml.safe_dump(pod), check=False,
        )  # fmt: skip

    for name, pod in pods.items():
        result = dry_run(pod)
        assert result.returncode == 0, f"{name}: {result.stderr}"
        assert "Warning" not in result.stderr

    # The PodSecurity admission plugin is really on: each of these breaks the profile.
    breakages: dict[str, Callable[[dict[str, Any]], object]] = {
        "is privileged": lambda spec: spec["containers"][0]["securityContext"].update(
            privileged=True, allowPrivilegeEscalation=True
        ),
        "may run as root": lambda spec: spec["securityContext"].pop("runAsNonRoot"),
        "keeps its capabilities": lambda spec: spec["containers"][0]["securityContext"].pop(
            "capabilities"
        ),
        "has no seccomp profile": lambda spec: spec["securityContext"].pop("seccompProfile"),
    }
    for what, breakage in breakages.items():
        pod = copy.deepcopy(pods["korder-api"])
        breakage(pod["spec"])
        result = dry_run(pod)
        assert result.returncode != 0, f"a pod that {what} was admitted"
        assert 'violates PodSecurity "restricted' in result.stderr, result.stderr


def test_samples_take_their_paths(kubectl: Kubectl, operator: Component, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-k", str(MANIFESTS / "samples"))
    expected = {
        "sample-happy": "Confirmed",
        "sample-out-of-stock": "Failed",
        "sample-declined": "Failed",
        "sample-cancelled": "Cancelled",
    }

    def phases() -> dict[str, str] | None:
        items = kubectl.json("get", "orders", "-n", namespace)["items"]
        found = {o["metadata"]["name"]: o.get("status", {}).get("phase") for o in items}
        return found if found == expected else None

    wait_for(phases, timeout=60, what=f"the samples to reach {expected}")
    declined = kubectl.json("get", "order", "sample-declined", "-n", namespace)
    out_of_stock = kubectl.json("get", "order", "sample-out-of-stock", "-n", namespace)
    assert "declined" in declined["status"]["failureReason"].lower()
    assert "stock" in out_of_stock["status"]["failureReason"].lower()


def test_the_suite_runs_as_the_service_accounts(
    kubectl: Kubectl, identities: Identities, operator: Component
) -> None:
    assert operator.env["KUBECONFIG"] == str(identities.operator)
    for kubeconfig, user in ((identities.operator, OPERATOR), (identities.api, API)):
        whoami = kubectl(f"--kubeconfig={kubeconfig}", "auth", "whoami", "-o", "json").stdout
        info = yaml.safe_load(whoami)["status"]["userInfo"]
        assert info["username"] == user
        assert "system:masters" not in info.get("groups", [])


def can(kubectl: Kubectl, user: str, *args: str) -> bool:
    result = kubectl("auth", "can-i", f"--as={user}", *args, check=False)
    assert result.stdout.strip() in {"yes", "no"}, result.stdout + result.stderr
    return result.stdout.strip() == "yes"


def test_neither_reads_secrets_nor_changes_crds_or_rbac(
    kubectl: Kubectl, identities: Identities, namespace: str
) -> None:
    bind_api(kubectl, namespace)
    forbidden = [
        ("get", "secrets"),
        ("list", "secrets"),
        ("watch", "secrets"),
        ("get", "configmaps"),
        ("create", "pods"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("update", "customresourcedefinitions.apiextensions.k8s.io"),
        ("patch", "customresourcedefinitions.apiextensions.k8s.io"),
        ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
        ("create", "roles.rbac.authorization.k8s.io"),
        ("create", "rolebindings.rbac.authorization.k8s.io"),
        ("create", "clusterroles.rbac.authorization.k8s.io"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ("escalate", "clusterroles.rbac.authorization.k8s.io"),
        ("bind", "clusterroles.rbac.authorization.k8s.io"),
        ("delete", "orders.korder.dev"),
        ("update", "orders.korder.dev"),
    ]
    checks = [
        (user, verb, resource, where)
        for user in (OPERATOR, API)
        for where in (namespace, system.SYSTEM_NAMESPACE)
        for verb, resource in forbidden
    ]
    # One kubectl per check; a few at a time, or this test alone would take seconds.
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        allowed = list(pool.map(lambda c: can(kubectl, c[0], c[1], c[2], "-n", c[3]), checks))
    assert not [c for c, yes in zip(checks, allowed, strict=True) if yes]
    for user in (OPERATOR, API):
        assert not can(kubectl, user, "list", "secrets", "--all-namespaces")


def test_the_facade_cannot_write_status_and_the_operator_cannot_create_orders(
    kubectl: Kubectl, identities: Identities, namespace: str
) -> None:
    bind_api(kubectl, namespace)
    orders, status = "orders.korder.dev", ("orders.korder.dev", "--subresource=status")
    for verb in ("get", "list", "watch", "create", "patch"):
        assert can(kubectl, API, verb, orders, "-n", namespace)
    assert can(kubectl, API, "list", "events", "-n", namespace)
    assert not can(kubectl, API, "patch", *status, "-n", namespace)
    assert not can(kubectl, API, "update", *status, "-n", namespace)
    assert not can(kubectl, API, "create", "events", "-n", namespace)
    # The facade's rights hold only where a RoleBinding grants them.
    assert not can(kubectl, API, "list", orders, "--all-namespaces")
    assert not can(kubectl, API, "get", orders, "-n", "default")
    # The console's breakers: the operator's Leases listed, in korder-system only, never written.
    leases = "leases.coordination.k8s.io"
    assert can(kubectl, API, "list", leases, "-n", "korder-system")
    assert not can(kubectl, API, "update", leases, "-n", "korder-system")
    assert not can(kubectl, API, "list", leases, "-n", namespace)

    assert not can(kubectl, OPERATOR, "create", orders, "-n", namespace)
    for verb in ("get", "list", "watch", "patch"):
        assert can(kubectl, OPERATOR, verb, orders, "--all-namespaces")
    assert can(kubectl, OPERATOR, "patch", *status, "-n", namespace)
    assert can(kubectl, OPERATOR, "create", "events", "-n", namespace)
    assert not can(kubectl, OPERATOR, "patch", "events", "-n", namespace)
    # The Lease: in korder-system only.
    for verb in ("get", "create", "update"):
        assert can(kubectl, OPERATOR, verb, "leases.coordination.k8s.io", "-n", "korder-system")
    assert not can(kubectl, OPERATOR, "delete", "leases.coordination.k8s.io", "-n", "korder-system")
    assert not can(kubectl, OPERATOR, "get", "leases.coordination.k8s.io", "-n", namespace)
