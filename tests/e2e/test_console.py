"""The web console (/console) in a real headless Chromium, on the real system.

Debian's ``chromium`` driven by Selenium through Debian's ``chromedriver``
(``make browser-tools`` installs both; ``make test-console`` runs this module). The
façade, the operator and the participants are the suite's real processes; the
orders are made through the REST API, and the tests look for them in the console as
a person would: live, with no reload. Selenium Manager (which would download a
driver) is never run: the driver's path is given, and the fixture makes a call to it
fail the test.

The browser reaches nothing but this machine: every host name but 127.0.0.1 resolves
to nothing, and every other address goes to a proxy on a port where nothing listens.

Screenshots go to a temporary folder, or to ``KORDER_CONSOLE_SCREENSHOTS`` when set
(``make console-screenshots`` sets it to docs/console/, which the README shows).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.common.selenium_manager import SeleniumManager
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from tests.e2e import api
from tests.e2e.conftest import AccountFactory, Component, FacadeFactory
from tests.support.orders import spec

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: A bound on each wait for the page to show something, not a figure under test.
WAIT_SECONDS = 60
LAPTOP, PHONE = (1280, 900), (375, 812)

pytestmark = pytest.mark.e2e


def _options() -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--hide-scrollbars",  # the screenshots show the page, and the page its full width
        f"--window-size={LAPTOP[0]},{LAPTOP[1]}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--no-pings",
        # Nothing but this machine: other names do not resolve, other addresses go to a
        # proxy where nothing listens (loopback always bypasses a proxy).
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--proxy-server=http://127.0.0.1:9",
    ):
        options.add_argument(argument)
    return options


@pytest.fixture(scope="module")
def chromium() -> Iterator[webdriver.Chrome]:
    """One headless Chromium for the module's tests."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        raise AssertionError(f"{', '.join(missing)} missing: run `make browser-tools` (root)")

    def no_manager(*_args: object, **_kwargs: object) -> dict[str, str]:
        raise AssertionError("Selenium Manager was asked for a driver; it must never run")

    with mock.patch.object(SeleniumManager, "binary_paths", no_manager):
        driver = webdriver.Chrome(
            service=Service(executable_path=str(CHROMEDRIVER)), options=_options()
        )
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: webdriver.Chrome, facade: Component) -> Iterator[webdriver.Chrome]:
    """The browser, for a test with its own façade; it leaves the console before the façade
    stops (a façade waits for its open streams, as for any response under way)."""
    yield chromium
    chromium.get("about:blank")


