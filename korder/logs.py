"""One log shape for every korder process: JSON in a pod, coloured text on a terminal.

Called once at start-up by each entry point (the facade, the operator, the reference
participants, the tooling) through :func:`configure`; the facade's middleware and the
operator's handlers bind the context of the work at hand with :func:`scope` and
:func:`bind`, and every record logged meanwhile (ours, Kopf's, uvicorn's, lightkube's)
carries it.

A line has ``time`` (UTC, RFC 3339, milliseconds), ``level``, ``component``, ``logger``
and ``message``; then the context fields known at that point (:data:`CONTEXT_FIELDS`),
then the record's own ``extra`` fields, then ``exc_info`` (the stack) for an error.
Kopf's records name their object in a ``k8s_ref`` of their own: it comes out as the
same ``namespace``, ``order`` and ``uid`` fields.

Why the standard library's logging with python-json-logger, not structlog: every
line that matters to us is born in the standard library's logging (Kopf, uvicorn,
lightkube, asyncio, and our own modules, which use ``logging.getLogger``), so the
shape has to be made there whatever the front end; structlog would add a second way
to log, its ``ProcessorFormatter`` to bring the foreign records into its pipeline,
and a dependency, for what a filter on one handler does here (copy contextvars onto
the record). python-json-logger (already a dependency, and what Kopf's own JSON
format uses) writes the JSON; the terminal's text format is the small formatter
below, since neither library's console renderer is needed for one line a record.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

#: The context fields a line may carry, in the order they are written. Adding one is
#: adding its name here; whoever knows it binds it with scope or bind. ``trace_id`` is
#: the exception: it is whatever span is current (:func:`korder.tracing.configure`
#: sets :data:`trace_id_of`), since spans start in code that knows nothing of logs
#: (OpenTelemetry's FastAPI middleware).
CONTEXT_FIELDS = (
    "request_id",
    "idempotency_key",
    "user",
    "namespace",
    "order",
    "uid",
    "trace_id",
)

Format = Literal["auto", "text", "json"]

#: What a record carries that is not a field of ours: the standard attributes, Kopf's
#: own (its object reference becomes our fields; its settings are not for a log line).
_NOT_FIELDS = frozenset(RESERVED_ATTRS) | {"k8s_ref", "k8s_skip", "settings", "color_message"}

_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("korder_log_context")

#: The current trace's id (32 hex digits), or None; None itself while tracing is off.
trace_id_of: Callable[[], str | None] | None = None


def current() -> Mapping[str, str]:
    """The context fields bound now."""
    return _context.get({})


@contextlib.contextmanager
def scope(**fields: str | None) -> Iterator[None]:
    """A unit of work (a request, a handler call) with its own context fields.

    It starts with the fields bound around it; :func:`bind` inside it adds to this
    unit only, and everything is as before once it ends. Fields that are None are left
    out.
    """
    token = _context.set({**current(), **_checked(fields)})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: str | None) -> None:
    """Add context fields to the current unit of work, for the rest of it.

    Visible to the lines logged after this one in the same unit, its closing line
    included (a request's access line names the order a route found), since the
    unit's fields are one mapping that :func:`scope` made for it alone.
    """
    bound = _context.get(None)
    if bound is None:
        _context.set(_checked(fields))
    else:
        bound.update(_checked(fields))


def _checked(fields: Mapping[str, str | None]) -> dict[str, str]:
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"not a log context field: {', '.join(sorted(unknown))}")
    return {name: value for name, value in fields.items() if value is not None}


class ContextFields(logging.Filter):
    """Puts the context fields on each record, unless the record names them itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        ref: Any = getattr(record, "k8s_ref", None)
        if isinstance(ref, Mapping):
            for field, key in (("namespace", "namespace"), ("order", "name"), ("uid", "uid")):
                if ref.get(key) and not hasattr(record, field):
                    setattr(record, field, ref[key])
        for field, value in current().items():
            if not hasattr(record, field):
                setattr(record, field, value)
        if trace_id_of is not None and not hasattr(record, "trace_id"):
            trace_id = trace_id_of()
            if trace_id is not None:
                record.trace_id = trace_id
        return True


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's context fields (in :data:`CONTEXT_FIELDS` order), then its extras."""
    named = {f: getattr(record, f) for f in CONTEXT_FIELDS if getattr(record, f, None)}
    extras = {
        k: v
        for k, v in record.__dict__.items()
        if k not in _NOT_FIELDS and k not in named and not k.startswith("_")
    }
    return {**named, **extras}


class _Json(JsonFormatter):
    def __init__(self, component: str) -> None:
        super().__init__(reserved_attrs=list(_NOT_FIELDS))
        self.component = component

    def add_fields(
        self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_record.update(
            time=_time(record),
            level=record.levelname,
            component=self.component,
            logger=record.name,
            message=record.getMessage(),
            **_fields(record),
        )
        for key in ("exc_info", "stack_info"):
            if message_dict.get(key):
                log_record[key] = message_dict[key]


_COLOURS = {
    logging.DEBUG: "\x1b[2m",  # dim
    logging.INFO: "\x1b[32m",  # green
    logging.WARNING: "\x1b[33m",  # yellow
    logging.ERROR: "\x1b[31m",  # red
    logging.CRITICAL: "\x1b[1;31m",  # bold red
}
_RESET, _DIM = "\x1b[0m", "\x1b[2m"


class _Text(logging.Formatter):
    """``component HH:MM:SS.mmm LEVEL logger: message key=value ...``, one line a record.

    The component first, so the lines of ``make run``'s processes, which share one
    terminal, can be told apart at a glance; the level in its colour when ``colour``.
    A stack, when there is one, follows on its own lines.
    """

    def __init__(self, component: str, colour: bool) -> None:
        super().__init__()
        self.component, self.colour = component, colour

    def format(self, record: logging.LogRecord) -> str:
        level = f"{record.levelname:<7}"
        component = f"{self.component:<12}"
        if self.colour:
            colour = _COLOURS.get(record.levelno, _COLOURS[logging.ERROR])
            level, component = f"{colour}{level}{_RESET}", f"{_DIM}{component}{_RESET}"
        clock = _time(record)[11:23]
        pairs = " ".join(f"{k}={_text_value(v)}" for k, v in _fields(record).items())
        line = f"{component} {clock} {level} {record.name}: {record.getMessage()}"
        if pairs:
            line += f"  {_DIM}{pairs}{_RESET}" if self.colour else f"  {pairs}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def _text_value(value: object) -> str:
    text = str(value)
    return repr(text) if not text or any(c.isspace() or c in "\"'=" for c in text) else text


def formatter(
    component: str, fmt: Format = "auto", stream: IO[str] | None = None
) -> logging.Formatter:
    """The formatter :func:`configure` installs: text on a terminal, else JSON."""
    stream = stream or sys.stderr
    tty = stream.isatty()
    if fmt == "text" or (fmt == "auto" and tty):
        return _Text(component, colour=tty)
    return _Json(component)


def configure(level: str = "INFO", component: str = "korder", fmt: Format = "auto") -> None:
    """Send every record to stderr in korder's shape (``fmt``: see :func:`formatter`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(component, fmt, sys.stderr))
    handler.addFilter(ContextFields())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn installs its own handlers; route them through ours instead. Its access
    # log is off where korder serves HTTP: the request middleware writes that line.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
