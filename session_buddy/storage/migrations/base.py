"""Applies and rolls back the skills DB's SQL migrations, recording each in `skill_migrations`."""

from __future__ import annotations

import getpass
import hashlib
import logging
import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["Migration", "MigrationError", "MigrationManager"]

logger = logging.getLogger(__name__)

MIGRATION_DIR = Path(__file__).resolve().parent
_FILE_RE = re.compile(r"^V(\d+)__(\w+?)__up\.sql$")


class MigrationError(RuntimeError):
    """A migration could not be applied or rolled back; the DB is left as it was before it."""


@dataclass(frozen=True)
class Migration:
    """One migration: `V<number>__<name>__up.sql` with its matching `__down.sql`."""

    number: int
    version: str      # "V1__initial_schema", the key recorded in skill_migrations
    up_sql: str
    down_sql: str | None

    @property
    def description(self) -> str:
        return self.version.split("__", 1)[1].replace("_", " ")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.up_sql.encode()).hexdigest()


def load_migrations(migration_dir: Path) -> list[Migration]:
    migrations = []
    for path in sorted(migration_dir.glob("V*__up.sql")):
        match = _FILE_RE.match(path.name)
        if not match:
            continue
        version = path.name[: -len("__up.sql")]
        down = path.with_name(f"{version}__down.sql")
        migrations.append(
            Migration(int(match.group(1)), version, path.read_text(encoding="utf-8"),
                      down.read_text(encoding="utf-8") if down.exists() else None)
        )
    migrations.sort(key=lambda m: m.number)
    numbers = [m.number for m in migrations]
    if len(set(numbers)) != len(numbers):
        raise MigrationError(f"two migrations share a number in {migration_dir}")
    return migrations


def _applied_by() -> str:
    try:
        return f"session-buddy-realtime ({getpass.getuser()})"
    except (KeyError, OSError):
        return "session-buddy-realtime"


class MigrationManager:
    """Brings a skills DB up to the newest schema.

    Versions are matched by number (`V3__...` is version 3), so databases whose
    `skill_migrations` rows were written by session-buddy itself are recognised.
    """

    def __init__(self, db_path: str | os.PathLike[str], migration_dir: str | os.PathLike[str] | None = None):
        self.db_path = Path(db_path)
        self.migration_dir = Path(migration_dir) if migration_dir is not None else MIGRATION_DIR
        self.migrations = load_migrations(self.migration_dir)

    def _connect(self) -> sqlite3.Connection:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.db_path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            raise sqlite3.DatabaseError(f"{self.db_path}: {exc}") from exc
        return conn

    @staticmethod
    def _applied_numbers(conn: sqlite3.Connection) -> set[int]:
        has_table = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='skill_migrations'"
        ).fetchone()
        if not has_table:
            return set()
        numbers = set()
        for (version,) in conn.execute("SELECT version FROM skill_migrations WHERE success = 1"):
            match = re.match(r"^V(\d+)", str(version))
            if match:
                numbers.add(int(match.group(1)))
        return numbers

    def current_version(self) -> int:
        """The highest applied migration number (0 for an empty DB)."""
        with self._connect() as conn:
            return max(self._applied_numbers(conn), default=0)

    def pending(self) -> list[Migration]:
        with self._connect() as conn:
            applied = self._applied_numbers(conn)
        return [m for m in self.migrations if m.number not in applied]

    def migrate(self) -> list[str]:
        """Apply every pending migration in order, each in its own transaction. Returns their versions."""
        conn = self._connect()
        try:
            applied = self._applied_numbers(conn)
            done = []
            for migration in self.migrations:
                if migration.number in applied:
                    continue
                self._run(conn, migration.up_sql, migration, record=True)
                done.append(migration.version)
                logger.info("applied migration %s to %s", migration.version, self.db_path)
            return done
        finally:
            conn.close()

    def rollback(self, target_version: int) -> list[str]:
        """Roll back every applied migration numbered above target_version, newest first."""
        conn = self._connect()
        try:
            applied = self._applied_numbers(conn)
            undone = []
            for migration in sorted(self.migrations, key=lambda m: -m.number):
                if migration.number <= target_version or migration.number not in applied:
                    continue
                if migration.down_sql is None:
                    raise MigrationError(f"{migration.version} has no down migration")
                self._run(conn, migration.down_sql, migration, record=False)
                undone.append(migration.version)
                logger.info("rolled back migration %s on %s", migration.version, self.db_path)
            return undone
        finally:
            conn.close()

    def _run(self, conn: sqlite3.Connection, sql: str, migration: Migration, *, record: bool) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _statements(sql):
                conn.execute(statement)
            if record:
                conn.execute(
                    "INSERT OR REPLACE INTO skill_migrations "
                    "(version, applied_at, description, rollback_sql, checksum, applied_by, success) "
                    "VALUES (?, ?, ?, ?, ?, ?, 1)",
                    (migration.version, datetime.now(timezone.utc).isoformat(), migration.description,
                     migration.down_sql, migration.checksum, _applied_by()),
                )
            else:
                conn.execute("DELETE FROM skill_migrations WHERE version = ? OR version GLOB ?",
                             (migration.version, f"V{migration.number}__*"))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise MigrationError(f"{migration.version} failed on {self.db_path}: {exc}") from exc


def _statements(sql: str) -> list[str]:
    """Split a script into complete statements (triggers keep their inner semicolons)."""
    statements, current = [], ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip() and not _only_comments(current):
                statements.append(current.strip())
            current = ""
    if current.strip() and not _only_comments(current):
        raise MigrationError(f"incomplete SQL statement at the end of a migration: {current[:80]!r}")
    return statements


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())
