"""Errors as ``application/problem+json`` (RFC 9457), with stable type URIs.

Every error the facade returns goes through here, so a client sees one shape:
``type``, ``title``, ``status``, ``detail``, ``requestId`` (the request's
``X-Request-ID``, :mod:`korder.serving`) and, for validation, ``errors``. An
unexpected exception is answered (500 ``internal``) and logged by the request
middleware, :class:`korder.api.middleware.RequestContext`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from korder import logs
from korder.kube import orders

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://korder.dev/problems/"
#: Seconds a client should wait before retrying when the API server is unreachable.
RETRY_AFTER_SECONDS = 5


class ProblemDocument(BaseModel):
    """An error, as RFC 9457 shapes it (for the OpenAPI document)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    requestId: str | None = None  # noqa: N815 - the JSON field's name


_PROBLEM_SCHEMA = ProblemDocument.model_json_schema()


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route: the problem document for each of ``codes``."""
    return {
        # Inline, not as "model": FastAPI would file a model under application/json.
        code: {"content": {MEDIA_TYPE: {"schema": _PROBLEM_SCHEMA}}, "description": _TEXT[code]}
        for code in codes
    }


_TEXT = {
    400: "Malformed request or Idempotency-Key",
    401: "No bearer token, or one the Kubernetes API server does not accept",
    403: "Kubernetes RBAC does not let the caller do this on orders in this namespace",
    404: "No such order (or namespace)",
    409: "Wrong phase for the action, or a concurrent change",
    412: "If-Match does not match the order's ETag",
    413: "Request body too large",
    422: "Invalid request, changed immutable field, or Idempotency-Key reused",
    503: "Kubernetes API server unreachable; retry after Retry-After seconds",
}


class Problem(Exception):
    """An error to answer with a problem document."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status, self.kind, self.title, self.detail = status, kind, title, detail
        self.headers = headers or {}
        self.extra = extra


def response(problem: Problem, instance: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + problem.kind,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        **problem.extra,
    }
    if instance:
        body["instance"] = instance
    request_id = logs.current().get("request_id")
    if request_id:
        # Also in the body: the one thing to quote when reporting an error, and a body
        # pasted into a ticket keeps it where a client's headers are long gone.
        body["requestId"] = request_id
    return JSONResponse(
        body, status_code=problem.status, headers=problem.headers, media_type=MEDIA_TYPE
    )


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    """Route FastAPI's and Starlette's errors, and our own, through problem documents."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _location(e["loc"]), "message": e["msg"]} for e in exc.errors()]
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            problem = Problem(
                400, "malformed-json", "Malformed JSON", "The request body is not valid JSON."
            )
        else:
            summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            problem = Problem(
                422,
                "validation",
                "Invalid request",
                f"The request is not valid: {summary}",
                errors=errors,
            )
        return response(problem, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {400: "malformed-body", 404: "not-found", 405: "method-not-allowed"}.get(
            exc.status_code, "http-error"
        )
        return response(
            Problem(
                exc.status_code, kind, str(exc.detail), str(exc.detail), dict(exc.headers or {})
            ),
            request.url.path,
        )

    @app.exception_handler(orders.KubeError)
    async def _kube(request: Request, exc: orders.KubeError) -> JSONResponse:
        problem = from_kube(exc)
        if isinstance(exc, orders.Refused):
            # Logged as an error: if it lasts, the façade's RBAC needs a person.
            log.error(
                "the Kubernetes API server refused the facade's ServiceAccount",
                extra={"method": request.method, "path": request.url.path, "error": exc.message},
            )
        elif problem.status >= 500:
            log.warning(
                "Kubernetes API server unavailable",
                extra={"method": request.method, "path": request.url.path, "error": exc.message},
            )
        return response(problem, request.url.path)


def from_kube(exc: orders.KubeError) -> Problem:
    """The problem to answer a Kubernetes layer failure with, when the route did not."""
    if isinstance(exc, orders.Refused):
        return Problem(
            503,
            "api-server-unavailable",
            "Service unavailable",
            "The Kubernetes API server refused this service's credentials: it may be "
            "starting (retry later), or the service is not bound in this namespace (an "
            "administrator binds the korder-api ClusterRole there). The refusal is logged.",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, orders.Unavailable):
        return Problem(
            503,
            "api-server-unavailable",
            "Service unavailable",
            "The Kubernetes API server cannot be reached; retry later.",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, orders.Invalid):
        errors = [{"field": "", "message": d} for d in exc.details] or [
            {"field": "", "message": exc.message}
        ]
        return Problem(
            422,
            "validation",
            "Invalid request",
            f"The order is not valid: {exc.message}",
            errors=errors,
        )
    if isinstance(exc, orders.NotFound):
        return Problem(404, "order-not-found", "Order not found", exc.message)
    if isinstance(exc, orders.Conflict | orders.AlreadyExists):
        return Problem(409, "conflict", "Conflict", exc.message)
    # The API server refused the request itself (a bug of ours): not the client's doing.
    raise exc
