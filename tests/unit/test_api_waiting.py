"""Parsing ``Prefer: wait=N`` (korder.api.waiting)."""

from __future__ import annotations

import pytest

from korder.api.waiting import applied, requested_wait


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("respond-async", None),
        ("wait=5", 5),
        ("WAIT = 7", 7),
        ('wait="3"', 3),
        ("respond-async, wait=10", 10),
        ("wait=2; foo=bar", 2),
        ("wait=9999", 60),
        ("wait=-1", None),
        ("wait=abc", None),
        ("handling=lenient", None),
    ],
)
def test_requested_wait(header: str | None, seconds: int | None) -> None:
    assert requested_wait(header, ceiling=60) == seconds


def test_applied_header() -> None:
    assert applied(4) == {"Preference-Applied": "wait=4"}
