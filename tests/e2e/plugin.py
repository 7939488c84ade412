"""Running the real ``kubectl-korder`` executable, as kubectl would, for the e2e tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: The console script ``make venv`` installs beside the interpreter.
PLUGIN = Path(sys.executable).parent / "kubectl-korder"


def korder(
    kubeconfig: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``kubectl korder ARGS`` with ``kubeconfig`` as the user's KUBECONFIG."""
    return subprocess.run(
        [str(PLUGIN), *args],
        env={**os.environ, "KUBECONFIG": str(kubeconfig), **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
