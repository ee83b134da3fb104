-- V4__phase4_extensions: real-time monitoring (metrics cache, time series, anomalies), plus the
-- Phase-4 tables (community baselines, interactions, clusters, A/B tests, taxonomy, dependencies,
-- modalities) that session-buddy creates and this package keeps for schema compatibility.

-- Section 1: real-time monitoring ------------------------------------------------------------

CREATE TABLE IF NOT EXISTS skill_metrics_cache (
    skill_name TEXT PRIMARY KEY,
    last_invocation_at TEXT NOT NULL,
    invocation_count_1h INTEGER DEFAULT 0,
    invocation_count_24h INTEGER DEFAULT 0,
    avg_completion_rate_24h REAL,
    is_anomalous BOOLEAN DEFAULT 0,
    anomaly_score REAL,
    updated_at TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS idx_metrics_cache_updated ON skill_metrics_cache(updated_at);

-- Hourly buckets for trend analysis.
CREATE TABLE IF NOT EXISTS skill_time_series (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    skill_name TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    invocation_count INTEGER DEFAULT 0,
    completion_rate REAL,
    avg_duration_seconds REAL,
    unique_sessions INTEGER DEFAULT 0
);

CREATE INDEX IF NOT EXISTS idx_time_series_skill_timestamp
    ON skill_time_series(skill_name, timestamp DESC);

-- Detected anomalies; resolved_at stays NULL while one is active.
CREATE TABLE IF NOT EXISTS skill_anomalies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    skill_name TEXT NOT NULL,
    detected_at TEXT NOT NULL,
    anomaly_type TEXT NOT NULL,                  -- performance_drop | performance_spike | pattern_shift
    baseline_value REAL,
    observed_value REAL,
    deviation_score REAL,
    resolved_at TEXT
);

CREATE INDEX IF NOT EXISTS idx_anomalies_detected_at ON skill_anomalies(detected_at DESC);
CREATE INDEX IF NOT EXISTS idx_anomalies_skill ON skill_anomalies(skill_name, detected_at DESC);
CREATE INDEX IF NOT EXISTS idx_anomalies_open
    ON skill_anomalies(skill_name, anomaly_type) WHERE resolved_at IS NULL;

-- The cache's counters are approximate (they only grow); the real-time server computes exact
-- windows itself and rewrites is_anomalous / anomaly_score.
CREATE TRIGGER IF NOT EXISTS trg_metrics_cache_after_insert
    AFTER INSERT ON skill_invocation
BEGIN
    INSERT INTO skill_metrics_cache
        (skill_name, last_invocation_at, invocation_count_1h, invocation_count_24h, updated_at)
        VALUES (NEW.skill_name, NEW.invoked_at, 1, 1, datetime('now'))
    ON CONFLICT(skill_name) DO UPDATE SET
        last_invocation_at = NEW.invoked_at,
        invocation_count_1h = invocation_count_1h + 1,
        invocation_count_24h = invocation_count_24h + 1,
        updated_at = datetime('now');
END;

CREATE VIEW IF NOT EXISTS v_realtime_skill_dashboard AS
SELECT smc.skill_name, smc.last_invocation_at, smc.invocation_count_1h, smc.invocation_count_24h,
       smc.avg_completion_rate_24h, smc.is_anomalous, smc.anomaly_score,
       sm.total_invocations, sm.completion_rate, sm.avg_duration_seconds
FROM skill_metrics_cache smc
JOIN skill_metrics sm ON smc.skill_name = sm.skill_name
ORDER BY smc.invocation_count_24h DESC;

-- Section 2: cross-session learning -----------------------------------------------------------

CREATE TABLE IF NOT EXISTS skill_community_baselines (
    skill_name TEXT PRIMARY KEY,
    total_users INTEGER DEFAULT 0,
    total_invocations INTEGER DEFAULT 0,
    global_completion_rate REAL,
    global_avg_duration_seconds REAL,
    most_common_workflow_phase TEXT,
    effectiveness_percentile REAL,
    last_updated TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS skill_user_interactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    skill_name TEXT NOT NULL,
    invoked_at TEXT NOT NULL,
    completed BOOLEAN NOT NULL,
    rating REAL,
    alternatives_considered TEXT
);

