"""Exponential backoff with full jitter and a cap, for retrying transient failures.

Used by :mod:`.calls` between the attempts of one call, and by the operator
between retries of a saga step. The jitter (a uniform draw between half the
exponential bound and the bound) spreads the retries of many orders that failed
together, so a participant that comes back is not hit by all of them at once,
while keeping each wait at least half its bound, so retries never bunch at zero.
"""

from __future__ import annotations

import random


def delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
    # A step failing for hours would overflow the power: cap the exponent too.
    bound = min(cap, base * 2 ** min(attempt, 32))
    return rng.uniform(bound / 2, bound)
