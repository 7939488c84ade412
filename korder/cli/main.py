"""The ``kubectl-korder`` executable: ``kubectl korder get``, ``history``, ``top`` and the actions.

The console script in pyproject points here (``make venv`` installs it into
``.venv/bin``); kubectl runs any ``kubectl-<name>`` on PATH as ``kubectl <name>``.
Each command connects with the user's kubeconfig (:mod:`.session`), reads or
changes Orders through the Kubernetes layer (:mod:`korder.kube`) and prints with
:mod:`.views`. Every failure a user can meet (no such order, RBAC, an API server
that does not answer, an action the order's phase refuses) is one line on stderr
and exit status 1; a wrong flag is typer's usage error (exit status 2).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
import yaml
from rich.console import Console, RenderableType
from rich.live import Live

from korder.cli import session, views
from korder.cli.session import Session, Target, Trouble
from korder.domain.actions import Action
from korder.domain.order import Carrier, Order, Phase
from korder.kube import leases, orders

app = typer.Typer(
    name="kubectl-korder",
    help="Run korder from kubectl: orders, their saga's history, retries and the live picture.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")


class Output(StrEnum):
    JSON = "json"
    YAML = "yaml"


# Every command takes kubectl's own connection flags (kubectl passes none of its own
# to a plugin), after the command as kubectl users write them.
Namespace = Annotated[
    str | None, typer.Option("--namespace", "-n", help="The namespace (default: the context's).")
]
Context = Annotated[str | None, typer.Option("--context", help="The kubeconfig context to use.")]
Kubeconfig = Annotated[
    Path | None, typer.Option("--kubeconfig", help="The kubeconfig file (default: $KUBECONFIG).")
]
OutputOption = Annotated[
    Output | None, typer.Option("--output", "-o", help="Print the Order(s) as json or yaml.")
]
AllNamespaces = Annotated[
    bool, typer.Option("--all-namespaces", "-A", help="Orders in every namespace.")
]
OrderName = Annotated[str, typer.Argument(help="The order's name.", metavar="ORDER")]


def _console(stderr: bool = False) -> Console:
    # A pipe gets no colour (rich decides) and no wrapping, like kubectl's output.
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, width=10_000)
    return console


def _run(target: Target, work: Callable[[Session], Awaitable[T]]) -> T:
    """Run ``work`` against the cluster; every failure a person can act on is one line."""

    async def main() -> T:
        connected = session.connect(target)
        try:
            return await work(connected)
        finally:
            await connected.close()

    try:
        return asyncio.run(main())
    except Trouble as exc:
        _fail(str(exc))
    except orders.Refused as exc:
        _fail(f"the API server refused: {exc.message}")
    except orders.Unavailable as exc:
        _fail(exc.message)
    except orders.KubeError as exc:
        _fail(exc.message + "".join(f"\n  {d}" for d in exc.details))


def _fail(message: str) -> NoReturn:
    _console(stderr=True).print(f"error: {message}", style="red", markup=False)
    raise typer.Exit(1)


def _print_data(data: object, output: Output) -> None:
    if output is Output.JSON:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


async def _get(s: Session, name: str) -> Order:
    try:
        return await orders.get(s.client, name, namespace=s.namespace)
    except orders.NotFound as exc:
        raise Trouble(f'order "{name}" not found in namespace "{s.namespace}"') from exc


@app.command()
def get(
    name: Annotated[str | None, typer.Argument(help="One order; all when left out.")] = None,
    all_namespaces: AllNamespaces = False,
    phase: Annotated[
        Phase | None, typer.Option("--phase", help="Only orders in this phase.")
    ] = None,
    customer: Annotated[
        str | None, typer.Option("--customer", help="Only this customer's.")
    ] = None,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    output: OutputOption = None,
) -> None:
    """List orders like kubectl get, coloured by phase (Stalled ones say why)."""
    fields = {}
    if phase is not None:
        fields["status.phase"] = str(phase)
    if customer is not None:
        fields["spec.customer.id"] = customer

    async def work(s: Session) -> tuple[list[Order], str]:
        if name is not None:
            return [await _get(s, name)], s.namespace
        where = "*" if all_namespaces else s.namespace
        snapshot = await orders.list_all(s.client, namespace=where, field_selector=fields)
        return snapshot.items, where

    found, where = _run(Target(kubeconfig, context, namespace), work)
    if output is not None:
        _print_data(views.manifest(found[0]) if name else views.manifest_list(found), output)
        return
    if not found:
        scope = "any namespace" if where == "*" else f"namespace {where}"
        _console(stderr=True).print(f"No orders found in {scope}.", markup=False)
        return
    table = views.orders_table(found, datetime.now(UTC), namespaces=all_namespaces)
    _console().print(table)


@app.command()
def history(
    name: OrderName,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    output: OutputOption = None,
) -> None:
    """The saga's timeline: each transition, when, how long it took; compensations marked ↩."""

    async def work(s: Session) -> Order:
        return await _get(s, name)

    order = _run(Target(kubeconfig, context, namespace), work)
    if output is not None:
        entries = order.status.history or []
        _print_data([e.model_dump(mode="json", exclude_none=True) for e in entries], output)
        return
    console = _console()
    console.print(views.timeline(order))
    console.print(views.timeline_summary(order), style="dim", markup=False)


