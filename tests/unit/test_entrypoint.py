"""The image's entrypoint (``python -m korder <role>``) and its health check."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from korder import __main__ as entrypoint
from korder import healthcheck
from korder.localcluster.controlplane import free_port
from korder.settings import Settings


def test_the_argument_wins_over_korder_role() -> None:
    assert entrypoint.pick_role(["api"], {"KORDER_ROLE": "operator"}) == ("api", [])


def test_korder_role_when_there_is_no_argument() -> None:
    assert entrypoint.pick_role([], {"KORDER_ROLE": "participants"}) == ("participants", [])


def test_healthcheck_keeps_its_arguments() -> None:
    assert entrypoint.pick_role(["healthcheck", "api"], {}) == ("healthcheck", ["api"])


@pytest.mark.parametrize(("argv", "env"), [([], {}), (["facade"], {}), ([], {"KORDER_ROLE": "x"})])
def test_no_or_an_unknown_role_is_refused(argv: list[str], env: dict[str, str]) -> None:
    with pytest.raises(entrypoint.UnknownRoleError, match="usage"):
        entrypoint.pick_role(argv, env)


def test_main_exits_2_on_an_unknown_role(capsys: pytest.CaptureFixture[str]) -> None:
    assert entrypoint.main(["bogus"]) == 2
    assert "unknown role 'bogus'" in capsys.readouterr().err


def test_a_role_takes_no_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert entrypoint.main(["api", "--port", "1"]) == 2
    assert "takes no arguments" in capsys.readouterr().err


def test_every_role_has_a_health_url() -> None:
    settings = Settings(PORT=9000, operator_probe_port=9001, participants_port=9002)
    assert healthcheck.health_url("api", settings) == "http://127.0.0.1:9000/health"
    assert healthcheck.health_url("operator", settings) == "http://127.0.0.1:9001/healthz"
    assert healthcheck.health_url("participants", settings) == "http://127.0.0.1:9002/health"
    assert set(healthcheck.ROLES) == set(entrypoint.ROLES)


@pytest.mark.parametrize(
    ("cmdline", "role"),
    [
        (["/opt/korder/bin/python", "-m", "korder", "operator"], "operator"),
        (["/run/podman-init", "--", "/opt/korder/bin/python", "-m", "korder", "api"], "api"),
        (["python", "-m", "korder.participants"], "participants"),
        (["/opt/korder/bin/python", "-m", "korder"], None),
        (["sh"], None),
    ],
)
def test_the_role_of_pid_1(cmdline: list[str], role: str | None) -> None:
    assert healthcheck.role_of_command_line(cmdline) == role


def test_the_role_is_argument_then_environment_then_pid_1(tmp_path: Path) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"/opt/korder/bin/python\0-m\0korder\0participants\0")
    env = {"KORDER_ROLE": "operator"}
    assert healthcheck.detect_role(["api"], env, cmdline) == "api"
    assert healthcheck.detect_role([], env, cmdline) == "operator"
    assert healthcheck.detect_role([], {}, cmdline) == "participants"
    assert healthcheck.detect_role([], {}, tmp_path / "missing") is None


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_check_passes_on_200_only(server: str) -> None:
    assert healthcheck.check(f"{server}/ok") is None
    assert healthcheck.check(f"{server}/degraded") == f"{server}/degraded answered 503"


def test_check_fails_when_nothing_listens() -> None:
    closed = f"http://127.0.0.1:{free_port()}/health"
    problem = healthcheck.check(closed, timeout=1.0)
    assert problem is not None
    assert "did not answer" in problem