@pytest.fixture
def shot(browser: webdriver.Chrome, tmp_path: Path) -> Callable[[str], Path]:
    """Save a screenshot of the whole page as NAME.png; returns its path."""
    folder = Path(os.environ.get("KORDER_CONSOLE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        # The whole page, not the window: Chromium's own capture beyond the viewport.
        width, height = browser.execute_script(
            "const e = document.documentElement; return [e.scrollWidth, e.scrollHeight]"
        )
        clip = {"x": 0, "y": 0, "width": width, "height": min(height, 4000), "scale": 1}
        shot = browser.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        path = folder / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        return path

    return take


def _until(browser: webdriver.Chrome, what: str, check: Callable[[webdriver.Chrome], Any]) -> Any:
    # A live update replaces the part of the page an element was found in: look again.
    return WebDriverWait(
        browser,
        WAIT_SECONDS,
        poll_frequency=0.2,
        ignored_exceptions=(StaleElementReferenceException, NoSuchElementException),
    ).until(check, message=what)


def _open(browser: webdriver.Chrome, url: str, size: tuple[int, int] = LAPTOP) -> None:
    browser.set_window_size(*size)
    browser.get(url)
    _until(browser, "the live stream to open", lambda d: d.execute_script(
        "return document.body.dataset.live === 'open'"
    ))  # fmt: skip


# Read in one script each, so a live update cannot replace the page between two reads.
def _texts(browser: webdriver.Chrome, selector: str) -> list[str]:
    script = "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText)"
    texts: list[str] = browser.execute_script(script, selector)
    return texts


def _attrs(browser: webdriver.Chrome, selector: str, name: str) -> list[str]:
    script = (
        "return [...document.querySelectorAll(arguments[0])]"
        ".map(e => e.getAttribute(arguments[1]) || '')"
    )
    values: list[str] = browser.execute_script(script, selector, name)
    return values


def _text(browser: webdriver.Chrome, selector: str) -> str:
    texts = _texts(browser, selector)
    assert texts, f"nothing on the page matches {selector}"
    return texts[0]


def _row_phase(browser: webdriver.Chrome, order_id: str) -> str | None:
    phases = _attrs(browser, f'tr[data-order="{order_id}"]', "data-phase")
    return phases[0] if phases else None


def _count(browser: webdriver.Chrome, phase: str) -> int:
    return int(_text(browser, f'li[data-phase="{phase}"] [data-count]'))


def _phase(browser: webdriver.Chrome) -> str | None:
    phases = _attrs(browser, ".summary [data-phase]", "data-phase")
    return phases[0] if phases else None


def _kinds(browser: webdriver.Chrome) -> list[str]:
    return _attrs(browser, ".timeline [data-kind]", "data-kind")


def _actions(browser: webdriver.Chrome) -> list[str]:
    return _attrs(browser, "form[data-action]", "data-action")


def _press(browser: webdriver.Chrome, action: str, *keys: str) -> None:
    """Press an action's button: with ``keys`` sent to it (Enter), or a click."""

    def press(d: webdriver.Chrome) -> bool:
        button = d.find_element(By.CSS_SELECTOR, f'form[data-action="{action}"] button')
        if keys:
            button.send_keys(*keys)
        else:
            button.click()
        return True

    _until(browser, f"the {action} button to be pressed", press)


def _declined() -> dict[str, Any]:
    """An order the reference payment service declines (over 10,000.00)."""
    items = [{"productId": "PROD-003", "name": "Grand piano", "quantity": 1, "price": "12500.00"}]
    return spec(items=items, customer={"id": "cust-2", "name": "Charles Babbage"})


def test_orders_appear_live_with_their_totals_and_filter(
    browser: webdriver.Chrome, facade: Component, operator: Component, shot: Callable[[str], Path]
) -> None:
    _open(browser, f"{facade.url}/console")
    assert _text(browser, "[data-matching]").startswith("0 orders")
    # A page that reloads loses this; the live updates must not reload it.
    browser.execute_script("window.stillTheSamePage = true")

    first = api.created(facade)["id"]
    second = api.created(facade, body=spec(customer={"id": "cust-3", "name": "Grace Hopper"}))["id"]
    failing = api.created(facade, body=_declined())["id"]
    _until(browser, "the new orders to appear", lambda d: all(
        _row_phase(d, o) for o in (first, second, failing)
    ))  # fmt: skip
    _until(browser, "two Confirmed and one Failed", lambda d: (
        _row_phase(d, first) == _row_phase(d, second) == "Confirmed"
        and _row_phase(d, failing) == "Failed"
    ))  # fmt: skip
    api.wait_for_status(facade, first, "Confirmed")
    assert httpx.post(f"{facade.url}/orders/{first}/process").status_code == 202
    _until(browser, "the processed order to move on", lambda d: (
        _row_phase(d, first) == "Processing"
    ))  # fmt: skip
    _until(browser, "the totals per phase", lambda d: (
        _count(d, "Processing") == 1 and _count(d, "Confirmed") == 1 and _count(d, "Failed") == 1
    ))  # fmt: skip
    assert "USD 44.98" in _text(browser, 'li[data-phase="Confirmed"]')
    assert browser.execute_script("return window.stillTheSamePage") is True
    assert int(_text(browser, '[data-pace="confirmed"]')) >= 2
    # The breakers, as the acting operator publishes them on its Lease.
    _until(browser, "the participants' breakers", lambda d: (
        {"inventory closed", "payment closed"} <= set(_texts(d, ".breakers li"))
    ))  # fmt: skip
    shot("orders")

    # The filter is a plain form: the customer's orders only, and its totals.
    field = browser.find_element(By.ID, "customer")
    field.send_keys("cust-3", Keys.ENTER)
    _until(browser, "the filtered list", lambda d: "customer=cust-3" in d.current_url)
    assert _row_phase(browser, second) == "Confirmed"
    assert _row_phase(browser, first) is None
    assert _count(browser, "Confirmed") == 1
    assert _count(browser, "Processing") == 0

    _open(browser, f"{facade.url}/console", PHONE)
    fits = "return document.documentElement.scrollWidth <= window.innerWidth"
    assert browser.execute_script(fits), "the page scrolls sideways on a phone"
    shot("orders-phone")


def test_an_orders_timeline_and_its_buttons(
    browser: webdriver.Chrome, facade: Component, operator: Component, shot: Callable[[str], Path]
) -> None:
    order_id = api.created(facade, **{"Prefer": "wait=30"})["id"]
    assert api.get(facade, order_id)["status"] == "Confirmed"
    _open(browser, f"{facade.url}/console/orders/{order_id}")

    kinds = _kinds(browser)
    for kind in ("SagaStarted", "InventoryReserved", "PaymentCaptured", "OrderConfirmed"):
        assert kind in kinds, kinds
    steps = dict(
        zip(
            _attrs(browser, "[data-step]", "data-step"), _texts(browser, "[data-step]"), strict=True
        )
    )
    assert "done" in steps["reserve-inventory"], steps
    assert "done" in steps["capture-payment"], steps
    items = _text(browser, "table.items")
    assert "39.98" in items, items  # 2 x 19.99
    assert "44.98" in items, items  # the order's total
    assert "OrderConfirmed" in _text(browser, "table.events")
    assert _actions(browser) == ["process", "cancel"]

    # Pressed from the keyboard: the button has the focus and Enter submits its form.
    _press(browser, "process", Keys.ENTER)
    _until(browser, "the notice", lambda d: _texts(d, "[data-notice]"))
    assert "Processing was requested" in _text(browser, "[data-notice]")
    _open(browser, browser.current_url)
    _until(browser, "Processing", lambda d: _phase(d) == "Processing")
    _until(browser, "the fulfil button", lambda d: _actions(d) == ["fulfill", "cancel"])
    shot("order")

    def choose(d: webdriver.Chrome) -> bool:
        Select(d.find_element(By.ID, "carrier")).select_by_value("EXPRESS")
        d.find_element(By.CSS_SELECTOR, 'form[data-action="fulfill"] button').click()
        return True

    _until(browser, "Fulfil pressed with EXPRESS", choose)
    _open(browser, browser.current_url)
    _until(browser, "Fulfilled", lambda d: _phase(d) == "Fulfilled")
    _until(
        browser,
        "the tracking number",
        lambda d: _texts(d, "[data-tracking]"),
    )
    assert _actions(browser) == []
    order = api.get(facade, order_id)
    assert order["status"] == "Fulfilled"
    assert order["shipment"]["carrier"] == "EXPRESS"
    assert order["shipment"]["trackingNumber"] in _text(browser, "[data-tracking]")
    _open(browser, browser.current_url, PHONE)
    fits = "return document.documentElement.scrollWidth <= window.innerWidth"
    assert browser.execute_script(fits), "the order's page scrolls sideways on a phone"
    shot("order-phone")


def test_a_declined_order_shows_its_compensation_and_reason(
    browser: webdriver.Chrome, facade: Component, operator: Component, shot: Callable[[str], Path]
) -> None:
    order_id = api.created(facade, body=_declined(), **{"Prefer": "wait=30"})["id"]
    api.wait_for_status(facade, order_id, "Failed")
    _open(browser, f"{facade.url}/console/orders/{order_id}")

    kinds = _kinds(browser)
    assert kinds.index("PaymentDeclined") < kinds.index("InventoryReleased"), kinds
    assert kinds[-1] == "OrderFailed", kinds
    released = _attrs(browser, '.timeline [data-kind="InventoryReleased"]', "class")
    assert "compensation" in released[0]
    declined = _attrs(browser, '.timeline [data-kind="PaymentDeclined"]', "class")
    assert "warning" in declined[0]
    reason = api.get(facade, order_id)["failureReason"]
    assert reason
    assert reason in _text(browser, "[data-failure]")
    assert _actions(browser) == []
    assert _texts(browser, "[data-no-actions]")
    shot("order-failed")


def test_every_asset_comes_from_the_facade_and_the_keyboard_finds_its_way(
    browser: webdriver.Chrome, facade: Component, operator: Component
) -> None:
    order_id = api.created(facade)["id"]
    for url in (f"{facade.url}/console", f"{facade.url}/console/orders/{order_id}"):
        _open(browser, url)
        loaded = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert loaded, "the page loads its stylesheet and script"
        assert all(name.startswith(facade.url + "/") for name in loaded), loaded
        styled = "return getComputedStyle(document.body).margin === '0px'"
        assert browser.execute_script(styled), "the console's stylesheet applies"
        answer = httpx.get(url)
        assert "default-src 'self'" in answer.headers["content-security-policy"]

    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to content"
    outline = browser.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid", "a focused element shows it"


def test_the_console_works_without_javascript_and_a_repeated_press_does_nothing_twice(
    facade: Component, operator: Component
) -> None:
    order_id = api.created(facade, **{"Prefer": "wait=30"})["id"]
    page = httpx.get(f"{facade.url}/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f'data-order="{order_id}"' in page.text

    press = f"{facade.url}/console/orders/{order_id}/actions/process"
    same_site = {"Origin": facade.url}
    first = httpx.post(press, data={"key": "press-1"}, headers=same_site)
    assert first.status_code == 303, first.text
    assert first.headers["location"].endswith(f"/console/orders/{order_id}?done=process")
    again = httpx.post(press, data={"key": "press-1"}, headers=same_site)
    assert again.status_code == 303, again.text
    assert again.headers["location"].endswith("&replayed=true"), "the REST API's replay"
    api.wait_for_status(facade, order_id, "Processing")

    refused = httpx.post(press, data={"key": "press-2"}, headers=same_site)
    assert refused.status_code == 409
    assert "Only a Confirmed order can be processed; this one is Processing." in refused.text

    foreign = httpx.post(press, data={"key": "press-3"}, headers={"Origin": "http://elsewhere"})
    api.assert_problem(foreign, 403, "cross-site-request")
    api.assert_problem(httpx.get(f"{facade.url}/console?phase=Shipped"), 422, "validation")
    api.assert_problem(httpx.get(f"{facade.url}/console/orders/no-such"), 404, "order-not-found")
    unknown = httpx.post(
        f"{facade.url}/console/orders/{order_id}/actions/teleport", data={"key": "k"}
    )
    api.assert_problem(unknown, 404, "not-found")


def _log_in(browser: webdriver.Chrome, token: str) -> None:
    """Paste ``token`` into the login page the browser is on, and send it."""
    field = _until(browser, "the token field", lambda d: d.find_element(By.ID, "token"))
    # Pasted at once (send_keys types a 1 KB token a key at a time).
    browser.execute_script("arguments[0].value = arguments[1]", field, token)
    field.submit()


def test_a_visitor_logs_in_with_a_token_and_acts_with_its_rights(
    chromium: webdriver.Chrome,
    start_facade: FacadeFactory,
    account: AccountFactory,
    operator: Component,
    namespace: str,
) -> None:
    facade = start_facade(KORDER_ALLOW_UNAUTHENTICATED="false")
    viewer = account(namespace, "console-viewer", "korder-order-viewer")
    editor = account(namespace, "console-editor", "korder-order-editor")
    order_id = api.created(facade, **{"Prefer": "wait=30", **editor.headers})["id"]
    page = f"{facade.url}/console/orders/{order_id}"
    try:
        chromium.set_window_size(*LAPTOP)
        # No token: the login page, which leads back to the page asked for.
        chromium.get(page)
        assert "Log in" in _text(chromium, "h1")
        _log_in(chromium, "not-a-token-of-this-cluster")
        _until(chromium, "the refusal", lambda d: _texts(d, "[data-notice]"))
        assert "does not accept this token" in _text(chromium, "[data-notice]")

        _log_in(chromium, viewer.token)
        _until(chromium, "the order's page", lambda d: _phase(d) == "Confirmed")
        assert chromium.current_url == page
        assert _text(chromium, "[data-user]") == viewer.user
        cookie = chromium.get_cookie("korder-token")
        assert cookie is not None
        assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (
            True, "Strict", "/console",
        )  # fmt: skip
        assert chromium.execute_script("return document.cookie") == "", "no script reads it"
        _until(chromium, "the live stream to open", lambda d: d.execute_script(
            "return document.body.dataset.live === 'open'"
        ))  # fmt: skip
        # A viewer reads, and the REST API (asked with the viewer's token) refuses a cancel.
        _press(chromium, "cancel")
        _until(chromium, "the refusal", lambda d: _texts(d, "[data-notice]"))
        refusal = _text(chromium, "[data-notice]")
        assert f'User "{viewer.user}" cannot delete resource' in refusal, refusal
        assert api.get(facade, order_id, editor.headers)["status"] == "Confirmed"

        # Logged out, then in as an editor: the same button cancels.
        chromium.find_element(By.CSS_SELECTOR, "form.who button").click()
        _until(chromium, "the login page", lambda d: "Log in" in _text(d, "h1"))
        assert chromium.get_cookie("korder-token") is None
        _log_in(chromium, editor.token)
        _until(chromium, "the orders", lambda d: _texts(d, "[data-user]") == [editor.user])
        chromium.get(page)
        _press(chromium, "cancel")
        _until(chromium, "the notice", lambda d: _texts(d, "[data-notice]"))
        assert "Cancellation was requested" in _text(chromium, "[data-notice]")
        api.wait_for_status(facade, order_id, "Cancelled", headers=editor.headers)
    finally:
        # The browser is the module's: no cookie of this test's may reach the next façade.
        chromium.delete_all_cookies()
        chromium.get("about:blank")
