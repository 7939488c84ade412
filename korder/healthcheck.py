"""The container image's ``HEALTHCHECK``: ``python -m korder healthcheck [role]``.

Asks the role's own health endpoint on 127.0.0.1 (the port from :mod:`korder.settings`)
and exits 0 when it answers 200, 1 otherwise, as Docker and podman expect. Called by
the container engine inside the container, by :mod:`korder.__main__`; Kubernetes
ignores ``HEALTHCHECK`` and uses the probes of the manifests instead.

The role is the argument, else ``KORDER_ROLE``, else the role PID 1 was started with
(``podman run IMAGE operator`` puts it on the command line only, which the engine's
health-check process does not inherit). Only the standard library and the settings
are imported, so a check costs a fraction of a second every interval.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from korder.settings import Settings

ROLES = ("api", "operator", "participants")
TIMEOUT_SECONDS = 3.0


def health_url(role: str, settings: Settings) -> str:
    """The URL that says whether ``role`` is healthy."""
    if role == "api":
        return f"http://127.0.0.1:{settings.port}/health"
    if role == "operator":
        # Kopf's liveness endpoint: it fails when the operator's loops are stuck.
        return f"http://127.0.0.1:{settings.operator_probe_port}/healthz"
    if role == "participants":
        return f"http://127.0.0.1:{settings.participants_port}/health"
    raise ValueError(f"no health check for role {role!r}")


def role_of_command_line(cmdline: Sequence[str]) -> str | None:
    """The role in a ``python -m korder <role>`` command line (behind an init such as tini)."""
    for i, arg in enumerate(cmdline):
        if arg == "korder" and i + 1 < len(cmdline) and cmdline[i + 1] in ROLES:
            return cmdline[i + 1]
        if arg.startswith("korder.") and arg.removeprefix("korder.") in ROLES:
            return arg.removeprefix("korder.")
    return None


def detect_role(argv: Sequence[str], environ: dict[str, str], pid1_cmdline: Path) -> str | None:
    if argv:
        return argv[0]
    if environ.get("KORDER_ROLE"):
        return environ["KORDER_ROLE"]
    try:
        raw = pid1_cmdline.read_bytes()
    except OSError:
        return None
    return role_of_command_line([a.decode(errors="replace") for a in raw.split(b"\0") if a])


def check(url: str, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """None when ``url`` answers 200, else why not."""
    try:
        # The URL is built above from 127.0.0.1 and a port: never a file: or remote URL.
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            status: int = response.status
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} did not answer: {exc}"
    return None if status == 200 else f"{url} answered {status}"


def main(argv: Sequence[str]) -> int:
    role = detect_role(argv, dict(os.environ), Path("/proc/1/cmdline"))
    if role not in ROLES:
        print(f"healthcheck: no role (argument, KORDER_ROLE or PID 1): {role!r}", file=sys.stderr)
        return 1
    problem = check(health_url(role, Settings()))
    if problem:
        print(f"healthcheck: {role}: {problem}", file=sys.stderr)
        return 1
    return 0
