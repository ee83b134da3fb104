"""The durable webhook queue: a SQLite file of its own beside the skills DB
(`<skills db>.webhooks.sqlite3`), never in the skills schema, which upstream's migrations own.

It holds two things, each changed in one transaction with the other:
- `delivery`: the events accepted for each endpoint and not yet delivered, oldest first, with
  their webhook-id, body, attempts so far and when the next attempt is due;
- `active_anomaly`: the anomaly set the queued events describe, so that after a restart the
  first snapshot's set is compared with what was announced before, instead of announcing it all
  again or missing a resolution that happened while the server was down.

WAL with synchronous=FULL: an event whose accept() returned survives SIGKILL and power loss.
Used from the asyncio thread only; every statement binds its parameters.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Delivery", "WebhookStore", "store_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS delivery (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS delivery_by_endpoint ON delivery (endpoint, id);
CREATE TABLE IF NOT EXISTS active_anomaly (
    skill_name TEXT NOT NULL,
    anomaly_type TEXT NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (skill_name, anomaly_type)
);
"""


def store_path(db_path: Path) -> Path:
    """Where the webhook queue of the skills DB at db_path lives."""
    return db_path.with_name(db_path.name + ".webhooks.sqlite3")


@dataclass(frozen=True)
class Delivery:
    """One queued event for one endpoint."""

    id: int
    msg_id: str
    event: str
    body: str
    created: float
    attempts: int
    next_at: float


class WebhookStore:
    """The queue file, open for the lifetime of a running server."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def active_anomalies(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The set announced last: (skill_name, anomaly_type) -> the anomaly's fields."""
        rows = self._db.execute("SELECT skill_name, anomaly_type, fields FROM active_anomaly")
        return {(s, t): json.loads(f) for s, t, f in rows}

    def accept(self, active: dict[tuple[str, str], dict[str, Any]],
               deliveries: list[tuple[str, str, str, str]], bounds: dict[str, int]) -> dict[str, int]:
        """In one transaction: make `active` the announced set and queue each
        (endpoint, msg_id, event, body); then trim every endpoint to its bound, oldest first.
        Returns how many events each endpoint lost to its bound."""
        now = time.time()
        dropped: dict[str, int] = {}
        with self._transaction():
            self._db.execute("DELETE FROM active_anomaly")
            self._db.executemany(
                "INSERT INTO active_anomaly (skill_name, anomaly_type, fields) VALUES (?, ?, ?)",
                [(s, t, json.dumps(f)) for (s, t), f in active.items()])
            self._db.executemany(
                "INSERT INTO delivery (endpoint, msg_id, event, body, created, next_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(ep, msg_id, event, body, now, now) for ep, msg_id, event, body in deliveries])
            for ep in {d[0] for d in deliveries}:
                (depth,) = self._db.execute("SELECT count(*) FROM delivery WHERE endpoint = ?", (ep,)).fetchone()
                excess = depth - bounds[ep]
                if excess > 0:
                    self._db.execute(
                        "DELETE FROM delivery WHERE id IN "
                        "(SELECT id FROM delivery WHERE endpoint = ? ORDER BY id LIMIT ?)", (ep, excess))
                    dropped[ep] = excess
        return dropped

    def head(self, endpoint: str) -> Delivery | None:
        """The oldest undelivered event of an endpoint, or None."""
        row = self._db.execute(
            "SELECT id, msg_id, event, body, created, attempts, next_at FROM delivery "
            "WHERE endpoint = ? ORDER BY id LIMIT 1", (endpoint,)).fetchone()
        return Delivery(*row) if row else None

    def remove(self, delivery_id: int) -> None:
        """Delivered, or dropped after max_age."""
        with self._transaction():
            self._db.execute("DELETE FROM delivery WHERE id = ?", (delivery_id,))

    def reschedule(self, delivery_id: int, attempts: int, next_at: float) -> None:
        """A failed attempt: count it and set when the next one is due (survives a restart)."""
        with self._transaction():
            self._db.execute("UPDATE delivery SET attempts = ?, next_at = ? WHERE id = ?",
                             (attempts, next_at, delivery_id))

    def depth(self, endpoint: str) -> tuple[int, float | None]:
        """(undelivered events, creation time of the oldest or None)."""
        n, oldest = self._db.execute(
            "SELECT count(*), min(created) FROM delivery WHERE endpoint = ?", (endpoint,)).fetchone()
        return int(n), oldest

    def _transaction(self) -> Any:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
