"""Unit tests of the façade's routes run without authentication, as ``make run`` does.

Their subject is what a route does, not who may call it; ``test_api_access`` builds
apps with authentication on, over fakes of the API server's reviews. The settings are
read anew for each test (``get_settings`` keeps them for a process), so a test's
environment is the one its app sees.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from korder.settings import get_settings


@pytest.fixture(autouse=True)
def _unauthenticated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KORDER_ALLOW_UNAUTHENTICATED", "true")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