def _act(
    action: Action,
    name: str,
    target: Target,
    output: Output | None,
    *,
    carrier: Carrier | None = None,
    by: str | None = None,
) -> None:
    async def work(s: Session) -> Order:
        await _get(s, name)  # a missing order is "not found", not a refusal
        who = by
        if action is Action.RETRY and who is None:
            who = await session.whoami(s)
        return await session.act(s, name, action, carrier=carrier, by=who)

    order = _run(target, work)
    if output is not None:
        _print_data(views.manifest(order), output)
        return
    what = f"{action} requested"
    if action is Action.RETRY and order.spec.retry is not None:
        asked = order.spec.retry
        what += f" (attempt {asked.attempt}, by {asked.requested_by or 'an unnamed client'})"
    _console().print(f"order.korder.dev/{name} {what}; phase {views.phase_of(order)}", markup=False)


@app.command()
def retry(
    name: OrderName,
    by: Annotated[
        str | None,
        typer.Option("--by", help="Who asks (default: your user, as the API server knows it)."),
    ] = None,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    output: OutputOption = None,
) -> None:
    """Resume a Stalled saga: the step it stalled on runs again, with a fresh deadline."""
    _act(Action.RETRY, name, Target(kubeconfig, context, namespace), output, by=by)


@app.command()
def cancel(
    name: OrderName,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    output: OutputOption = None,
) -> None:
    """Cancel the order: the saga compensates what it did."""
    _act(Action.CANCEL, name, Target(kubeconfig, context, namespace), output)


@app.command()
def process(
    name: OrderName,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    output: OutputOption = None,
) -> None:
    """Confirmed -> Processing."""
    _act(Action.PROCESS, name, Target(kubeconfig, context, namespace), output)


@app.command()
def fulfill(
    name: OrderName,
    carrier: Annotated[Carrier, typer.Option("--carrier", help="The shipping service.")],
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    output: OutputOption = None,
) -> None:
    """Processing -> Fulfilled, shipped with the carrier."""
    _act(Action.FULFILL, name, Target(kubeconfig, context, namespace), output, carrier=carrier)


@app.command()
def top(
    all_namespaces: AllNamespaces = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.5, help="Seconds between refreshes.")
    ] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Print one screen and exit.")] = False,
    operator_namespace: Annotated[
        str, typer.Option("--operator-namespace", help="Where the operator's Lease is.")
    ] = "korder-system",
    lease: Annotated[
        str, typer.Option("--lease", help="The operator's Lease.")
    ] = "korder-operator",
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Orders by phase, throughput (confirmed in the last minute) and breakers, refreshing."""

    async def screen(s: Session) -> RenderableType:
        where = "*" if all_namespaces else s.namespace
        found = (await orders.list_all(s.client, namespace=where)).items
        breakers: dict[str, str] | str
        try:
            breakers = await leases.breaker_states(s.client, operator_namespace, lease)
        except orders.KubeError as exc:
            # Orders are what the user came for; the breakers may be beyond their RBAC.
            breakers = f"unknown ({exc.message})"
        if not breakers:
            breakers = f"unknown (no operator holds the Lease {operator_namespace}/{lease})"
        label = "all namespaces" if where == "*" else f"namespace {where}"
        return views.top_screen(found, breakers, datetime.now(UTC), where=label)

    target = Target(kubeconfig, context, namespace)

    async def loop(s: Session) -> None:
        console = _console()
        if once:
            console.print(await screen(s))
            return
        with Live(await screen(s), console=console, screen=False, auto_refresh=False) as live:
            while True:
                await asyncio.sleep(interval)
                live.update(await screen(s), refresh=True)

    try:
        _run(target, loop)
    except KeyboardInterrupt:
        time.sleep(0)  # Ctrl-C is how top ends: not an error


if __name__ == "__main__":
    app()
