"""The history of a chaos run: every request a client made and what it was told.

Jepsen's shape: an operation is *invoked* and then *completes* with an answer, or
is *indeterminate* (a timeout, a dropped connection: the client cannot know
whether it took effect). The checker reasons only from what clients were told, so
an indeterminate create must be allowed to exist or not, while a 201 must mean an
order that exists, once. Written as JSON lines, one operation a line, so a failed
run can be read and re-checked (``python -m chaos --check FOLDER``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path


class Kind(StrEnum):
    """What a client asked for."""

    CREATE = "create"
    #: The same POST again, with the same Idempotency-Key and body, after an answer.
    REPLAY = "replay"
    #: An Order applied straight to the API server, as GitOps would.
    APPLY = "apply"
    UPDATE = "update"
    PROCESS = "process"
    FULFILL = "fulfill"
    CANCEL = "cancel"
    GET = "get"


@dataclass
class Op:
    """One request and its answer.

    ``status`` is the HTTP status, or None when the answer never came (``error``
    says why: a client timeout, a refused connection). ``order`` is the order's name
    as the client knows it: from the answer, or for a create with a key, the name
    the key maps to only once an answer told it.
    """

    kind: Kind
    client: int
    key: str | None
    started: float
    ended: float = 0.0
    status: int | None = None
    order: str | None = None
    uid: str | None = None
    phase: str | None = None
    error: str | None = None
    retry_after: str | None = None
    detail: str | None = None

    @property
    def indeterminate(self) -> bool:
        return self.status is None


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)

    def add(self, op: Op) -> Op:
        self.ops.append(op)
        return op

    def write(self, path: Path) -> None:
        with path.open("w") as f:
            for op in self.ops:
                f.write(json.dumps(asdict(op)) + "\n")

    @classmethod
    def read(cls, path: Path) -> History:
        ops = []
        for line in path.read_text().splitlines():
            raw = json.loads(line)
            raw["kind"] = Kind(raw["kind"])
            ops.append(Op(**raw))
        return cls(ops)
