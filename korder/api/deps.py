"""FastAPI dependencies, as ``Annotated`` aliases the routes take as parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from lightkube import AsyncClient

from korder.settings import Settings, get_settings


def _kube(request: Request) -> AsyncClient:
    client: AsyncClient = request.app.state.kube
    return client


Kube = Annotated[AsyncClient, Depends(_kube)]
AppSettings = Annotated[Settings, Depends(get_settings)]
