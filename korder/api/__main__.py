"""``python -m korder.api``: serve the facade with uvicorn on PORT (default 8000)."""

from __future__ import annotations

import uvicorn

from korder import logs
from korder.api.main import create_app
from korder.settings import get_settings


def main() -> None:
    settings = get_settings()
    logs.configure(settings.log_level, component="api")
    uvicorn.run(create_app(), host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
