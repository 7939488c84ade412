"""What one call to a participant came to: four outcomes, one meaning each.

The participant clients (:mod:`korder.participant_clients.calls`) produce them from
HTTP answers; the saga (:mod:`korder.domain.saga`) decides on them. They live here,
beside :mod:`korder.constants`, because those two layers may not import each other
(the clients speak HTTP only; the domain knows nothing of HTTP), and one idea
deserves one set of names. Imports nothing of ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Succeeded:
    """The participant did it. ``answer`` is its JSON reply (ids, tracking number)."""

    answer: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejected:
    """A permanent, business answer (409 out_of_stock, 402 declined): retrying cannot help."""

    status: int
    error: str
    detail: str

    @property
    def reason(self) -> str:
        return f"{self.error}: {self.detail}"


@dataclass(frozen=True)
class Failed:
    """A transient failure (timeout, 5xx, connection refused): retrying may help."""

    reason: str


@dataclass(frozen=True)
class Deferred:
    """The call was not made: the participant's circuit breaker is open until ``retry_after``."""

    reason: str
    retry_after: float


Outcome = Succeeded | Rejected | Failed | Deferred
