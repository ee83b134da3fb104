"""MigrationManager on real SQLite files: fresh DBs, upgrades, idempotence, rollback."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from session_buddy.storage import MigrationError, MigrationManager
from session_buddy.storage.migrations.base import MIGRATION_DIR

VERSIONS = ["V1__initial_schema", "V2__add_semantic_search", "V3__add_workflow_correlation",
            "V4__phase4_extensions"]


def names(db: Path, kind: str) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = ?", (kind,))}


def columns(db: Path, table: str) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def test_fresh_db_gets_every_migration_recorded(tmp_path: Path) -> None:
    db = tmp_path / "new" / "folder" / "skills.db"
    assert MigrationManager(db).migrate() == VERSIONS
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT version, checksum, rollback_sql, success FROM skill_migrations ORDER BY version"
        ).fetchall()
    assert [r[0] for r in rows] == VERSIONS
    for version, checksum, rollback_sql, success in rows:
        up = (MIGRATION_DIR / f"{version}__up.sql").read_text()
        assert checksum == hashlib.sha256(up.encode()).hexdigest()
        assert rollback_sql == (MIGRATION_DIR / f"{version}__down.sql").read_text()
        assert success == 1
    assert {"skill_invocation", "skill_metrics", "session_skills", "skill_migrations",
            "skill_metrics_cache", "skill_time_series", "skill_anomalies",
            "skill_community_baselines", "skill_user_interactions", "skill_clusters",
            "ab_test_configs", "skill_categories", "skill_dependencies",
            "skill_modalities"} <= names(db, "table")
    assert "v_realtime_skill_dashboard" in names(db, "view")
    assert {"trg_skill_metrics_after_insert", "trg_metrics_cache_after_insert"} <= names(db, "trigger")
    assert {"embedding", "workflow_phase", "workflow_step_id"} <= columns(db, "skill_invocation")
    assert {"resolved_at", "deviation_score", "baseline_value", "observed_value"} <= columns(db, "skill_anomalies")


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "skills.db"
    manager = MigrationManager(db)
    assert manager.migrate() == VERSIONS
    assert manager.migrate() == []
    assert manager.pending() == []
    assert manager.current_version() == 4


def test_v2_db_upgrades_to_v4_and_keeps_rows(tmp_path: Path) -> None:
    partial = tmp_path / "v1v2"
    partial.mkdir()
    for version in VERSIONS[:2]:
        for suffix in ("__up.sql", "__down.sql"):
            shutil.copy(MIGRATION_DIR / f"{version}{suffix}", partial)
    db = tmp_path / "skills.db"
    assert MigrationManager(db, migration_dir=partial).migrate() == VERSIONS[:2]
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO skill_invocation (skill_name, invoked_at, session_id, completed)"
                     " VALUES ('ruff', '2026-01-01T00:00:00Z', 's', 1)")
    assert MigrationManager(db).migrate() == VERSIONS[2:]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT skill_name, workflow_phase FROM skill_invocation").fetchall() == [("ruff", None)]
        assert conn.execute("SELECT total_invocations FROM skill_metrics").fetchone() == (1,)


def test_versions_recorded_by_session_buddy_are_recognised(tmp_path: Path) -> None:
    db = tmp_path / "skills.db"
    MigrationManager(db).migrate()
    with sqlite3.connect(db) as conn:  # session-buddy wrote version keys of its own form
        conn.execute("UPDATE skill_migrations SET version = substr(version, 1, 2)")
    assert MigrationManager(db).pending() == []


def test_rollback_then_migrate_again(tmp_path: Path) -> None:
    db = tmp_path / "skills.db"
    manager = MigrationManager(db)
    manager.migrate()
    assert manager.rollback(2) == ["V4__phase4_extensions", "V3__add_workflow_correlation"]
    assert "skill_anomalies" not in names(db, "table")
    assert "workflow_phase" not in columns(db, "skill_invocation")
    assert manager.current_version() == 2
    assert manager.migrate() == VERSIONS[2:]
    assert "skill_anomalies" in names(db, "table")


def test_corrupt_file_raises_with_the_path(tmp_path: Path) -> None:
    db = tmp_path / "skills.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(sqlite3.DatabaseError, match="skills.db"):
        MigrationManager(db).migrate()


def test_a_failing_migration_is_rolled_back(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(MIGRATION_DIR / "V1__initial_schema__up.sql", broken)
    (broken / "V2__bad__up.sql").write_text("CREATE TABLE ok_table (x);\nCREATE TABLE skill_invocation (x);\n")
    db = tmp_path / "skills.db"
    with pytest.raises(MigrationError, match="V2__bad"):
        MigrationManager(db, migration_dir=broken).migrate()
    assert "ok_table" not in names(db, "table")  # the whole migration was undone
    assert MigrationManager(db, migration_dir=broken).current_version() == 1


# session-buddy's own migrations folder, as it ships today, differs from ours in two ways that
# its runner copes with: V1 ends with PRAGMAs that SQLite refuses inside a transaction, and V5/V6
# alter tables of other databases.  These files are written here in that shape.

_PRAGMA_V1 = """\
-- Opening settings, before any schema statement.
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS skill_migrations (
    version TEXT PRIMARY KEY, applied_at TEXT NOT NULL, description TEXT, rollback_sql TEXT,
    checksum TEXT, applied_by TEXT DEFAULT 'session-buddy', success BOOLEAN NOT NULL DEFAULT 1
);
CREATE TABLE skill_invocation (id INTEGER PRIMARY KEY, skill_name TEXT NOT NULL);

