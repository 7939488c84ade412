"""The image, built by ``make docker-build``, run in each of its roles.

Each role answers its health endpoint, passes the image's own ``HEALTHCHECK``, runs as
the fixed non-root user and works on a read-only root filesystem; together the three
containers take an order through the saga.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx

from korder.localcluster import system
from korder.localcluster.controlplane import free_port
from tests.image.conftest import Container, Engine, unreachable_kubeconfig
from tests.support.orders import spec
from tests.support.waiting import wait_for

UID = GID = "65532"
#: Every role binds 127.0.0.1 only: the containers share the host's network.
LOCAL_ONLY = {
    "KORDER_HOST": "127.0.0.1",
    "KORDER_PARTICIPANTS_HOST": "127.0.0.1",
    "KORDER_OPERATOR_PROBE_HOST": "127.0.0.1",
}


def healthcheck(container: Container) -> tuple[int, str]:
    """The image's HEALTHCHECK, run now by the engine: its exit code and the health it recorded."""
    run = container.engine.run("healthcheck", "run", container.name, check=False)
    inspected = json.loads(container.engine.run("inspect", container.name).stdout)[0]
    return run.returncode, inspected["State"]["Health"]["Status"]


def assert_runs_restricted(container: Container) -> None:
    """Non-root (the image's UID and GID), and nothing writable outside /tmp."""
    assert container.exec("id", "-u").stdout.strip() == UID
    assert container.exec("id", "-g").stdout.strip() == GID
    status = container.exec("cat", "/proc/1/status").stdout
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [UID] * 4, "PID 1, the server, runs as the image's user"
    for path in ("/opt/korder/x", "/x", "/etc/x"):
        denied = container.exec("touch", path)
        assert denied.returncode != 0
        assert "Read-only file system" in denied.stderr
    assert container.exec("touch", "/tmp/x").returncode == 0
    pycache = container.exec("find", "/opt/korder", "-newer", "/proc/1/cmdline", "-name", "*.pyc")
    assert pycache.stdout == "", "no bytecode written at run time"


def assert_stops_cleanly(container: Container) -> None:
    """SIGTERM reaches the server, PID 1, which exits 0 before the engine's 10 s are up."""
    started = time.monotonic()
    container.engine.run("stop", container.name)
    assert time.monotonic() - started < 8
    state = json.loads(container.engine.run("inspect", container.name).stdout)[0]["State"]
    assert state["ExitCode"] == 0, container.logs()


