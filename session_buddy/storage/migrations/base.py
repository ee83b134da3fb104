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

# The skills schema ends at V4.  session-buddy's own migrations folder also holds V5 and later,
# which alter tables of its other databases (conversations, reflections); its runner skips them
# there, and so does this one, so that folder can be passed as migration_dir unchanged.
NEWEST_SKILLS_VERSION = 4


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
        if int(match.group(1)) > NEWEST_SKILLS_VERSION:
            logger.debug("skipping %s: it belongs to no skills schema version", path.name)
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
        before, body, after = _split_pragmas(_statements(sql))
        try:
            for statement in before:
                conn.execute(statement)
            conn.execute("BEGIN IMMEDIATE")
            if not record:
                # First: a down migration may drop skill_migrations itself (V1's does).
                conn.execute("DELETE FROM skill_migrations WHERE version = ? OR version GLOB ?",
                             (migration.version, f"V{migration.number}__*"))
            for statement in body:
                conn.execute(statement)
            if record:
                conn.execute(
                    "INSERT OR REPLACE INTO skill_migrations "
                    "(version, applied_at, description, rollback_sql, checksum, applied_by, success) "
                    "VALUES (?, ?, ?, ?, ?, ?, 1)",
                    (migration.version, datetime.now(timezone.utc).isoformat(), migration.description,
                     migration.down_sql, migration.checksum, _applied_by()),
                )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise MigrationError(f"{migration.version} failed on {self.db_path}: {exc}") from exc
        try:
            for statement in after:
                conn.execute(statement)
        except sqlite3.Error as exc:
            raise MigrationError(
                f"{migration.version} was applied to {self.db_path}, but its closing PRAGMA failed: {exc}"
            ) from exc


def _split_pragmas(statements: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(PRAGMAs before the first other statement, the other statements, the remaining PRAGMAs).

    SQLite refuses to change the journal mode or the safety level inside a transaction, and
    session-buddy's own V1 sets both at its end.  So PRAGMAs run outside the migration's
    transaction: those that open the script before it, the others after it commits, which keeps
    each one before or after the schema statements as the script has it.
    """
    before: list[str] = []
    body: list[str] = []
    after: list[str] = []
    for statement in statements:
        if not _is_pragma(statement):
            body.append(statement)
        elif body:
            after.append(statement)
        else:
            before.append(statement)
    return before, body, after


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


def _is_pragma(statement: str) -> bool:
    """True for a PRAGMA statement, whatever comment lines come before it."""
    for line in statement.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("--"):
            return stripped[:6].upper() == "PRAGMA"
    return False


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())
