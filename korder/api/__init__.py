"""The REST facade: the seed's HTTP API over Order resources.

Layout as the FastAPI template has it: :mod:`.main` builds the app, :mod:`.deps`
holds the dependencies as ``Annotated`` aliases, :mod:`.routes` one module per
resource, :mod:`.schemas` the request and response models, :mod:`.problems` the
RFC 9457 error responses. Beside them: :mod:`.idempotency` (the Idempotency-Key
header), :mod:`.rules` (which action each phase allows), :mod:`.waiting`
(``Prefer: wait``), :mod:`.history` (the events endpoint's merge) and
:mod:`.middleware` (body-size limit, metrics). It writes spec and annotations
only; the operator owns status. It never imports the operator.
"""