def start_participants(engine: Engine, *role: str, env: dict[str, str] | None = None) -> str:
    port = free_port()
    container = engine.start(
        *role, env={**LOCAL_ONLY, "KORDER_PARTICIPANTS_PORT": str(port), **(env or {})}
    )
    container.wait_answers(f"http://127.0.0.1:{port}/health")
    return f"http://127.0.0.1:{port}"


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    dockerfile = Path(__file__).resolve().parents[2] / "Dockerfile"
    hadolint = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_the_image_says_what_it_is(engine: Engine) -> None:
    inspected = json.loads(engine.run("image", "inspect", engine.image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == f"{UID}:{GID}"
    assert config["Entrypoint"] == ["/opt/korder/bin/python", "-m", "korder"]
    # podman reports it beside Config, Docker inside it.
    health = inspected.get("Healthcheck") or config["Healthcheck"]
    assert health["Test"] == [
        "CMD", "/opt/korder/bin/python", "-m", "korder", "healthcheck",
    ]  # fmt: skip
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "korder"
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert len(labels["org.opencontainers.image.revision"]) == 40
    assert labels["dev.korder.image.inputs"], "make docker-build skips a build by this label"


def test_nothing_of_the_building_machine_is_in_the_image(engine: Engine) -> None:
    config = json.loads(engine.run("image", "inspect", engine.image).stdout)[0]["Config"]
    assert not [v for v in config["Env"] if v.startswith(("PIP_", "SSL_", "REQUESTS_"))]
    found = engine.run(
        "run", "--rm", "--network=host", "--read-only", "--entrypoint", "sh", engine.image, "-c",
        "ls -d /wheels /etc/pip.conf /root/.config/pip /opt/korder/bin/pip 2>/dev/null; true",
    )  # fmt: skip
    assert found.stdout == "", "the wheels, pip and any pip settings stay in the build stage"


def test_a_second_build_with_the_same_inputs_is_skipped(engine: Engine) -> None:
    """``make test`` twice does not build twice: the label of the inputs' digest matches."""
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        ["bash", str(root / "hack" / "image" / "build.sh")],
        env={**engine.env, "CONTAINER_TOOL": engine.tool, "IMG": engine.image},
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"{engine.image} is up to date" in result.stderr


def test_without_a_role_the_image_says_how_to_use_it(engine: Engine) -> None:
    result = engine.run("run", "--rm", "--network=host", "--read-only", engine.image, check=False)
    assert result.returncode == 2
    assert "usage: python -m korder {api,operator,participants,healthcheck}" in result.stderr


def test_participants_by_argument(engine: Engine) -> None:
    url = start_participants(engine, "participants")
    container = Container(engine, engine.started[-1])
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{url}/inventory/stock").json()["PROD-001"] == 1000
    assert_runs_restricted(container)
    assert healthcheck(container) == (0, "healthy")

    assert_stops_cleanly(container)
    assert "Application shutdown complete" in container.logs()


def test_participants_keep_their_state_on_a_volume_across_a_kill(
    engine: Engine, tmp_path: Path
) -> None:
    """As the manifests run them: the state file on a volume at /var/lib/korder, root read-only."""
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)  # an emptyDir is writable by the pod's user, as this is by 65532
    port = free_port()
    container = engine.start(
        "participants",
        env={
            **LOCAL_ONLY,
            "KORDER_PARTICIPANTS_PORT": str(port),
            "KORDER_PARTICIPANTS_STATE": "/var/lib/korder/participants.db",
        },
        options=["--volume", f"{state}:/var/lib/korder:rw"],
    )
    url = f"http://127.0.0.1:{port}"
    container.wait_answers(f"{url}/health")
    body = {"orderId": "o-1", "amount": "44.98", "currency": "USD", "paymentMethod": "card"}
    headers = {"Idempotency-Key": "c-1"}
    first = httpx.post(f"{url}/payment/charges", json=body, headers=headers, timeout=10.0)
    assert first.status_code == 201

    engine.run("kill", "--signal", "KILL", container.name)
    engine.run("start", container.name)
    container.wait_answers(f"{url}/health")
    again = httpx.post(f"{url}/payment/charges", json=body, headers=headers, timeout=10.0)
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(httpx.get(f"{url}/payment/ledger").json()) == 1
    assert (state / "participants.db").exists()


def test_operator_by_korder_role(engine: Engine, kubeconfig: Path) -> None:
    probe, metrics = free_port(), free_port()
    container = engine.start(
        env={
            **LOCAL_ONLY,
            "KORDER_ROLE": "operator",
            "KORDER_OPERATOR_PROBE_PORT": str(probe),
            "KORDER_OPERATOR_METRICS_PORT": str(metrics),
        },
        kubeconfig=kubeconfig,
    )
    container.wait_answers(f"http://127.0.0.1:{probe}/healthz")
    assert "korder_" in container.wait_answers(f"http://127.0.0.1:{metrics}/metrics").text
    assert_runs_restricted(container)
    assert healthcheck(container) == (0, "healthy")
    assert_stops_cleanly(container)


def test_facade_is_healthy_with_its_api_server(
    engine: Engine, kubeconfig: Path, namespace: str
) -> None:
    port = free_port()
    container = engine.start(
        "api", env={**LOCAL_ONLY, "PORT": str(port), "KORDER_NAMESPACE": namespace},
        kubeconfig=kubeconfig,
    )  # fmt: skip
    health = container.wait_answers(f"http://127.0.0.1:{port}/health")
    assert health.json() == {"status": "ok", "apiServer": "reachable"}
    assert_runs_restricted(container)
    assert healthcheck(container) == (0, "healthy")
    assert_stops_cleanly(container)


def test_the_healthcheck_fails_when_the_role_is_unhealthy(engine: Engine, kubeconfig: Path) -> None:
    port = free_port()
    container = engine.start(
        "api", env={**LOCAL_ONLY, "PORT": str(port)},
        kubeconfig=unreachable_kubeconfig(kubeconfig, free_port()),
    )  # fmt: skip

    def degraded() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5.0).status_code == 503
        except httpx.HTTPError:
            return False

    wait_for(degraded, timeout=60, what="the facade to report its API server unreachable")
    # Within the start period the engine still says "starting"; the check itself failed.
    code, status = healthcheck(container)
    assert (code, status) == (1, "starting")
    inspected = json.loads(engine.run("inspect", container.name).stdout)[0]
    last = inspected["State"]["Health"]["Log"][-1]
    assert last["ExitCode"] == 1
    assert f"healthcheck: api: http://127.0.0.1:{port}/health answered 503" in last["Output"]


def test_an_order_goes_through_the_saga_in_containers(
    engine: Engine, kubeconfig: Path, namespace: str, cluster: system.Cluster
) -> None:
    participants = start_participants(engine, env={"KORDER_ROLE": "participants"})
    probe, metrics, port = free_port(), free_port(), free_port()
    operator = engine.start(
        "operator",
        env={
            **LOCAL_ONLY,
            "KORDER_OPERATOR_PROBE_PORT": str(probe),
            "KORDER_OPERATOR_METRICS_PORT": str(metrics),
            **{
                f"KORDER_{s.upper()}_URL": f"{participants}/{s}"
                for s in ("inventory", "payment", "shipping")
            },
        },
        kubeconfig=kubeconfig,
    )
    operator.wait_answers(f"http://127.0.0.1:{probe}/healthz")
    # Who may call it is the e2e suite's subject (test_api_access); here, the image's.
    unauthenticated = {"KORDER_ALLOW_UNAUTHENTICATED": "true"}
    facade = engine.start(
        "api",
        env={**LOCAL_ONLY, **unauthenticated, "PORT": str(port), "KORDER_NAMESPACE": namespace},
        kubeconfig=kubeconfig,
    )  # fmt: skip
    facade.wait_answers(f"http://127.0.0.1:{port}/health")

    created = httpx.post(f"http://127.0.0.1:{port}/orders", json=spec(), timeout=10.0)
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]

    def confirmed() -> dict[str, object] | None:
        order: dict[str, object] = httpx.get(
            f"http://127.0.0.1:{port}/orders/{order_id}", timeout=5.0
        ).json()
        return order if order["status"] == "Confirmed" else None

    try:
        order = wait_for(confirmed, timeout=60, what=f"order {order_id} to be Confirmed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\noperator log:\n{operator.logs()}") from exc
    assert isinstance(order, dict)
    assert order["total"] == "44.98"
    # The participants' ledgers know the order by its resource's UID.
    uid = cluster.kubectl_run(
        "get", "order", order_id, "-n", namespace, "-o", "jsonpath={.metadata.uid}"
    ).stdout
    for service, effect in (("inventory", "reserve"), ("payment", "charge")):
        ledger = httpx.get(f"{participants}/{service}/ledger", params={"orderId": uid}).json()
        assert [entry["type"] for entry in ledger] == [effect], ledger
