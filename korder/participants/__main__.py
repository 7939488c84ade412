"""``python -m korder.participants``: serve the reference participants on one port.

``KORDER_PARTICIPANTS_PORT`` (default 8001) and ``KORDER_PARTICIPANTS_HOST``;
``KORDER_PARTICIPANTS_STATE`` is their SQLite state (default ``:memory:``, a file
path to keep it across restarts; see :mod:`.store`). A SIGTERM shuts the app down
and closes the database.
Started by ``make run`` (:mod:`korder.localcluster.system`) and by the e2e harness.
"""

from __future__ import annotations

import uvicorn

from korder import logs
from korder.participants.app import create_app
from korder.settings import get_settings


def main() -> None:
    settings = get_settings()
    logs.configure(settings.log_level, component="participants", fmt=settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.participants_host,
        port=settings.participants_port,
        log_config=None,
        # The request middleware writes each request's line, in korder's shape.
        access_log=False,
    )


if __name__ == "__main__":
    main()
