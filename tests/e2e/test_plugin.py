"""``kubectl korder``: the real executable against the suite's control plane and operator.

Each command is run as a user runs it (the console script ``make venv`` installs,
the admin kubeconfig as KUBECONFIG, or a ServiceAccount's with no rights, for
RBAC), and ``top`` in a real terminal under tmux, bounded and killed at the end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from korder.localcluster import system
from tests.e2e.conftest import AccountFactory, Component, Kubectl
from tests.e2e.plugin import PLUGIN, korder
from tests.support.orders import order_yaml, spec
from tests.support.waiting import wait_for

#: Over the reference payment service's limit (10,000.00): declined, compensated, Failed.
DECLINED = spec(items=[{"productId": "PROD-001", "quantity": 1, "price": "10000.01"}])


def apply(kubectl: Kubectl, namespace: str, name: str, body: dict[str, Any], tmp: Path) -> None:
    path = tmp / f"{name}.yaml"
    path.write_text(order_yaml(name, body))
    kubectl("apply", "-n", namespace, "-f", str(path))


def phase(kubectl: Kubectl, namespace: str, name: str) -> str:
    order = kubectl.json("get", "order", name, "-n", namespace)
    return str(order.get("status", {}).get("phase", ""))


def wait_phase(kubectl: Kubectl, namespace: str, name: str, wanted: str) -> None:
    wait_for(
        lambda: phase(kubectl, namespace, name) == wanted,
        timeout=60,
        what=f"{name} to reach {wanted}",
    )


@pytest.fixture
def shop(kubectl: Kubectl, operator: Component, namespace: str, tmp_path: Path) -> dict[str, str]:
    """Three orders at rest: two Confirmed (one of another customer), one Failed."""
    apply(kubectl, namespace, "ok-1", spec(), tmp_path)
    apply(kubectl, namespace, "ok-2", spec(customer={"id": "cust-2"}), tmp_path)
    apply(kubectl, namespace, "declined", DECLINED, tmp_path)
    wait_phase(kubectl, namespace, "ok-1", "Confirmed")
    wait_phase(kubectl, namespace, "ok-2", "Confirmed")
    wait_phase(kubectl, namespace, "declined", "Failed")
    return {"ok-1": "Confirmed", "ok-2": "Confirmed", "declined": "Failed"}


def rows(stdout: str) -> dict[str, list[str]]:
    """The table's rows by their NAME column (the first, or the second with -A)."""
    lines = [line.split() for line in stdout.splitlines() if line.strip()]
    header = lines[0]
    at = header.index("NAME")
    return {cells[at]: cells for cells in lines[1:]}


