"""The clients of a chaos run: shops talking to the façade, and a GitOps pipeline.

Each client runs order *stories* one after another until the run has made its
orders: a create (with an Idempotency-Key; some first sent with a timeout so
short that the client never sees the answer, then retried with the same key, as
a client must), sometimes the same POST replayed, and then one of the endings a
shop has: leave it Confirmed, change its address, process and fulfil it, cancel
it early or late. Some orders are expensive enough that the payment service
declines them, so compensations run too. A share of the orders is applied as a
manifest with kubectl instead, as GitOps does. Every request and its answer go
to the :class:`~chaos.history.History`.

A 503 is retried after its Retry-After, the same request with the same key: that
is the contract the façade offers while the API server is down.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from chaos.history import History, Kind, Op
from korder import constants
from korder.domain.order import Carrier, Phase

#: The reference payment service declines over 10,000.00 (KORDER_PAYMENT_DECLINE_OVER).
DECLINED_PRICE = "10500.00"
PRODUCTS = ("PROD-001", "PROD-002", "PROD-003")
#: A request that got no answer is sent again after this long (503s say their own).
RETRY_SECONDS = 0.5


@dataclass(frozen=True)
class Mix:
    """The shares of each kind of story and request (each a probability)."""

    gitops: float = 0.1
    short_timeout: float = 0.15
    replay: float = 0.2
    declined: float = 0.1
    cancel_early: float = 0.15
    cancel_late: float = 0.15
    update: float = 0.2
    fulfil: float = 0.4


@dataclass
class Workload:
    facade: str
    namespace: str
    kubectl: Path
    kubeconfig: Path
    history: History
    rng: random.Random
    mix: Mix
    orders: int
    concurrency: int
    #: The stories start spread over about this many seconds.
    spread_seconds: float
    #: A story gives up on an order not settled after this long (the checker will say).
    patience_seconds: float = 120.0
    started_at: float = 0.0

    async def run(self) -> None:
        self.started_at = time.monotonic()
        numbers = iter(range(self.orders))
        think = self.spread_seconds * self.concurrency / max(1, self.orders)
        async with httpx.AsyncClient(base_url=self.facade, timeout=15.0) as http:

            async def client(cid: int) -> None:
                rng = random.Random(self.rng.random())
                for n in numbers:
                    await asyncio.sleep(rng.uniform(0, 2 * think))
                    await Story(self, http, cid, n, rng).run()

            await asyncio.gather(*(client(c) for c in range(self.concurrency)))

    def now(self) -> float:
        return round(time.monotonic() - self.started_at, 3)


@dataclass
class Story:
    """One order's life as one client sees it."""

    load: Workload
    http: httpx.AsyncClient
    client: int
    number: int
    rng: random.Random

    async def run(self) -> None:
        mix = self.load.mix
        declined = self.rng.random() < mix.declined
        if self.rng.random() < mix.gitops:
            name = await self._apply(declined)
        else:
            name = await self._create(declined)
        if name is None:
            return
        roll = self.rng.random()
        if roll < mix.cancel_early:
            await asyncio.sleep(self.rng.uniform(0, 1.5))
            await self._act(Kind.CANCEL, name)
            return
        phase = await self._wait(name, {Phase.CONFIRMED})
        if phase != Phase.CONFIRMED:
            return
        if self.rng.random() < mix.update:
            await self._act(Kind.UPDATE, name)
        if roll < mix.cancel_early + mix.cancel_late:
            await self._act(Kind.CANCEL, name)  # after the charge: refund and release
            return
        if self.rng.random() < mix.fulfil:
            await self._act(Kind.PROCESS, name)
            if await self._wait(name, {Phase.PROCESSING}) == Phase.PROCESSING:
                if self.rng.random() < 0.2:
                    await self._act(Kind.CANCEL, name)  # still before the shipment
                else:
                    await self._act(Kind.FULFILL, name)

    # --- requests ---------------------------------------------------------------

    def _body(self, declined: bool) -> dict[str, Any]:
        product = self.rng.choice(PRODUCTS)
        price = (
            DECLINED_PRICE
            if declined
            else f"{self.rng.randint(1, 99)}.{self.rng.randint(0, 99):02d}"
        )
        return {
            "customer": {"id": f"cust-{self.client}", "email": "shop@example.com"},
            "items": [{"productId": product, "quantity": self.rng.randint(1, 3), "price": price}],
            "shippingAddress": _ADDRESS,
            "paymentMethod": "credit_card",
        }

    async def _create(self, declined: bool) -> str | None:
        key = f"chaos-{self.number}-{self.rng.getrandbits(32):08x}"
        body = self._body(declined)
        headers = {"Idempotency-Key": key}
        wait = self.rng.random() < 0.3
        if wait:
            headers["Prefer"] = "wait=10"
        short = self.rng.random() < self.load.mix.short_timeout
        op = await self._send(Kind.CREATE, "POST", "/orders", key, headers, body, short=short)
        if op.order and self.rng.random() < self.load.mix.replay:
            await self._send(Kind.REPLAY, "POST", "/orders", key, {"Idempotency-Key": key}, body)
        return op.order

    async def _act(self, kind: Kind, name: str) -> Op:
        key = f"{kind}-{name}"
        headers = {"Idempotency-Key": key}
        if kind is Kind.CANCEL:
            return await self._send(kind, "DELETE", f"/orders/{name}", key, headers)
        if kind is Kind.UPDATE:
            body = {"shippingAddress": {**_ADDRESS, "street": "1 New Street"}, "notes": "moved"}
            return await self._send(kind, "PUT", f"/orders/{name}", key, headers, body)
        if kind is Kind.FULFILL:
            body = {"carrier": self.rng.choice(list(Carrier))}
            return await self._send(kind, "POST", f"/orders/{name}/fulfill", key, headers, body)
        return await self._send(kind, "POST", f"/orders/{name}/{kind}", key, headers)

    async def _send(
        self,
        kind: Kind,
        method: str,
        path: str,
        key: str | None,
        headers: Mapping[str, str],
        body: Mapping[str, Any] | None = None,
        *,
        short: bool = False,
    ) -> Op:
        """Send until an answer that is not a 503 comes, or patience runs out.

        ``short``: the first attempt has a timeout so short the client cannot see
        the answer, whatever the server did with the request.
        """
        deadline = time.monotonic() + self.load.patience_seconds
        while True:
            op = self.load.history.add(Op(kind, self.client, key, self.load.now()))
            timeout = 0.05 if short else 15.0
            short = False
            try:
                answer = await self.http.request(
                    method, path, headers=headers, json=body, timeout=timeout
                )
            except httpx.HTTPError as exc:
                op.ended, op.error = self.load.now(), type(exc).__name__
                delay = RETRY_SECONDS
            else:
                _record(op, answer, self.load.now())
                if answer.status_code != 503:
                    return op
                delay = float(op.retry_after or RETRY_SECONDS)
            if time.monotonic() + delay > deadline:
                return op
            await asyncio.sleep(delay)

    async def _wait(self, name: str, wanted: set[Phase]) -> Phase | None:
        """Poll the order until it is in ``wanted`` or at an end; its phase then."""
        deadline = time.monotonic() + self.load.patience_seconds
        ends = {Phase.FAILED, Phase.CANCELLED, Phase.FULFILLED}
        while time.monotonic() < deadline:
            op = await self._send(Kind.GET, "GET", f"/orders/{name}", None, {})
            phase = Phase(op.phase) if op.phase else None
            if phase in wanted or phase in ends:
                return phase
            await asyncio.sleep(0.3)
        return None

    async def _apply(self, declined: bool) -> str | None:
        """``kubectl apply`` of a manifest, retried until the API server takes it."""
        name = f"gitops-{self.number}"
        manifest = {
            "apiVersion": constants.API_VERSION,
            "kind": constants.KIND,
            "metadata": {"name": name, "namespace": self.load.namespace},
            "spec": self._body(declined),
        }
        deadline = time.monotonic() + self.load.patience_seconds
        while True:
            op = self.load.history.add(Op(Kind.APPLY, self.client, None, self.load.now()))
            done = await asyncio.to_thread(
                subprocess.run,
                [
                    str(self.load.kubectl),
                    f"--kubeconfig={self.load.kubeconfig}",
                    "apply",
                    "-f",
                    "-",
                ],
                input=yaml.safe_dump(manifest),
                capture_output=True,
                text=True,
                timeout=30,
            )
            op.ended = self.load.now()
            if done.returncode == 0:
                op.status, op.order = 200, name
                return name
            op.error, op.detail = "kubectl", done.stderr.strip()[-300:]
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(1.0)


def _record(op: Op, answer: httpx.Response, now: float) -> None:
    op.ended, op.status = now, answer.status_code
    op.retry_after = answer.headers.get("Retry-After")
    try:
        payload = answer.json()
    except ValueError:
        op.detail = answer.text[:300]
        return
    if answer.is_success and isinstance(payload, dict):
        op.order, op.phase = payload.get("id"), payload.get("status")
    elif isinstance(payload, dict):
        op.detail = str(payload.get("detail") or payload.get("title"))[:300]


_ADDRESS = {
    "street": "221B Baker Street",
    "city": "London",
    "postalCode": "NW1 6XE",
    "country": "GB",
}
