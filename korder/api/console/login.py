"""Who is at the console: a Kubernetes token, pasted once, that the browser keeps.

Used by the console's routes (:mod:`.routes`), each of which takes the
:class:`Visitor` alias of what it shows (``Listing`` the orders, ``Reading`` an order,
``Watching`` for the live streams). A browser sends no ``Authorization`` header of
its own, so the console asks once, on its login page, for the same token a REST
caller sends (``kubectl create token ...``), checks it with the API server, and
hands it to the browser in a cookie. Every request after that is decided as a REST
call is (:func:`korder.api.deps.admit`: a TokenReview and a SubjectAccessReview,
both cached), and a button passes the token on to the REST route it calls
(:mod:`.acting`), which asks for its own verb: a viewer reads, and a press of
"Cancel" is refused with the permission it lacks.

The cookie is:

- ``HttpOnly``: no script reads it (the console's own needs nothing of it), so an
  injected one could not steal it either;
- ``SameSite=Strict``: the browser sends it only with requests from the console's own
  pages, so another site's page or link never acts as the visitor (the Origin check on
  every post is a second wall). The price: a link to the console from elsewhere opens
  the login page, the same tab's next click has the cookie again;
- ``Path=/console``: the REST API never sees it, and never takes a cookie (its token is
  a header), so a browser can never make a REST call on a visitor's behalf;
- ``Secure`` when the console is served over https, and without an expiry, so it ends
  with the browser's session; the API server's expiry of the token ends it sooner, and
  the next page is the login page again.

The token itself rather than a session of our own: a session needs a store that every
façade replica shares and outlives a revoked token, where the token is asked about
at the API server (within ``KORDER_AUTH_CACHE_SECONDS``) on every request, so revoking
it, or its RoleBinding, ends the console's access too. With
``KORDER_ALLOW_UNAUTHENTICATED`` (``make run``) no login is needed: a visitor without
a token is the façade, and may still log in to act as someone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from korder.api import access, deps
from korder.api.console import rendering
from korder.api.deps import AppSettings
from korder.api.problems import Problem
from korder.settings import get_settings

#: The cookie that holds the visitor's token.
COOKIE: Final = "korder-token"
#: Browsers keep a cookie of up to 4096 bytes with its name and attributes; a longer
#: token (a large OIDC one) is refused with a word on what to use instead.
MAX_COOKIE_TOKEN: Final = 3800

HEADERS: Final = {
    "Content-Security-Policy": rendering.SECURITY_POLICY,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(prefix="/console", include_in_schema=False)


def base(request: Request) -> str:
    """The console's own root, so links work behind a prefix the app is mounted under."""
    return str(request.scope.get("root_path", "")) + "/console"


def refuse_cross_site(request: Request) -> None:
    """403 for a post that does not come from a page of this host, so a page elsewhere
    cannot press the console's buttons (or log a visitor in) in their browser."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        cross = True
    else:
        origin = request.headers.get("origin")
        # No Origin: not a browser's cross-origin post (curl, or an old browser).
        cross = origin is not None and urlsplit(origin).netloc != request.headers.get("host")
    if cross:
        raise Problem(
            403,
            "cross-site-request",
            "Cross-site request",
            "The console's buttons work only from the console's own pages.",
        )


@dataclass(frozen=True)
class Visitor:
    """Who is at the console, and the token to act with (None: the façade itself)."""

    caller: access.Caller
    token: str | None


class LoginRequired(Exception):
    """Answered with the login page: no token, one the API server refuses (401), or one
    without the rights the page needs (403); ``problem`` says which, in words."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


def _visiting(verb: str) -> Any:
    """The dependency of a console route that shows what ``verb`` on orders reads."""

    async def visitor(request: Request, settings: AppSettings) -> Visitor:
        header = request.headers.get("authorization")
        token = access.bearer_token(header) if header else request.cookies.get(COOKIE)
        try:
            if token is not None and not access.is_token(token):
                raise access.unauthenticated(
                    "The console's cookie holds no token; log in again.", "invalid_token"
                )
            caller = await deps.admit(request, token, verb, settings.namespace)
        except Problem as problem:
            if problem.status in (401, 403):
                raise LoginRequired(problem) from None
            raise
        return Visitor(caller, token)

    return Depends(visitor)