-- Enable WAL mode for concurrent access
PRAGMA journal_mode = WAL;
-- Optimize for performance
PRAGMA synchronous = NORMAL;
PRAGMA cache_size = -64000;  -- 64MB cache
PRAGMA temp_store = MEMORY;
PRAGMA foreign_keys = ON;
PRAGMA user_version = 7;
"""

_DROPPING_V1_DOWN = "DROP TABLE IF EXISTS skill_invocation;\nDROP TABLE IF EXISTS skill_migrations;\n"


def test_pragmas_that_refuse_a_transaction_are_run_outside_it(tmp_path: Path) -> None:
    folder = tmp_path / "upstream_shape"
    folder.mkdir()
    (folder / "V1__initial_schema__up.sql").write_text(_PRAGMA_V1)
    db = tmp_path / "skills.db"
    assert MigrationManager(db, migration_dir=folder).migrate() == ["V1__initial_schema"]
    assert "skill_invocation" in names(db, "table")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        # The PRAGMAs after the schema ran too, once the migration had committed.
        assert conn.execute("PRAGMA user_version").fetchone() == (7,)
        assert conn.execute("SELECT version FROM skill_migrations").fetchall() == [("V1__initial_schema",)]


def test_a_failing_migration_with_pragmas_is_rolled_back_and_leaves_its_closing_pragmas(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "V1__initial_schema__up.sql").write_text(
        _PRAGMA_V1.replace("PRAGMA foreign_keys = ON;", "CREATE TABLE skill_invocation (x);")
    )
    db = tmp_path / "skills.db"
    with pytest.raises(MigrationError, match="V1__initial_schema"):
        MigrationManager(db, migration_dir=folder).migrate()
    assert "skill_invocation" not in names(db, "table")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (0,)


def test_versions_above_4_belong_to_other_databases_and_are_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "with_v5_v6"
    folder.mkdir()
    for version in VERSIONS:
        for suffix in ("__up.sql", "__down.sql"):
            shutil.copy(MIGRATION_DIR / f"{version}{suffix}", folder)
    (folder / "V5__ulid_migration__up.sql").write_text("ALTER TABLE conversations ADD COLUMN conversation_ulid TEXT;\n")
    (folder / "V5__ulid_migration__down.sql").write_text("SELECT 1;\n")
    (folder / "V6__ulid_contract__up.sql").write_text("DROP INDEX idx_reflections_ulid;\n")
    db = tmp_path / "skills.db"
    manager = MigrationManager(db_path=db, migration_dir=folder)  # session-buddy's keywords
    assert [m.version for m in manager.migrations] == VERSIONS
    assert manager.migrate() == VERSIONS
    assert manager.pending() == []
    assert manager.current_version() == 4


def test_rolling_back_a_v1_that_drops_the_migrations_table(tmp_path: Path) -> None:
    folder = tmp_path / "upstream_shape"
    folder.mkdir()
    schema_only = "\n".join(line for line in _PRAGMA_V1.splitlines() if not line.startswith("PRAGMA"))
    (folder / "V1__initial_schema__up.sql").write_text(schema_only)
    (folder / "V1__initial_schema__down.sql").write_text(_DROPPING_V1_DOWN)
    db = tmp_path / "skills.db"
    manager = MigrationManager(db, migration_dir=folder)
    manager.migrate()
    assert manager.rollback(0) == ["V1__initial_schema"]
    assert not {"skill_invocation", "skill_migrations"} & names(db, "table")
    assert manager.current_version() == 0
    assert manager.migrate() == ["V1__initial_schema"]
