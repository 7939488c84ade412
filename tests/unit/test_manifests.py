"""Static checks of manifests/ that need no cluster (the e2e suite builds and dry-runs them).

kustomize cannot load files outside its root, so manifests/crd/bases/ holds a copy of the
generated CRD; these tests fail when the copy drifts from crds/, and when an RBAC rule
goes without the comment that says why it is there.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"


def test_the_crd_in_manifests_is_the_generated_one() -> None:
    copy = MANIFESTS / "crd" / "bases" / "korder.dev_orders.yaml"
    assert copy.read_text() == (ROOT / "crds" / "korder.dev_orders.yaml").read_text(), (
        "manifests/crd/bases/ drifted from crds/: run `make manifests`"
    )


def test_every_rbac_rule_says_why() -> None:
    files = sorted((MANIFESTS / "rbac").glob("*_role.yaml"))
    assert files
    rules = 0
    for path in files:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.startswith("- apiGroups:"):
                rules += 1
                assert lines[number - 1].startswith("#"), f"{path.name}:{number + 1}: no comment"
    documents = [d for p in files for d in yaml.safe_load_all(p.read_text()) if d and "rules" in d]
    assert rules == sum(len(d["rules"]) for d in documents)


def test_no_role_grants_wildcards() -> None:
    for path in sorted((MANIFESTS / "rbac").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            for rule in (document or {}).get("rules", []):
                for key in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[key], f"{path.name}: a wildcard in {key}"
