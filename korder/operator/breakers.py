"""The breaker board: this replica's circuit breaker states, published on its Lease.

The breakers live in the operator's memory (:mod:`korder.participant_clients`); a
person running ``kubectl korder top`` (or the console) has no way into that memory,
and a metric needs a Prometheus. So the leading replica publishes them where any
client of the API server can read them: the annotation
:data:`korder.kube.leases.BREAKERS_ANNOTATION` on the Lease it holds, read back by
:func:`korder.kube.leases.breaker_states`. A transition is rare, and it rides on the
leader's own Lease write (:meth:`korder.operator.leadership.Elector.publish`), so it
costs at most one write and never races a renewal.

Built by the entry point (:mod:`.__main__`) beside the electors; the Kopf start-up
handler (:mod:`.handlers`) hands it the participants once they exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from korder.kube import leases
from korder.participant_clients import calls, circuitbreaker

_LABELS = {
    circuitbreaker.State.CLOSED: "closed",
    circuitbreaker.State.HALF_OPEN: "half-open",
    circuitbreaker.State.OPEN: "open",
}


class Board:
    """The states to publish, and who to tell when one changes."""

    def __init__(self) -> None:
        self._states: dict[str, str] = {}
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def watch(self, participants: calls.Participants) -> None:
        """Follow every participant's breaker from now on, starting from its state now."""
        for name, participant in participants.by_name.items():
            self._states[name] = _LABELS[participant.breaker.state()]
            participant.breaker.add_listener(self._moved)
        self._changed()

    def annotations(self) -> dict[str, str]:
        """The Lease annotation that says the states: a JSON object, sorted."""
        return {
            leases.BREAKERS_ANNOTATION: json.dumps(
                self._states, sort_keys=True, separators=(",", ":")
            )
        }

    def _moved(self, name: str, _before: circuitbreaker.State, after: circuitbreaker.State) -> None:
        self._states[name] = _LABELS[after]
        self._changed()

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()
