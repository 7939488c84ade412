"""The operator's clients of the participants: HTTP, timeouts, retries, breakers, chaos.

Used by the operator alone (import-linter holds that): :mod:`.calls` makes one
participant call the safe way, :mod:`.circuitbreaker` guards each participant,
:mod:`.backoff` spaces retries, :mod:`.chaos` fails calls at random when
``CHAOS_MODE=true``, and :mod:`.metrics` exposes the breakers to Prometheus.
Knows HTTP and korder's settings; nothing of Kubernetes or the saga.
"""
