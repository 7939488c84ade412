"""The Order CRD against the real API server: install, print, explain, validate."""

from __future__ import annotations

import copy

import pytest

from tests.e2e.conftest import Kubectl
from tests.support.orders import VALID_SPEC, order_yaml, spec
from tests.support.waiting import wait_for


def test_crd_is_established(kubectl: Kubectl) -> None:
    crd = kubectl.json("get", "crd", "orders.korder.dev")
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"


def test_valid_order_from_yaml_is_accepted_and_listed(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=order_yaml("from-yaml"))
    listing = kubectl("get", "orders", "-n", namespace).stdout
    header = listing.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "TOTAL", "CUSTOMER", "AGE"]
    assert "from-yaml" in listing
    # The short name and the category reach the same resource.
    assert "from-yaml" in kubectl("get", "ord", "-n", namespace).stdout
    assert "from-yaml" in kubectl("get", "korder", "-n", namespace).stdout
    stored = kubectl.json("get", "order", "from-yaml", "-n", namespace)
    assert stored["spec"]["currency"] == "USD", "the schema's default applies"


def test_explain_reads_like_documentation(kubectl: Kubectl) -> None:
    # The API server publishes a new CRD's OpenAPI a moment after it is Established.
    def explained() -> str:
        return kubectl("explain", "order.spec.items", check=False).stdout

    out = str(wait_for(explained, what="the CRD's OpenAPI to be published"))
    assert "The products ordered, 1 to 100 lines" in out
    assert "productId" in out
    price = kubectl("explain", "order.spec.items.price").stdout
    assert "two fraction digits" in price


def _item(**changes: object) -> list[dict[str, object]]:
    item = {**copy.deepcopy(VALID_SPEC["items"][0]), **changes}
    return [item]


@pytest.mark.parametrize(
    ("case", "bad_spec", "field", "says"),
    [
        ("no items", spec(items=[]), "spec.items", "should have at least 1 items"),
        (
            "quantity 0",
            spec(items=_item(quantity=0)),
            "spec.items[0].quantity",
            "should be greater than or equal to 1",
        ),
        (
            "price with three fraction digits",
            spec(items=_item(price="1.999")),
            "spec.items[0].price",
            "should match",
        ),
        (
            "price as a float",
            spec(items=_item(price=19.99)),
            "spec.items[0].price",
            "must be of type string",
        ),
        (
            "unknown payment method",
            spec(paymentMethod="bitcoin"),
            "spec.paymentMethod",
            'Unsupported value: "bitcoin"',
        ),
        (
            "no customer",
            {k: v for k, v in VALID_SPEC.items() if k != "customer"},
            "spec.customer",
            "Required value",
        ),
    ],
)
def test_invalid_orders_are_rejected_naming_the_field(
    kubectl: Kubectl,
    namespace: str,
    case: str,
    bad_spec: dict[str, object],
    field: str,
    says: str,
) -> None:
    result = kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=order_yaml("bad", bad_spec), check=False
    )
    assert result.returncode != 0, f"{case} was accepted"
    assert field in result.stderr
    assert says in result.stderr
    assert kubectl("get", "orders", "-n", namespace, "-o", "name").stdout == ""


@pytest.mark.parametrize(
    ("case", "patch", "says"),
    [
        ("items", {"items": _item(quantity=5)}, "items cannot change"),
        ("customer", {"customer": {"id": "someone-else"}}, "customer cannot change"),
        ("payment method", {"paymentMethod": "paypal"}, "paymentMethod cannot change"),
    ],
)
def test_immutable_fields_cannot_change_after_creation(
    kubectl: Kubectl, namespace: str, case: str, patch: dict[str, object], says: str
) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=order_yaml("fixed"))
    result = kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=order_yaml("fixed", spec(**patch)), check=False
    )
    assert result.returncode != 0, f"a change of {case} was accepted"
    assert says in result.stderr


def test_cancelled_order_cannot_be_uncancelled(kubectl: Kubectl, namespace: str) -> None:
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=order_yaml("cancelled", spec(cancelRequested=True)),
    )
    result = kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=order_yaml("cancelled", spec(cancelRequested=False)),
        check=False,
    )
    assert result.returncode != 0
    assert "cannot be un-cancelled" in result.stderr


def test_notes_and_addresses_may_change(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=order_yaml("mutable"))
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=order_yaml("mutable", spec(notes="leave at the door")),
    )
    assert kubectl.json("get", "order", "mutable", "-n", namespace)["spec"]["notes"] == (
        "leave at the door"
    )


def test_creating_an_existing_name_is_already_exists(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "-n", namespace, "-f", "-", stdin=order_yaml("twice"))
    result = kubectl("create", "-n", namespace, "-f", "-", stdin=order_yaml("twice"), check=False)
    assert result.returncode != 0
    assert "AlreadyExists" in result.stderr or "already exists" in result.stderr