CREATE INDEX IF NOT EXISTS idx_user_interactions_user ON skill_user_interactions(user_id, invoked_at DESC);
CREATE INDEX IF NOT EXISTS idx_user_interactions_skill ON skill_user_interactions(skill_name, completed);
CREATE INDEX IF NOT EXISTS idx_user_interactions_session ON skill_user_interactions(session_id);

CREATE TABLE IF NOT EXISTS skill_clusters (
    cluster_id INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster_name TEXT NOT NULL UNIQUE,
    description TEXT,
    centroid_embedding BLOB,
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS skill_cluster_membership (
    skill_name TEXT NOT NULL,
    cluster_id INTEGER NOT NULL REFERENCES skill_clusters(cluster_id),
    membership_score REAL,
    PRIMARY KEY (skill_name, cluster_id)
);

CREATE INDEX IF NOT EXISTS idx_cluster_membership_cluster ON skill_cluster_membership(cluster_id);

-- Section 3: A/B tests ------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS ab_test_configs (
    test_id INTEGER PRIMARY KEY AUTOINCREMENT,
    test_name TEXT NOT NULL UNIQUE,
    description TEXT,
    control_strategy TEXT NOT NULL,
    treatment_strategy TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT,
    min_sample_size INTEGER DEFAULT 100,
    metrics TEXT,
    assignment_ratio REAL DEFAULT 0.5,
    status TEXT DEFAULT 'running',
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);

CREATE TABLE IF NOT EXISTS ab_test_assignments (
    assignment_id INTEGER PRIMARY KEY AUTOINCREMENT,
    test_id INTEGER NOT NULL REFERENCES ab_test_configs(test_id),
    user_id TEXT NOT NULL,
    group_name TEXT NOT NULL,
    assigned_at TEXT NOT NULL DEFAULT (datetime('now')),
    UNIQUE (test_id, user_id)
);

CREATE INDEX IF NOT EXISTS idx_ab_assignments_group ON ab_test_assignments(test_id, group_name);

CREATE TABLE IF NOT EXISTS ab_test_outcomes (
    outcome_id INTEGER PRIMARY KEY AUTOINCREMENT,
    test_id INTEGER NOT NULL REFERENCES ab_test_configs(test_id),
    user_id TEXT NOT NULL,
    skill_name TEXT NOT NULL,
    completed BOOLEAN NOT NULL,
    duration_seconds REAL,
    user_rating REAL,
    recorded_at TEXT NOT NULL DEFAULT (datetime('now'))
);

CREATE INDEX IF NOT EXISTS idx_ab_outcomes_test ON ab_test_outcomes(test_id, user_id);

-- Section 4: taxonomy, dependencies, modalities -----------------------------------------------

CREATE TABLE IF NOT EXISTS skill_categories (
    category_id INTEGER PRIMARY KEY AUTOINCREMENT,
    category_name TEXT NOT NULL UNIQUE,
    parent_category_id INTEGER REFERENCES skill_categories(category_id),
    description TEXT,
    domain TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);

CREATE TABLE IF NOT EXISTS skill_category_mapping (
    skill_name TEXT NOT NULL,
    category_id INTEGER NOT NULL REFERENCES skill_categories(category_id),
    confidence_score REAL,
    assigned_at TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (skill_name, category_id)
);

CREATE INDEX IF NOT EXISTS idx_category_mapping_category ON skill_category_mapping(category_id);

CREATE TABLE IF NOT EXISTS skill_dependencies (
    skill_a TEXT NOT NULL,
    skill_b TEXT NOT NULL,
    co_occurrence_count INTEGER DEFAULT 1,
    lift_score REAL,
    last_updated TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (skill_a, skill_b)
);

CREATE INDEX IF NOT EXISTS idx_dependencies_lift ON skill_dependencies(lift_score DESC);

CREATE TABLE IF NOT EXISTS skill_modalities (
    skill_name TEXT PRIMARY KEY,
    modality_type TEXT NOT NULL,
    input_format TEXT,
    output_format TEXT,
    requires_human_review BOOLEAN DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
