"""``python -m korder <role>``: the container image's entrypoint.

One image serves every role; the role comes from the first argument or, when there
is none, from ``KORDER_ROLE``:

- ``api``: the REST facade (:mod:`korder.api`);
- ``operator``: the saga operator (:mod:`korder.operator`);
- ``participants``: the reference participants (:mod:`korder.participants`);
- ``healthcheck [role]``: the image's ``HEALTHCHECK`` (:mod:`korder.healthcheck`).

The role's ``main()`` runs in this process rather than in a child, so the server is
PID 1 of its container and gets SIGTERM itself (uvicorn and Kopf both stop cleanly on it).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence

from korder import healthcheck

#: Each role and the module whose ``main()`` runs it.
ROLES: dict[str, str] = {
    "api": "korder.api.__main__",
    "operator": "korder.operator.__main__",
    "participants": "korder.participants.__main__",
}
USAGE = f"usage: python -m korder {{{','.join([*ROLES, 'healthcheck'])}}} (or set KORDER_ROLE)"


class UnknownRoleError(ValueError):
    """The argument or KORDER_ROLE names no role of the image."""


def pick_role(argv: Sequence[str], environ: dict[str, str]) -> tuple[str, list[str]]:
    """The role to run and the arguments left for it: the first argument wins over KORDER_ROLE."""
    if argv:
        role, rest = argv[0], list(argv[1:])
    else:
        role, rest = environ.get("KORDER_ROLE", ""), []
    if not role:
        raise UnknownRoleError(f"no role given; {USAGE}")
    if role != "healthcheck" and role not in ROLES:
        raise UnknownRoleError(f"unknown role {role!r}; {USAGE}")
    return role, rest


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        role, rest = pick_role(args, dict(os.environ))
    except UnknownRoleError as exc:
        print(exc, file=sys.stderr)
        return 2
    if role == "healthcheck":
        return healthcheck.main(rest)
    if rest:
        print(
            f"the {role} role takes no arguments (settings are KORDER_* variables)", file=sys.stderr
        )
        return 2
    # The role's dependencies (FastAPI or Kopf) are imported only for the role that runs.
    role_main: Callable[[], object] = importlib.import_module(ROLES[role]).main
    role_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
