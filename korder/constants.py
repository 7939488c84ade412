"""Names that the Order resource, the operator and the facade must agree on.

One place for the API group, version, kind, annotation and label keys, so that a
rename is one edit. Imported by every layer; imports nothing of ours.
"""

from typing import Final

GROUP: Final = "korder.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "Order"
PLURAL: Final = "orders"
SINGULAR: Final = "order"
SHORT_NAMES: Final = ("ord",)
CATEGORIES: Final = ("korder",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

FINALIZER: Final = f"{GROUP}/saga"
#: Kopf keeps a handler's progress while it retries under this prefix, in
#: annotations, because the structural schema prunes unknown status fields.
KOPF_ANNOTATION_PREFIX: Final = GROUP

ANNOTATION_IDEMPOTENCY_KEY: Final = f"{GROUP}/idempotency-key"
ANNOTATION_REQUEST_FINGERPRINT: Final = f"{GROUP}/request-fingerprint"
#: The digest of the caller whose Idempotency-Key made the order (korder.api.access.Caller.scope).
ANNOTATION_IDEMPOTENCY_CALLER: Final = f"{GROUP}/idempotency-caller"
LABEL_CUSTOMER: Final = f"{GROUP}/customer"
#: The facade's trace context (W3C traceparent, tracestate) as JSON, written with the
#: create, so the operator's spans continue the request's trace (korder.tracing).
ANNOTATION_TRACE_CONTEXT: Final = f"{GROUP}/trace-context"

#: The field manager the facade writes spec with; the operator writes status as Kopf.
FIELD_MANAGER_API: Final = "korder-api"
