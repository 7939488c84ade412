"""Who may call the façade: tokens and permissions as the API server's reviews decide.

The reviews (:mod:`korder.kube.reviews`) are replaced by fakes that count their calls;
the e2e suite (``tests/e2e/test_api_access.py``) has the real API server answer them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from korder import logs
from korder.api import access
from korder.api.main import create_app
from korder.api.problems import Problem
from korder.kube import orders as kube_orders
from korder.kube import reviews
from korder.kube.reviews import Identity, Verdict
from tests.unit.test_api_actions import STOPPED, FakeKube

ALICE = Identity("alice@example.com", uid="uid-alice", groups=("shop-devs",))


class FakeReviews:
    """The API server's answers: known tokens, and the (user, verb, namespace) allowed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tokens: dict[str, Identity] = {"alice-token": ALICE}
        self.allowed: set[tuple[str, str, str | None]] = set()
        self.token_reviews = 0
        self.access_reviews = 0

        async def review_token(_client: object, token: str) -> Identity | None:
            self.token_reviews += 1
            return self.tokens.get(token)

        async def review_access(
            _client: object, identity: Identity, *, verb: str, namespace: str | None, **_: Any
        ) -> Verdict:
            self.access_reviews += 1
            if (identity.username, verb, namespace) in self.allowed:
                return Verdict(True)
            return Verdict(False, "no RBAC policy matched")

        monkeypatch.setattr(reviews, "review_token", review_token)
        monkeypatch.setattr(reviews, "review_access", review_access)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeReviews:
    return FakeReviews(monkeypatch)


def _gate(allow: bool = False, seconds: float = 10.0) -> access.Gate:
    return access.Gate(lambda: None, allow_unauthenticated=allow, cache_seconds=seconds)  # type: ignore[arg-type, return-value]


def test_bearer_header_parsing() -> None:
    assert access.bearer_token(None) is None
    assert access.bearer_token("Bearer abc.DEF-_~+/=") == "abc.DEF-_~+/="
    assert access.bearer_token("bearer   tok") == "tok"
    for bad in ("Basic YTpi", "Bearer", "Bearer a b", "Bearer " + "x" * 20_000, "Bearer é"):
        with pytest.raises(Problem) as caught:
            access.bearer_token(bad)
        assert caught.value.status == 401
        assert 'error="invalid_request"' in caught.value.headers["WWW-Authenticate"]


def test_no_token_is_401_unless_unauthenticated_use_is_allowed(fake: FakeReviews) -> None:
    with pytest.raises(Problem) as caught:
        asyncio.run(_gate().caller(None))
    assert caught.value.status == 401
    assert caught.value.headers == {"WWW-Authenticate": 'Bearer realm="korder"'}
    assert asyncio.run(_gate(allow=True).caller(None)) is access.NOBODY
    assert fake.token_reviews == 0


def test_a_token_is_reviewed_once_per_cache_time_even_when_refused(fake: FakeReviews) -> None:
    gate = _gate(seconds=0.2)

    async def twice(token: str) -> list[access.Caller | int]:
        results: list[access.Caller | int] = []
        for _ in range(2):
            try:
                results.append(await gate.caller(token))
            except Problem as exc:
                results.append(exc.status)
        return results

    assert asyncio.run(twice("alice-token")) == [access.Caller(ALICE)] * 2
    assert asyncio.run(twice("forged")) == [401, 401]
    assert fake.token_reviews == 2, "one review per token, the refusal cached too"
    time.sleep(0.25)
    asyncio.run(twice("alice-token"))
    assert fake.token_reviews == 3, "reviewed again once the answer expired"


