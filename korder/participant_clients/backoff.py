"""Exponential backoff with "equal jitter" and a cap, for retrying transient failures.

Used by :mod:`.calls` between the attempts of one call (as tenacity's wait), and
by the operator between retries of a saga step. Equal jitter, in the terms of the
AWS Architecture Blog's "Exponential Backoff And Jitter": a uniform draw between
half the exponential bound and the bound. The jitter spreads the retries of many
orders that failed together, so a participant that comes back is not hit by all of
them at once; unlike full jitter (a draw from zero to the bound) each wait is at
least half its bound, so retries never bunch at zero. tenacity's own
``wait_random_exponential`` is full jitter and takes no seeded generator, which the
chaos run needs to be repeatable.
"""

from __future__ import annotations

import random


def delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
    # A step failing for hours would overflow the power: cap the exponent too.
    bound = min(cap, base * 2 ** min(attempt, 32))
    return rng.uniform(bound / 2, bound)
