-- V1__initial_schema: the invocation log, per-skill aggregates, sessions, and migration tracking.
-- Table, column, trigger and view names follow session-buddy, so existing skills.db files work unchanged.

-- Append-only log: one row per skill invocation.
CREATE TABLE IF NOT EXISTS skill_invocation (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    skill_name TEXT NOT NULL,
    invoked_at TEXT NOT NULL,                   -- ISO 8601
    session_id TEXT NOT NULL,
    workflow_path TEXT,
    completed BOOLEAN NOT NULL DEFAULT 0,
    duration_seconds REAL,
    user_query TEXT,
    alternatives_considered TEXT,               -- JSON array
    selection_rank INTEGER,
    follow_up_actions TEXT,                     -- JSON array
    error_type TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);

CREATE INDEX IF NOT EXISTS idx_invocation_session ON skill_invocation(session_id);
CREATE INDEX IF NOT EXISTS idx_invocation_skill ON skill_invocation(skill_name);
CREATE INDEX IF NOT EXISTS idx_invocation_invoked_at ON skill_invocation(invoked_at DESC);
CREATE INDEX IF NOT EXISTS idx_invocation_session_completed ON skill_invocation(session_id, completed);

-- Full-text search over the user's problem descriptions, kept in sync by a trigger.
CREATE VIRTUAL TABLE IF NOT EXISTS skill_invocation_fts
    USING fts5(user_query, content=skill_invocation, content_rowid=id);

CREATE TRIGGER IF NOT EXISTS trg_invocation_fts_after_insert
    AFTER INSERT ON skill_invocation
    WHEN NEW.user_query IS NOT NULL
BEGIN
    INSERT INTO skill_invocation_fts(rowid, user_query) VALUES (NEW.id, NEW.user_query);
END;

-- Per-skill aggregates, maintained by trg_skill_metrics_after_insert. Names holding a double
-- quote cannot be JSON path keys, so they are left out of workflow_paths / common_errors.
-- completion_rate is a percentage (0-100), as session-buddy stores it.
CREATE TABLE IF NOT EXISTS skill_metrics (
    skill_name TEXT PRIMARY KEY,
    total_invocations INTEGER NOT NULL DEFAULT 0,
    completed_invocations INTEGER NOT NULL DEFAULT 0,
    abandoned_invocations INTEGER NOT NULL DEFAULT 0,
    total_duration_seconds REAL NOT NULL DEFAULT 0.0,
    workflow_paths TEXT NOT NULL DEFAULT '{}',   -- JSON: path -> count
    common_errors TEXT NOT NULL DEFAULT '{}',    -- JSON: error type -> count
    follow_up_actions TEXT NOT NULL DEFAULT '{}',-- JSON: action -> count
    avg_selection_rank REAL,
    recommendation_success_rate REAL,
    first_invoked TEXT,
    last_invoked TEXT,
    completion_rate REAL NOT NULL DEFAULT 0.0,
    avg_duration_seconds REAL,                   -- NULL until an invocation completes
    updated_at TEXT NOT NULL DEFAULT (datetime('now'))
);

CREATE TRIGGER IF NOT EXISTS trg_skill_metrics_after_insert
    AFTER INSERT ON skill_invocation
BEGIN
    INSERT OR IGNORE INTO skill_metrics (skill_name, first_invoked, last_invoked)
        VALUES (NEW.skill_name, NEW.invoked_at, NEW.invoked_at);

    UPDATE skill_metrics SET
        total_invocations = total_invocations + 1,
        completed_invocations = completed_invocations + (NEW.completed = 1),
        abandoned_invocations = abandoned_invocations + (NEW.completed = 0),
        total_duration_seconds = total_duration_seconds
            + CASE WHEN NEW.completed = 1 THEN COALESCE(NEW.duration_seconds, 0) ELSE 0 END,
        last_invoked = NEW.invoked_at,
        workflow_paths = CASE WHEN NEW.workflow_path IS NULL OR instr(NEW.workflow_path, '"') > 0 THEN workflow_paths
            ELSE json_set(workflow_paths, '$."' || NEW.workflow_path || '"',
                          COALESCE(json_extract(workflow_paths, '$."' || NEW.workflow_path || '"'), 0) + 1)
            END,
        common_errors = CASE WHEN NEW.error_type IS NULL OR instr(NEW.error_type, '"') > 0 THEN common_errors
            ELSE json_set(common_errors, '$."' || NEW.error_type || '"',
                          COALESCE(json_extract(common_errors, '$."' || NEW.error_type || '"'), 0) + 1)
            END
    WHERE skill_name = NEW.skill_name;

    UPDATE skill_metrics SET
        completion_rate = 100.0 * completed_invocations / total_invocations,
        avg_duration_seconds = CASE WHEN completed_invocations > 0
            THEN total_duration_seconds / completed_invocations END,
        updated_at = datetime('now')
    WHERE skill_name = NEW.skill_name;
