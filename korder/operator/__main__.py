"""``python -m korder.operator``: run the operator against the cluster in KUBECONFIG.

Watches Orders in every namespace. Standalone for now: one replica, no peering.
"""

from __future__ import annotations

import logging

import kopf

from korder.operator import handlers  # noqa: F401 - registers the handlers with Kopf
from korder.settings import get_settings


def main() -> None:
    settings = get_settings()
    kopf.configure(
        debug=settings.log_level == "DEBUG",
        log_format=kopf.LogFormat.JSON,
        log_refkey="object",
    )
    if settings.log_level != "DEBUG":
        # httpx logs every request at INFO: the status writes and participant calls
        # would drown the transitions, which are logged on their own.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    kopf.run(
        clusterwide=True,
        standalone=True,
        liveness_endpoint=(
            f"http://{settings.operator_probe_host}:{settings.operator_probe_port}/healthz"
        ),
    )


if __name__ == "__main__":
    main()
