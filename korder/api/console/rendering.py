"""The console's HTML: Jinja2 templates shipped in the package, rendered on the server.

Called by the console's routes and streams (:mod:`.routes`). Autoescaping is on for
every template, so an order's text (a customer's name, a failure reason) is shown,
never run. The filters here are the formatting the templates share.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

import jinja2

from korder.domain.order import Carrier, Phase

#: Served with every console page: the browser itself refuses any script, style, image,
#: font or connection from anywhere but the façade, and inline code.
SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def seconds(value: float | None) -> str:
    """A duration for a person: 0.4 s, 12 s, 3 min 5 s."""
    if value is None:
        return "\N{EN DASH}"
    if value < 10:
        return f"{value:.1f} s".replace(".0 s", " s")
    if value < 120:
        return f"{round(value)} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest} s"


def words(phase: str) -> str:
    """A CamelCase phase as words: ReservingInventory -> Reserving inventory."""
    out = "".join(f" {c.lower()}" if c.isupper() and i else c for i, c in enumerate(phase))
    return out[:1].upper() + out[1:]


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("korder.api.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["seconds"] = seconds
    env.filters["words"] = words
    env.globals["PHASES"] = list(Phase)
    env.globals["CARRIERS"] = list(Carrier)
    return env


def render(template: str, context: Mapping[str, Any]) -> str:
    return environment().get_template(template).render(context)
