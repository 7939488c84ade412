"""What Kopf remembers about each Order, and where: as little as our handlers need.

Installed by :func:`korder.operator.handlers.configure`. By default Kopf keeps two
things on every object it handles, each an object patch of its own:

- the *diff base*, the last handled state of the object (an annotation, rewritten
  after each handled change), from which it tells a create from an update from a
  no-op and hands handlers ``old``, ``new`` and ``diff``;
- each handler's *progress* (started, retries, delayed until), plus a marker
  annotation that says the object is Kopf-managed under our prefix.

Our handlers use neither: :func:`korder.operator.reconciling.reconcile` is level
triggered, deciding from the whole Order as it is (its status is the saga's state),
never from what changed. So a handled change costs the API server nothing here:

- :class:`GenerationDiffBase` keeps, in memory, the ``metadata.generation`` that was
  handled last. The generation moves on every spec change (the status is a
  subresource), and a spec change is the only change our saga reacts to; status
  writes, ours included, are no-ops to Kopf, as with its default diff base. After a
  restart nothing is remembered, so every Order is handled once as new: for a
  level-triggered handler that is the same as Kopf's resume, and it writes nothing
  for a settled Order;
- :class:`RetriesOnlyProgress` stores a handler's progress only while it matters,
  for a retry (its count feeds the backoff and survives a restart) and never for a
  handler that succeeded at once: Kopf would store that record and purge it in the
  same patch, and the only thing left of that patch is the marker annotation.

``@kopf.on.event`` would store nothing either, but gives up what the change
handlers bring: the retry after a delay (``kopf.TemporaryError``), the finalizer
kept until the deletion handler succeeds, and one handler at a time per object.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Final, cast

import kopf

#: Orders whose handled generation is remembered; an older one forgotten is handled
#: once more on its next event (and finds nothing to do), so this only bounds memory.
REMEMBERED: Final = 100_000


class GenerationDiffBase(kopf.DiffBaseStorage):
    """The handled ``metadata.generation`` of each Order, by UID, in this process's memory."""

    def __init__(self, limit: int = REMEMBERED) -> None:
        super().__init__()
        self._handled: OrderedDict[str, int] = OrderedDict()
        self._limit = limit

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return _essence(body.metadata.get("generation"))

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        generation = self._handled.get(body.metadata.uid or "")
        return None if generation is None else _essence(generation)

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        uid = body.metadata.uid
        if not uid:
            return
        generation = essence.get("metadata", {}).get("generation")
        self._handled[uid] = generation if isinstance(generation, int) else 0
        self._handled.move_to_end(uid)
        while len(self._handled) > self._limit:
            self._handled.popitem(last=False)


def _essence(generation: object) -> kopf.BodyEssence:
    return cast(kopf.BodyEssence, {"metadata": {"generation": generation}})


class RetriesOnlyProgress(kopf.AnnotationsProgressStorage):
    """Kopf's progress annotations, but never for a handler that succeeded at once."""

    def store(
        self,
        *,
        key: kopf.HandlerId,
        record: kopf.ProgressRecord,
        body: kopf.Body,
        patch: kopf.Patch,
    ) -> None:
        if record.get("success") and self.fetch(key=key, body=body) is None:
            return  # would be purged in this same patch: nothing to keep
        super().store(key=key, record=record, body=body, patch=patch)
