"""The Order CustomResourceDefinition, generated from the domain models.

Kubebuilder generates CRDs from Go types; korder does the same from the pydantic
models in :mod:`korder.domain.order`, so the schema has one source of truth.
``python -m korder.kube.crd`` prints the YAML that ``make manifests`` writes to
``crds/``; a unit test fails when the committed file differs from it.

Pydantic emits JSON Schema (with ``$ref``, ``anyOf`` for optional fields and
titles); Kubernetes wants a *structural* OpenAPI v3 schema (every node typed, no
refs, no ``anyOf`` of types). :func:`structural` is that translation, written here
because no maintained library does it for pydantic v2.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from korder import constants
from korder.domain.order import OrderSpec, OrderStatus

_DROP = {"title", "$defs"}

#: JSON paths the API server accepts in field selectors of Orders.
SELECTABLE_FIELDS = (".status.phase", ".spec.customer.id")


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Turn one pydantic JSON-Schema node into a structural OpenAPI v3 node."""
    node = dict(schema)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        # Keys beside the $ref (the field's own description) win over the model's.
        node = {**target, **node}
    if "anyOf" in node:
        variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"cannot express a union of {variants} structurally")
        inner = structural(variants[0], defs)
        node = {**inner, **node}
        if node.get("default", ...) is None:
            del node["default"]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = structural(value, defs)
        elif key == "additionalProperties":
            continue  # false is what a structural schema means by default
        else:
            out[key] = value
    if "properties" in out:
        out["type"] = "object"
    return dict(sorted(out.items(), key=_key_order))


def _key_order(item: tuple[str, Any]) -> tuple[int, str]:
    # description and type first, so the YAML reads like documentation.
    order = {"description": 0, "type": 1, "required": 2, "properties": 9}
    return (order.get(item[0], 5), item[0])


def _schema_of(model: type[OrderSpec] | type[OrderStatus]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def order_crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition of Order, as a dict ready for YAML."""
    spec = _schema_of(OrderSpec)
    status = _schema_of(OrderStatus)
    columns = [
        {
            "name": "Phase",
            "type": "string",
            "jsonPath": ".status.phase",
            "description": "Where the order is in its saga.",
        },
        {
            "name": "Total",
            "type": "string",
            "jsonPath": ".status.total",
            "description": "Sum of price x quantity.",
        },
        {
            "name": "Currency",
            "type": "string",
            "jsonPath": ".spec.currency",
            "priority": 1,
            "description": "ISO 4217 currency of the amounts.",
        },
        {
            "name": "Customer",
            "type": "string",
            "jsonPath": ".spec.customer.id",
            "description": "The customer's identifier.",
        },
        {
            "name": "Reason",
            "type": "string",
            "jsonPath": ".status.failureReason",
            "priority": 1,
            "description": "Why the order failed.",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": constants.CRD_NAME},
        "spec": {
            "group": constants.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": constants.KIND,
                "listKind": f"{constants.KIND}List",
                "plural": constants.PLURAL,
                "singular": constants.SINGULAR,
                "shortNames": list(constants.SHORT_NAMES),
                "categories": list(constants.CATEGORIES),
            },
            "versions": [
                {
                    "name": constants.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    # Field selectors for the REST API's filters, so the API server pages
                    # through the matching orders itself (limit + continue stay exact).
                    # The customer label is kept for kubectl users, but an order applied
                    # without it still matches by its spec.
                    "selectableFields": [{"jsonPath": path} for path in SELECTABLE_FIELDS],
                    "schema": {
                        "openAPIV3Schema": {
                            "description": "An order of a shop, driven through a saga "
                            "(reserve inventory, capture payment, confirm) by the korder "
                            "operator.",
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {
                                    "description": "The versioned schema of this object.",
                                    "type": "string",
                                },
                                "kind": {
                                    "description": "The REST resource this object represents.",
                                    "type": "string",
                                },
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


class _NoAliasDumper(yaml.SafeDumper):
    """Writes shared sub-schemas out in full: a CRD reader should not chase YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render() -> str:
    header = "# Generated by `make manifests` from korder/domain/order.py. Do not edit.\n"
    body = yaml.dump(order_crd(), Dumper=_NoAliasDumper, sort_keys=False, width=100)
    return header + body


if __name__ == "__main__":
    sys.stdout.write(render())
