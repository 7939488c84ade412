"""``python -m korder.api``: serve the facade with uvicorn on PORT (default 8000)."""

from __future__ import annotations

import logging

import uvicorn

from korder import logs
from korder.api.main import create_app
from korder.settings import get_settings


def main() -> None:
    settings = get_settings()
    logs.configure(settings.log_level, component="api", fmt=settings.log_format)
    if settings.log_level != "DEBUG":
        # lightkube's transport logs every call to the API server at INFO: several lines
        # per REST request, which the access line already records once.
        logging.getLogger("httpx2").setLevel(logging.WARNING)
    # uvloop and httptools: the event loop and the HTTP parser in C, the façade's share
    # of an order's CPU on a machine where the API server wants the same cores.
    uvicorn.run(
        create_app(),
        host=settings.host,
        port=settings.port,
        log_config=None,
        # The request middleware writes each request's line, in korder's shape.
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