def test_permission_is_asked_of_the_authorizer_and_cached(fake: FakeReviews) -> None:
    gate, alice = _gate(), access.Caller(ALICE)
    fake.allowed.add((ALICE.username, "get", "shop"))
    asyncio.run(gate.require(alice, "get", "shop"))
    asyncio.run(gate.require(alice, "get", "shop"))
    assert fake.access_reviews == 1
    with pytest.raises(Problem) as caught:
        asyncio.run(gate.require(alice, "create", "shop"))
    problem = caught.value
    assert problem.status == 403
    assert problem.extra["missing"] == {
        "verb": "create", "group": "korder.dev", "resource": "orders", "namespace": "shop",
    }  # fmt: skip
    assert "alice@example.com" in problem.detail
    assert "no RBAC policy matched" in problem.detail
    with pytest.raises(Problem) as across:
        asyncio.run(gate.require(alice, "list", None))
    assert "at the cluster scope" in across.value.detail
    # Nobody (unauthenticated local use) is the façade itself: no review.
    asyncio.run(gate.require(access.NOBODY, "delete", "shop"))
    assert fake.access_reviews == 3


def test_a_callers_scope_is_a_digest_that_names_nobody() -> None:
    assert access.NOBODY.scope == ""
    alice = access.Caller(ALICE).scope
    assert len(alice) == 32
    assert "alice" not in alice
    renamed = access.Caller(Identity("alice@example.com", uid="uid-other")).scope
    assert renamed != alice, "a new user of the same name is another caller"
    no_uid = access.Caller(Identity("alice@example.com")).scope
    assert no_uid not in (alice, "")


@pytest.fixture
def app_client(monkeypatch: pytest.MonkeyPatch, fake: FakeReviews) -> tuple[TestClient, FakeKube]:
    monkeypatch.setenv("KORDER_ALLOW_UNAUTHENTICATED", "false")
    monkeypatch.setenv("KORDER_NAMESPACE", "shop")
    app = create_app()
    kube = FakeKube()
    app.state.kube = kube
    return TestClient(app), kube


def test_routes_ask_for_their_verb_in_their_namespace(
    app_client: tuple[TestClient, FakeKube], fake: FakeReviews
) -> None:
    client, kube = app_client
    kube.put("ord-1", "Confirmed")
    bearer = {"Authorization": "Bearer alice-token"}
    assert client.get("/orders/ord-1").status_code == 401
    fake.allowed.add((ALICE.username, "get", "shop"))
    assert client.get("/orders/ord-1", headers=bearer).status_code == 200
    # The tenant route asks about its own namespace.
    other = client.get("/namespaces/other/orders/ord-1", headers=bearer)
    assert other.json()["missing"] == {
        "verb": "get", "group": "korder.dev", "resource": "orders", "namespace": "other",
    }  # fmt: skip
    assert client.get("/namespaces/Not_A_Name/orders/ord-1", headers=bearer).status_code == 404
    # Each action its verb: process patches, cancel deletes.
    assert client.post("/orders/ord-1/process", headers=bearer).json()["missing"]["verb"] == (
        "patch"
    )
    assert client.delete("/orders/ord-1", headers=bearer).json()["missing"]["verb"] == "delete"


