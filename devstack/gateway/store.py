"""The gateway's durable store: one SQLite file in WAL mode, written one transaction at a time.

A request's work and its idempotent answer are committed in one transaction; a key is first
marked in flight in a transaction of its own, so that a second request with the key sees it.
A record still in flight when the server starts was left by a crash before its work committed,
so it is deleted and the key can be tried again.
"""

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import Answer

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    expires_at INTEGER
);
CREATE TABLE IF NOT EXISTS idempotency_records (
    key TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    body TEXT NOT NULL,
    status INTEGER,  -- NULL while the request is in flight
    answer TEXT,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS unavailable_attempts (
    key TEXT PRIMARY KEY,
    attempts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS payment_intents (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    charge TEXT,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS charges (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    payment_intent TEXT NOT NULL,
    amount_refunded INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    charge TEXT NOT NULL REFERENCES charges (id),
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created INTEGER NOT NULL
);
"""


class Store:
    """One connection, used by one transaction at a time (a process lock, and BEGIN IMMEDIATE
    against any other process on the file), so two requests cannot both charge."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._db.executescript(SCHEMA)
        with self.transaction() as db:
            db.execute("DELETE FROM idempotency_records WHERE status IS NULL")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()


def add_api_key(db: sqlite3.Connection, now: int) -> str:
    key = f"sk_test_{secrets.token_urlsafe(24)}"
    db.execute("INSERT INTO api_keys (key, created) VALUES (?, ?)", (key, now))
    return key


def newest_api_key(db: sqlite3.Connection) -> str | None:
    row = db.execute("SELECT key FROM api_keys ORDER BY seq DESC LIMIT 1").fetchone()
    return None if row is None else str(row["key"])


def api_key_expiry(db: sqlite3.Connection, key: str) -> int | None:
    """When the key stops working (None: never); KeyError for a key the account never had."""
    row = db.execute("SELECT expires_at FROM api_keys WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise KeyError(key)
    return None if row["expires_at"] is None else int(row["expires_at"])


def expire_valid_keys(db: sqlite3.Connection, at: int, now: int) -> None:
    """Every key still valid now stops working at `at` (or sooner, if it was to expire sooner)."""
    db.execute(
        "UPDATE api_keys SET expires_at = ? WHERE expires_at IS NULL OR (expires_at > ? AND expires_at > ?)",
        (at, now, at),
    )


@dataclass(frozen=True)
class IdempotencyRecord:
    method: str
    path: str
    body: str
    answer: Answer | None  # None while the request is in flight


def find_record(db: sqlite3.Connection, key: str) -> IdempotencyRecord | None:
    row = db.execute("SELECT * FROM idempotency_records WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    answer = None if row["status"] is None else Answer(row["status"], json.loads(row["answer"]))
    return IdempotencyRecord(row["method"], row["path"], row["body"], answer)


def begin_record(db: sqlite3.Connection, key: str, record: IdempotencyRecord, now: int) -> None:
    db.execute(
        "INSERT INTO idempotency_records (key, method, path, body, created) VALUES (?, ?, ?, ?, ?)",
        (key, record.method, record.path, record.body, now),
    )


def finish_record(db: sqlite3.Connection, key: str, answer: Answer) -> None:
    db.execute(
        "UPDATE idempotency_records SET status = ?, answer = ? WHERE key = ?",
        (answer.status, json.dumps(answer.body), key),
    )


def forget_record(db: sqlite3.Connection, key: str) -> None:
    db.execute("DELETE FROM idempotency_records WHERE key = ?", (key,))


def in_flight_keys(db: sqlite3.Connection) -> list[str]:
    rows = db.execute("SELECT key FROM idempotency_records WHERE status IS NULL ORDER BY created, key")
    return [str(row["key"]) for row in rows]


def count_attempt(db: sqlite3.Connection, key: str) -> int:
    """Count one more attempt under the key, and return how many there have been."""
    db.execute(
        "INSERT INTO unavailable_attempts (key, attempts) VALUES (?, 1)"
        " ON CONFLICT (key) DO UPDATE SET attempts = attempts + 1",
        (key,),
    )
    return int(db.execute("SELECT attempts FROM unavailable_attempts WHERE key = ?", (key,)).fetchone()[0])