END;

-- Which skills each session used.
CREATE TABLE IF NOT EXISTS session_skills (
    session_id TEXT NOT NULL,
    skill_name TEXT NOT NULL,
    invocation_count INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (session_id, skill_name)
);

CREATE INDEX IF NOT EXISTS idx_session_skills_skill ON session_skills(skill_name);

CREATE TRIGGER IF NOT EXISTS trg_session_skills_after_insert
    AFTER INSERT ON skill_invocation
BEGIN
    INSERT INTO session_skills (session_id, skill_name, invocation_count)
        VALUES (NEW.session_id, NEW.skill_name, 1)
        ON CONFLICT(session_id, skill_name) DO UPDATE SET invocation_count = invocation_count + 1;
END;

-- Schema history, written by MigrationManager.
CREATE TABLE IF NOT EXISTS skill_migrations (
    version TEXT PRIMARY KEY,                    -- e.g. "V1__initial_schema"
    applied_at TEXT NOT NULL,
    description TEXT,
    rollback_sql TEXT,
    checksum TEXT,                               -- sha256 of the up SQL
    applied_by TEXT DEFAULT 'session-buddy',
    success BOOLEAN NOT NULL DEFAULT 1
);

CREATE INDEX IF NOT EXISTS idx_migrations_applied_at ON skill_migrations(applied_at DESC);

CREATE VIEW IF NOT EXISTS v_session_skill_summary AS
SELECT session_id,
       COUNT(DISTINCT skill_name) AS unique_skills,
       COUNT(*) AS total_invocations,
       SUM(completed = 1) AS completed_count,
       SUM(completed = 0) AS abandoned_count,
       SUM(COALESCE(duration_seconds, 0)) AS total_duration_seconds,
       MIN(invoked_at) AS first_skill_at,
       MAX(invoked_at) AS last_skill_at
FROM skill_invocation
GROUP BY session_id;

CREATE VIEW IF NOT EXISTS v_skill_effectiveness AS
SELECT skill_name, total_invocations, completed_invocations, abandoned_invocations,
       completion_rate, avg_duration_seconds, first_invoked, last_invoked,
       CAST(julianday('now') - julianday(last_invoked) AS INTEGER) AS days_since_last_use
FROM skill_metrics
WHERE total_invocations > 0
ORDER BY total_invocations DESC;

CREATE VIEW IF NOT EXISTS v_top_skills AS
SELECT skill_name, total_invocations, completion_rate, avg_duration_seconds
FROM skill_metrics
WHERE total_invocations > 0
ORDER BY total_invocations DESC;

-- Daily usage, materialised by applications from v_daily_skill_source.
CREATE TABLE IF NOT EXISTS mv_daily_skills (
    date TEXT NOT NULL,
    skill_name TEXT NOT NULL,
    invocations INTEGER NOT NULL,
    completions INTEGER NOT NULL,
    abandonments INTEGER NOT NULL,
    avg_duration_seconds REAL,
    PRIMARY KEY (date, skill_name)
);

CREATE INDEX IF NOT EXISTS idx_mv_daily_date ON mv_daily_skills(date DESC);
CREATE INDEX IF NOT EXISTS idx_mv_daily_skill ON mv_daily_skills(skill_name);

CREATE VIEW IF NOT EXISTS v_daily_skill_source AS
SELECT DATE(invoked_at) AS date, skill_name,
       COUNT(*) AS invocations,
       SUM(completed = 1) AS completions,
       SUM(completed = 0) AS abandonments,
       AVG(CASE WHEN completed = 1 THEN duration_seconds END) AS avg_duration_seconds
FROM skill_invocation
GROUP BY DATE(invoked_at), skill_name;
