"""The one log shape (korder.logs): its fields, the context, Kopf's records, text and JSON."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from korder import logs


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """The root logger writing korder's JSON into a buffer, as configure sets it up."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logs.formatter("api", "json", buffer))
    handler.addFilter(logs.ContextFields())
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    yield buffer
    root.handlers[:], root.level = saved, level


def entries(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_json_line_has_the_shape_then_the_context_then_the_extras(lines: io.StringIO) -> None:
    with logs.scope(request_id="r-1", idempotency_key="k-1"):
        logs.bind(order="ord-1", namespace="shop")
        logging.getLogger("korder.test").warning("seen %s", "once", extra={"step": "x"})
    logging.getLogger("korder.test").info("outside")
    inside, outside = entries(lines)
    assert list(inside) == [
        "time", "level", "component", "logger", "message",
        "request_id", "idempotency_key", "namespace", "order", "step",
    ]  # fmt: skip
    assert inside["time"].endswith("+00:00")
    assert "T" in inside["time"]
    assert inside["level"] == "WARNING"
    assert (inside["component"], inside["logger"]) == ("api", "korder.test")
    assert inside["message"] == "seen once"
    assert (inside["request_id"], inside["order"], inside["step"]) == ("r-1", "ord-1", "x")
    assert "request_id" not in outside
    assert "order" not in outside


def test_an_explicit_field_wins_over_the_context(lines: io.StringIO) -> None:
    with logs.scope(order="from-context"):
        logging.getLogger("t").info("m", extra={"order": "explicit"})
    assert entries(lines)[0]["order"] == "explicit"


def test_kopf_object_records_come_out_with_our_field_names(lines: io.StringIO) -> None:
    ref = {"apiVersion": "korder.dev/v1alpha1", "kind": "Order", "name": "o-1",
           "uid": "u-1", "namespace": "ns"}  # fmt: skip
    settings = object()  # Kopf's OperatorSettings ride on its records too
    logging.getLogger("kopf.handlers").info(
        "Handler 'drive' succeeded.", extra={"k8s_ref": ref, "k8s_skip": True, "settings": settings}
    )
    entry = entries(lines)[0]
    assert (entry["namespace"], entry["order"], entry["uid"]) == ("ns", "o-1", "u-1")
    assert not {"k8s_ref", "k8s_skip", "settings"} & set(entry)


def test_an_error_carries_its_stack(lines: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("t").exception("failed")
    entry = entries(lines)[0]
    assert entry["level"] == "ERROR"
    assert "RuntimeError: boom" in entry["exc_info"]
    assert "Traceback" in entry["exc_info"]


def test_a_scope_is_its_own_unit_and_tasks_keep_theirs() -> None:
    async def request(rid: str) -> str:
        with logs.scope(request_id=rid):
            await asyncio.sleep(0)
            logs.bind(order=f"order-of-{rid}")
            await asyncio.sleep(0)
            return f"{logs.current()['request_id']} {logs.current()['order']}"

    async def both() -> list[str]:
        return list(await asyncio.gather(request("a"), request("b")))

    assert asyncio.run(both()) == ["a order-of-a", "b order-of-b"]
    with logs.scope(order="outer"):
        with logs.scope(request_id="inner"):
            logs.bind(order="changed")
        assert dict(logs.current()) == {"order": "outer"}
    assert dict(logs.current()) == {}


def test_an_unknown_context_field_is_refused() -> None:
    with pytest.raises(ValueError, match="not a log context field: orderid"):
        logs.bind(orderid="x")


def _record(message: str, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("korder.access", level, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


def test_text_on_a_terminal_is_one_coloured_line_prefixed_by_the_component() -> None:
    formatter = logs.formatter("operator", "auto", _Tty())
    line = formatter.format(_record("POST /orders 201", logging.WARNING, order="o 1", status=201))
    assert "\n" not in line
    assert line.startswith("\x1b[2moperator")
    assert "\x1b[33mWARNING" in line  # yellow
    assert "korder.access: POST /orders 201" in line
    assert "order='o 1' status=201" in line


def test_text_forced_without_a_terminal_has_no_colour_and_auto_is_json() -> None:
    plain = logs.formatter("api", "text", io.StringIO()).format(_record("hello", order="o-1"))
    assert plain.startswith("api ")
    assert "\x1b" not in plain
    assert plain.endswith("INFO    korder.access: hello  order=o-1")
    auto = logs.formatter("api", "auto", io.StringIO()).format(_record("hello"))
    assert json.loads(auto)["message"] == "hello"
    forced = logs.formatter("api", "json", _Tty()).format(_record("hello"))
    assert json.loads(forced)["component"] == "api"