def test_a_retry_records_the_authenticated_caller_not_the_body(
    app_client: tuple[TestClient, FakeKube], fake: FakeReviews
) -> None:
    client, kube = app_client
    kube.put("ord-1", "ProcessingPayment")
    kube.objects["ord-1"]["status"]["conditions"] = [STOPPED]
    fake.allowed.add((ALICE.username, "patch", "shop"))
    answer = client.post(
        "/orders/ord-1/retry",
        json={"requestedBy": "someone-else"},
        headers={"Authorization": "Bearer alice-token"},
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["retry"]["requestedBy"] == "alice@example.com"


def test_the_access_line_names_the_caller_never_the_token(
    app_client: tuple[TestClient, FakeKube], fake: FakeReviews, caplog: pytest.LogCaptureFixture
) -> None:
    client, kube = app_client
    kube.put("ord-1", "Confirmed")
    fake.allowed.add((ALICE.username, "get", "shop"))
    caplog.handler.addFilter(logs.ContextFields())
    with caplog.at_level(logging.INFO):
        client.get("/orders/ord-1", headers={"Authorization": "Bearer alice-token"})
    (line,) = [r for r in caplog.records if r.name == "korder.access"]
    assert getattr(line, "user", None) == "alice@example.com"
    assert "alice-token" not in caplog.text
    assert not [r for r in caplog.records if "alice-token" in str(r.__dict__)]


def test_the_console_asks_for_a_token_and_keeps_it_in_a_strict_cookie(
    app_client: tuple[TestClient, FakeKube],
) -> None:
    client, _ = app_client
    closed = client.get("/console?phase=Failed")
    assert closed.status_code == 401
    assert closed.headers["www-authenticate"] == 'Bearer realm="korder"'
    assert closed.headers["content-type"].startswith("text/html")
    assert 'name="token"' in closed.text
    assert 'name="next" value="/console?phase=Failed"' in closed.text

    refused = client.post("/console/login", data={"token": "forged", "next": "/console"})
    assert refused.status_code == 401
    assert "does not accept this token" in refused.text
    assert "set-cookie" not in refused.headers
    assert client.post("/console/login", data={"token": "not a token"}).status_code == 400

    answer = client.post(
        "/console/login",
        data={"token": " Bearer alice-token\n", "next": "/console/orders/ord-1"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/orders/ord-1"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("korder-token=alice-token;")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path=/console", "samesite=strict"} <= attributes
    assert "secure" not in attributes, "plain http here; Secure only over https"


@pytest.mark.parametrize("wanted", ["https://elsewhere.example/", "//elsewhere.example", "/orders"])
def test_the_login_form_leads_only_to_the_consoles_own_pages(
    app_client: tuple[TestClient, FakeKube], wanted: str
) -> None:
    client, _ = app_client
    answer = client.post(
        "/console/login", data={"token": "alice-token", "next": wanted}, follow_redirects=False
    )
    assert answer.headers["location"] == "/console"


def test_the_login_and_logout_forms_refuse_another_sites_posts(
    app_client: tuple[TestClient, FakeKube],
) -> None:
    client, _ = app_client
    elsewhere = {"Origin": "https://elsewhere.example"}
    assert (
        client.post("/console/login", data={"token": "alice-token"}, headers=elsewhere).status_code
        == 403
    )
    assert client.post("/console/logout", headers=elsewhere).status_code == 403
    out = client.post("/console/logout", follow_redirects=False)
    assert out.status_code == 303
    assert out.headers["set-cookie"].startswith('korder-token="";')


def test_the_console_reads_and_acts_with_the_visitors_rights(
    app_client: tuple[TestClient, FakeKube], fake: FakeReviews, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, kube = app_client
    kube.put("ord-1", "Confirmed")

    async def no_events(*_args: object, **_kwargs: object) -> list[object]:
        return []

    monkeypatch.setattr(kube_orders, "events_of", no_events)
    # No caching, so each grant below counts at once.
    client.app.state.gate = access.Gate(  # type: ignore[attr-defined]
        lambda: kube,  # type: ignore[arg-type, return-value]
        allow_unauthenticated=False,
        cache_seconds=0,
    )
    client.cookies.set("korder-token", "alice-token", path="/console")
    # No get: the login page again, saying what is missing.
    denied = client.get("/console/orders/ord-1")
    assert denied.status_code == 403
    assert "cannot get resource" in denied.text
    fake.allowed.add((ALICE.username, "get", "shop"))
    page = client.get("/console/orders/ord-1")
    assert page.status_code == 200, page.text
    assert "data-user>alice@example.com<" in page.text, "the header names who is logged in"
    # Get but no delete: the REST route, called with alice's token, refuses the cancel.
    cancel = client.post(
        "/console/orders/ord-1/actions/cancel", data={"key": "k-1"}, follow_redirects=False
    )
    assert cancel.status_code == 403
    assert "cannot delete resource" in cancel.text
    assert "cancelRequested" not in kube.objects["ord-1"]["spec"], "nothing was written"
    fake.allowed.add((ALICE.username, "delete", "shop"))
    cancelled = client.post(
        "/console/orders/ord-1/actions/cancel", data={"key": "k-1"}, follow_redirects=False
    )
    assert cancelled.status_code == 303, cancelled.text
    assert kube.objects["ord-1"]["spec"]["cancelRequested"] is True
    # A cookie that cannot hold a token is the login page, not an error.
    client.cookies.set("korder-token", "a b", path="/console")
    assert client.get("/console/orders/ord-1").status_code == 401
