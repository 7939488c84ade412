"""The Postman collection, run by newman against the whole system.

``make test-postman`` installs newman from package.json/package-lock.json into
node_modules and runs this file; ``make test-e2e`` leaves it out, so the suite
needs no Node.js tooling. The collection gets the facade's URL as ``baseUrl``;
the test namespace is fresh, as for every e2e test.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.e2e.conftest import Component, Participants

REPO = Path(__file__).resolve().parents[2]
NEWMAN = REPO / "node_modules" / ".bin" / "newman"
POSTMAN = REPO / "postman"


def test_postman_collection_runs_green(
    operator: Component, participants: Participants, facade: Component, tmp_path: Path
) -> None:
    assert NEWMAN.exists(), "newman is not installed: `make test-postman` installs it (npm ci)"
    result = subprocess.run(
        [
            str(NEWMAN),
            "run",
            str(POSTMAN / "OrderManagementAPI.postman_collection.json"),
            "--environment",
            str(POSTMAN / "korder.postman_environment.json"),
            "--env-var",
            f"baseUrl={facade.url}",
            "--reporters",
            "cli,json",
            "--reporter-json-export",
            str(tmp_path / "newman.json"),
            "--color",
            "off",
            "--timeout-request",
            "90000",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-2000:]
    # newman exits 0 on an empty run too: make sure every request ran and asserted.
    stats = json.loads((tmp_path / "newman.json").read_text())["run"]["stats"]
    assert stats["requests"]["failed"] == 0
    assert stats["assertions"]["failed"] == 0
    assert stats["requests"]["total"] >= 30
    assert stats["assertions"]["total"] >= 60