Listing = Annotated[Visitor, _visiting("list")]
Reading = Annotated[Visitor, _visiting("get")]
Watching = Annotated[Visitor, _visiting("watch")]


def _next_page(request: Request, wanted: str | None) -> str:
    """Where to go after logging in: a console page the visitor asked for, else the
    orders. Only a path of the console's own, so the form is no open redirect."""
    root = base(request)
    parts = urlsplit(wanted or "")
    path = parts.path
    ours = path == root or path.startswith(root + "/")
    if ours and not parts.scheme and not parts.netloc and "//" not in path:
        return path + (f"?{parts.query}" if parts.query else "")
    return root


def page(
    request: Request,
    *,
    status: int = 200,
    message: str | None = None,
    wanted: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The login page, saying why it is shown (``message``) and where it leads."""
    html = rendering.render(
        "login.html",
        {
            "base": base(request),
            "user": None,
            "message": message,
            "next": _next_page(request, wanted),
            "namespace": get_settings().namespace,
        },
    )
    return HTMLResponse(html, status_code=status, headers={**HEADERS, **(headers or {})})


def _cookie_attributes(request: Request) -> dict[str, Any]:
    """The cookie's attributes (the module says why each), the same to set and to drop."""
    return {
        "path": base(request),
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
    }


@router.get("/login", response_class=HTMLResponse, response_model=None)
async def login_page(
    request: Request, wanted: Annotated[str, Query(alias="next", max_length=2000)] = ""
) -> HTMLResponse:
    """The login form: one field, for a Kubernetes token."""
    return page(request, wanted=wanted)


@router.post("/login", response_model=None)
async def log_in(request: Request) -> HTMLResponse | RedirectResponse:
    """Check the pasted token with the API server; keep it in the cookie if it is one."""
    refuse_cross_site(request)
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip().removeprefix("Bearer ").strip()
    wanted = (form.get("next") or [""])[0]
    if not token or not access.is_token(token):
        message = (
            "Paste a Kubernetes token, such as `kubectl create token <service-account>` prints."
        )
        return page(request, status=400, message=message, wanted=wanted)
    if len(token) > MAX_COOKIE_TOKEN:
        message = (
            f"This token is {len(token)} characters long, more than a browser cookie holds; "
            "use a ServiceAccount's (`kubectl create token <service-account>`)."
        )
        return page(request, status=400, message=message, wanted=wanted)
    gate: access.Gate = request.app.state.gate
    try:
        await gate.caller(token)
    except Problem as problem:
        return page(request, status=problem.status, message=problem.detail, wanted=wanted)
    response = RedirectResponse(_next_page(request, wanted), status_code=303)
    response.set_cookie(COOKIE, token, **_cookie_attributes(request))
    return response


@router.post("/logout", response_model=None)
async def log_out(request: Request) -> RedirectResponse:
    """Forget the token: the browser drops the cookie."""
    refuse_cross_site(request)
    response = RedirectResponse(f"{base(request)}/login", status_code=303)
    response.delete_cookie(COOKIE, **_cookie_attributes(request))
    return response


def install(app: FastAPI) -> None:
    """The login routes, and the login page as the answer to :class:`LoginRequired`."""
    app.include_router(router)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> HTMLResponse:
        # After logging in, back to the page that asked (a post's page is its order's).
        wanted = request.url.path if request.method == "GET" else None
        if wanted and request.url.query:
            wanted += "?" + request.url.query
        if wanted and wanted.endswith("/stream"):
            wanted = None
        return page(
            request,
            status=exc.problem.status,
            message=exc.problem.detail,
            wanted=wanted,
            headers=exc.problem.headers,
        )
