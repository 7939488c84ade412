"""The committed CRD is exactly what the domain models generate."""

from __future__ import annotations

from pathlib import Path

import yaml

from korder.kube import crd

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "korder.dev_orders.yaml"


def test_committed_crd_matches_the_models() -> None:
    assert CRD_FILE.read_text() == crd.render(), (
        "crds/ drifted from korder/domain/order.py: run `make manifests`"
    )


def _walk(node: dict, path: str = "") -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    found = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        found += _walk(sub, f"{path}.{name}")
    if "items" in node:
        found += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


def test_schema_is_structural_and_documented() -> None:
    schema = crd.order_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "type" in node, f"{path} has no type"
        assert not {"$ref", "anyOf", "allOf", "oneOf", "title"} & node.keys(), path
        if path.startswith((".spec", ".status")) and not path.endswith("{}"):
            assert node.get("description"), f"{path} has no description"


def test_money_is_never_a_number() -> None:
    schema = crd.order_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    price = schema["properties"]["spec"]["properties"]["items"]["items"]["properties"]["price"]
    total = schema["properties"]["status"]["properties"]["total"]
    for node in (price, total):
        assert node["type"] == "string"
        assert "pattern" in node


def test_rendered_yaml_has_no_anchors() -> None:
    text = crd.render()
    assert "&id" not in text
    assert yaml.safe_load(text)["metadata"]["name"] == "orders.korder.dev"
