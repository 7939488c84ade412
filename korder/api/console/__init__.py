"""The web console of the façade: orders by phase live, an order's saga, its buttons.

Installed by :func:`korder.api.main.create_app` with :func:`install`. Server-rendered
Jinja2 templates and one small script of our own, all shipped in this package, with no
build step: a page is whole HTML that reads (and acts, through forms) without
JavaScript, and the script only swaps in the live part a server-sent event carries.
That needs no JavaScript library, so none is vendored; htmx would do the same swap with
its SSE extension, at the price of two files to keep up to date for twenty lines.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from korder.api.console import login, routes

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Mount the console's pages at /console (its login page at /console/login) and its
    files at /console/static."""
    login.install(app)
    app.include_router(routes.router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