def test_get_lists_filters_and_prints_the_orders(
    cluster: system.Cluster, shop: dict[str, str], namespace: str
) -> None:
    listed = korder(cluster.kubeconfig, "get", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    table = rows(listed.stdout)
    assert {name: cells[1] for name, cells in table.items()} == shop
    assert table["ok-1"][2] == "44.98"
    assert table["ok-2"][3] == "cust-2"

    failed = rows(korder(cluster.kubeconfig, "get", "-n", namespace, "--phase", "Failed").stdout)
    assert list(failed) == ["declined"]
    theirs = korder(cluster.kubeconfig, "get", "-n", namespace, "--customer", "cust-2")
    assert list(rows(theirs.stdout)) == ["ok-2"]

    everywhere = korder(cluster.kubeconfig, "get", "-A")
    assert everywhere.returncode == 0, everywhere.stderr
    header = everywhere.stdout.splitlines()[0].split()
    assert header[:2] == ["NAMESPACE", "NAME"]
    assert [namespace, "declined", "Failed"] == rows(everywhere.stdout)["declined"][:3]

    as_json = korder(cluster.kubeconfig, "get", "-n", namespace, "-o", "json")
    items = json.loads(as_json.stdout)["items"]
    assert sorted(i["metadata"]["name"] for i in items) == sorted(shop)
    assert {i["kind"] for i in items} == {"Order"}
    one = yaml.safe_load(
        korder(cluster.kubeconfig, "get", "ok-1", "-n", namespace, "-o", "yaml").stdout
    )
    assert one["status"]["phase"] == "Confirmed"
    assert one["apiVersion"] == "korder.dev/v1alpha1"

    coloured = korder(cluster.kubeconfig, "get", "-n", namespace, env={"FORCE_COLOR": "1"})
    failed_line = next(line for line in coloured.stdout.splitlines() if "declined" in line)
    assert "\x1b[1;31mFailed" in failed_line, "a failed order is in bold red"


def test_history_shows_the_timeline_with_compensations_marked(
    cluster: system.Cluster, shop: dict[str, str], namespace: str
) -> None:
    shown = korder(cluster.kubeconfig, "history", "declined", "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    events = [line for line in lines[1:] if "Z " in line]  # each row has its RFC 3339 time
    assert any("PaymentDeclined" in e for e in events)
    released = next(e for e in events if "InventoryReleased" in e)
    assert released.lstrip().startswith("↩"), "a compensation is marked"
    declined = next(e for e in events if "PaymentDeclined" in e)
    assert not declined.lstrip().startswith("↩")
    assert "OrderFailed" in events[-1]
    assert "now Failed" in shown.stdout
    entries = json.loads(
        korder(cluster.kubeconfig, "history", "declined", "-n", namespace, "-o", "json").stdout
    )
    assert entries[0]["type"] == "OrderAccepted"
    assert entries[-1]["type"] == "OrderFailed"


def test_the_actions_set_the_spec_like_the_rest_api(
    cluster: system.Cluster, kubectl: Kubectl, shop: dict[str, str], namespace: str
) -> None:
    processed = korder(cluster.kubeconfig, "process", "ok-1", "-n", namespace)
    assert processed.returncode == 0, processed.stderr
    assert "process requested" in processed.stdout
    wait_phase(kubectl, namespace, "ok-1", "Processing")
    shipped = korder(cluster.kubeconfig, "fulfill", "ok-1", "--carrier", "EXPRESS", "-n", namespace)
    assert shipped.returncode == 0, shipped.stderr
    wait_phase(kubectl, namespace, "ok-1", "Fulfilled")
    order = kubectl.json("get", "order", "ok-1", "-n", namespace, "--show-managed-fields")
    assert order["status"]["shipment"]["carrier"] == "EXPRESS"
    managers = {m["manager"] for m in order["metadata"]["managedFields"]}
    assert "kubectl-korder" in managers, "the plugin's writes are its own"

    cancelled = korder(cluster.kubeconfig, "cancel", "ok-2", "-n", namespace)
    assert cancelled.returncode == 0, cancelled.stderr
    wait_phase(kubectl, namespace, "ok-2", "Cancelled")

    # What the phase refuses is refused with the domain's reason, and nothing is written.
    refused = korder(cluster.kubeconfig, "retry", "declined", "-n", namespace)
    assert refused.returncode == 1
    assert "cannot retry order declined" in refused.stderr
    assert "permanent failure" in refused.stderr
    assert "retry" not in kubectl.json("get", "order", "declined", "-n", namespace)["spec"]
    early = korder(cluster.kubeconfig, "process", "declined", "-n", namespace)
    assert early.returncode == 1
    assert "Only a Confirmed order can be processed" in early.stderr
    bad = korder(cluster.kubeconfig, "fulfill", "ok-2", "--carrier", "PIGEON", "-n", namespace)
    assert bad.returncode == 2, "a wrong flag value is a usage error"


def test_errors_are_one_clear_line_and_a_non_zero_exit(
    cluster: system.Cluster, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    missing = korder(cluster.kubeconfig, "get", "nope", "-n", namespace)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f'error: order "nope" not found in namespace "{namespace}"'
    no_context = korder(cluster.kubeconfig, "get", "--context", "elsewhere")
    assert no_context.returncode == 1
    assert "elsewhere" in no_context.stderr
    assert "Traceback" not in no_context.stderr

    # RBAC applies: a user with no rights on orders is refused, and told so.
    account = f"plugin-{uuid.uuid4().hex[:6]}"
    kubectl("create", "serviceaccount", account, "-n", namespace)
    nobody = cluster.service_account_kubeconfig(account, tmp_path / "nobody", namespace=namespace)
    refused = korder(nobody, "get", "-n", namespace)
    assert refused.returncode == 1
    assert "forbidden" in refused.stderr
    assert account in refused.stderr
    unreachable = tmp_path / "unreachable"
    config = yaml.safe_load(nobody.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    unreachable.write_text(yaml.safe_dump(config))
    down = korder(unreachable, "get")
    assert down.returncode == 1
    assert "unreachable" in down.stderr


def test_the_shipped_roles_decide_what_each_caller_may_do(
    kubectl: Kubectl, shop: dict[str, str], namespace: str, account: AccountFactory
) -> None:
    """The same identities and ClusterRoles as the façade's (test_api_access, the
    console): the plugin goes to the API server as its user, whose RBAC decides."""
    viewer = account(namespace, "plugin-viewer", "korder-order-viewer")
    editor = account(namespace, "plugin-editor", "korder-order-editor")
    listed = korder(viewer.kubeconfig, "get", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    assert set(rows(listed.stdout)) == set(shop)
    assert korder(viewer.kubeconfig, "history", "ok-1", "-n", namespace).returncode == 0

    refused = korder(viewer.kubeconfig, "cancel", "ok-2", "-n", namespace)
    assert refused.returncode == 1
    line = refused.stderr.strip()
    assert line.startswith("error: the API server refused:"), line
    assert f'User "{viewer.user}" cannot patch resource "orders"' in " ".join(line.split())
    assert "Traceback" not in refused.stderr
    assert not kubectl.json("get", "order", "ok-2", "-n", namespace)["spec"].get("cancelRequested")

    cancelled = korder(editor.kubeconfig, "cancel", "ok-2", "-n", namespace)
    assert cancelled.returncode == 0, cancelled.stderr
    wait_phase(kubectl, namespace, "ok-2", "Cancelled")


def test_top_shows_phases_throughput_and_breakers_live(
    cluster: system.Cluster, shop: dict[str, str], namespace: str
) -> None:
    once = korder(cluster.kubeconfig, "top", "-n", namespace, "--once")
    assert once.returncode == 0, once.stderr
    assert "Throughput: 2 confirmed in the last minute" in once.stdout
    # The suite's operator holds its Lease in korder-system and publishes its breakers there.
    for participant in ("inventory", "payment", "shipping"):
        assert participant in once.stdout
    assert "closed" in once.stdout

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    session = f"korder-top-{uuid.uuid4().hex[:6]}"
    command = f"KUBECONFIG={cluster.kubeconfig} {PLUGIN} top -n {namespace} --interval 0.5"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50", command], check=True
    )
    try:

        def screen() -> str:
            done = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
            )
            return done.stdout

        wait_for(lambda: "Circuit breakers" in screen(), timeout=30, what="top's first screen")
        first = screen()
        assert "Orders by phase" in first
        assert "Confirmed" in first
        assert "Failed" in first
        # It refreshes: the clock in its heading moves on (whole seconds).
        time.sleep(1.5)
        wait_for(lambda: screen() != first, timeout=10, what=f"a refresh of:\n{first}")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
