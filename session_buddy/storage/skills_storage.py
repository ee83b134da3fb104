"""SkillsStorage: records skill invocations in the skills DB and reads their aggregates."""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from session_buddy.storage.migrations.base import MigrationManager

__all__ = ["SkillsStorage"]

logger = logging.getLogger(__name__)


def _iso(value: datetime | str, name: str) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)  # naive datetimes are taken as UTC
        return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, str):
        if not value:
            raise ValueError(f"{name} must not be empty")
        return value
    raise TypeError(f"{name} must be a datetime or an ISO 8601 str, not {type(value).__name__}")


def _json_text(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    raise TypeError(f"{name} must be a list, dict, JSON str or None, not {type(value).__name__}")


def _require_str(value: Any, name: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not optional and not value:
        raise ValueError(f"{name} must not be empty")


class SkillsStorage:
    """Thread-safe access to one skills DB; the schema is migrated on open."""

    def __init__(self, db_path: str | os.PathLike[str], enable_wal: bool = True, timeout: float = 5.0):
        if not isinstance(db_path, (str, os.PathLike)):
            raise TypeError(f"db_path must be a str or PathLike, not {type(db_path).__name__}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout < 0:
            raise ValueError(f"timeout must be a finite number >= 0, got {timeout!r}")
        self.db_path = Path(db_path)
        MigrationManager(self.db_path).migrate()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            self.db_path, timeout=timeout, check_same_thread=False, isolation_level=None
        )
        self._conn.row_factory = sqlite3.Row
        if enable_wal:
            self._conn.execute("PRAGMA journal_mode=WAL")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError(f"SkillsStorage for {self.db_path} is closed")
        return self._conn

    def store_invocation(
        self,
        skill_name: str,
        invoked_at: datetime | str,
        session_id: str,
        workflow_path: str | None = None,
        completed: bool = False,
        duration_seconds: float | None = None,
        user_query: str | None = None,
        alternatives_considered: Sequence[str] | str | None = None,
        selection_rank: int | None = None,
        follow_up_actions: Sequence[str] | str | None = None,
        error_type: str | None = None,
        embedding: bytes | None = None,
        workflow_phase: str | None = None,
        workflow_step_id: str | None = None,
    ) -> int:
        """Append one invocation; returns its row id."""
        _require_str(skill_name, "skill_name")
        _require_str(session_id, "session_id")
        for name, value in (("workflow_path", workflow_path), ("user_query", user_query),
                            ("error_type", error_type), ("workflow_phase", workflow_phase),
                            ("workflow_step_id", workflow_step_id)):
            _require_str(value, name, optional=True)
        if not isinstance(completed, (bool, int)):
            raise TypeError(f"completed must be a bool, not {type(completed).__name__}")
        if duration_seconds is not None:
            if isinstance(duration_seconds, bool) or not isinstance(duration_seconds, (int, float)):
                raise TypeError("duration_seconds must be a number or None")
            if not math.isfinite(duration_seconds) or duration_seconds < 0:
                raise ValueError(f"duration_seconds must be finite and >= 0, got {duration_seconds!r}")
        if selection_rank is not None and (isinstance(selection_rank, bool) or not isinstance(selection_rank, int)):
            raise TypeError("selection_rank must be an int or None")
        if embedding is not None and not isinstance(embedding, (bytes, bytearray, memoryview)):
            raise TypeError("embedding must be bytes or None")

        row = (
            skill_name, _iso(invoked_at, "invoked_at"), session_id, workflow_path, bool(completed),
            None if duration_seconds is None else float(duration_seconds), user_query,
            _json_text(alternatives_considered, "alternatives_considered"), selection_rank,
            _json_text(follow_up_actions, "follow_up_actions"), error_type,
            None if embedding is None else bytes(embedding), workflow_phase, workflow_step_id,
        )
        with self._lock:
            cur = self._connection().execute(
                "INSERT INTO skill_invocation (skill_name, invoked_at, session_id, workflow_path, completed,"
                " duration_seconds, user_query, alternatives_considered, selection_rank, follow_up_actions,"
                " error_type, embedding, workflow_phase, workflow_step_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            return int(cur.lastrowid or 0)

    def get_metrics(self, skill_name: str) -> dict[str, Any] | None:
        """The skill's `skill_metrics` row as a dict, or None if it was never invoked."""
        _require_str(skill_name, "skill_name")
        with self._lock:
            row = self._connection().execute(
                "SELECT * FROM skill_metrics WHERE skill_name = ?", (skill_name,)
            ).fetchone()
        return dict(row) if row else None

    def get_top_skills(self, limit: int = 10) -> list[dict[str, Any]]:
        """The most invoked skills, most first (ties by name)."""
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError("limit must be an int")
        if limit < 0:
            raise ValueError("limit must be >= 0")
        with self._lock:
            rows = self._connection().execute(
                "SELECT * FROM skill_metrics WHERE total_invocations > 0"
                " ORDER BY total_invocations DESC, skill_name ASC LIMIT ?",
                (limit,),
            ).fetchall()
        return [dict(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> SkillsStorage:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SkillsStorage({str(self.db_path)!r})"
