"""The reference participants' durable state: one SQLite database for all three services.

Stock, reservations, charges, shipments, the idempotency records (each key's
fingerprint and first answer) and the ledgers live here, so a restarted process
on the same file replays every earlier key's first answer and repeats no effect,
as a real payment provider keeps its idempotency keys across restarts.

Why SQLite, from the standard library's :mod:`sqlite3`: it is durable (a
committed transaction survives a SIGKILL; WAL with ``synchronous=FULL`` also a
power loss), transactional (an effect, its idempotency record and its ledger
entry are written in one transaction, so a crash mid-write leaves all or
nothing), needs no server (a file on a volume), and adds no dependency.

``KORDER_PARTICIPANTS_STATE`` names the file; its default ``:memory:`` is a
database in the process's memory, so the tests, the benchmarks and ``make run``
start a fresh shop each time, as before. The manifests point it at a volume.

Concurrency: the app is async (uvicorn serves every request on one event loop),
and a commit to a file may wait for an fsync. :meth:`Store.run` therefore runs
each transaction in a worker thread (:func:`asyncio.to_thread`) on the one
connection, under a lock, so the loop never waits on the disk and two
transactions never interleave. The lock also makes "look the key up, apply the
effect, keep the answer" atomic, so two requests with one key cannot both apply.

Built by :mod:`.app`; used by :mod:`.replays`, :mod:`.ledger` and the services.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: ``PRAGMA user_version`` of the schema below; a file of another version is refused
#: rather than read wrongly.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replays (
    service TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (service, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    order_id TEXT NOT NULL,
    entry TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_by_order ON ledger (service, order_id);
CREATE TABLE IF NOT EXISTS stock (
    product TEXT PRIMARY KEY,
    units INTEGER NOT NULL CHECK (units >= 0)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    quantities TEXT NOT NULL,
    released INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS charges (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    refunded INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shipments (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    carrier TEXT NOT NULL,
    tracking_number TEXT NOT NULL
) WITHOUT ROWID;
"""


class StateError(RuntimeError):
    """The state file cannot be used (another schema version)."""


class Store:
    """One SQLite connection, used by one transaction at a time."""

    def __init__(self, path: str) -> None:
        self.path = path
        # isolation_level=None: sqlite3 opens no transaction on its own; run() says
        # BEGIN IMMEDIATE and COMMIT itself, so a read-then-write is one transaction.
        # check_same_thread=False: transactions run in worker threads, under the lock.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        try:
            self._open()
        except BaseException:
            self._db.close()
            raise

    def _open(self) -> None:
        db = self._db
        # Another process holding the file (a pod being replaced) is waited for, briefly.
        db.execute("PRAGMA busy_timeout = 5000")
        if self.path != ":memory:":
            # WAL: a commit appends to the log; FULL: and the log is synced at each
            # commit, so an answer the client got is never forgotten, even by a power loss.
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise StateError(
                f"{self.path} has schema version {version}; this korder knows {SCHEMA_VERSION}"
            )
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one transaction, here and now: committed if it returns."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = work(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one transaction in a worker thread, off the event loop."""
        return await asyncio.to_thread(self.transaction, work)

    def close(self) -> None:
        with self._lock:
            self._db.close()
