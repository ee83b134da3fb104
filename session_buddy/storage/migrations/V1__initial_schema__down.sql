-- Reverses V1__initial_schema.
DROP VIEW IF EXISTS v_daily_skill_source;
DROP TABLE IF EXISTS mv_daily_skills;
DROP VIEW IF EXISTS v_top_skills;
DROP VIEW IF EXISTS v_skill_effectiveness;
DROP VIEW IF EXISTS v_session_skill_summary;
DROP TRIGGER IF EXISTS trg_session_skills_after_insert;
DROP TABLE IF EXISTS session_skills;
DROP TRIGGER IF EXISTS trg_skill_metrics_after_insert;
DROP TABLE IF EXISTS skill_metrics;
DROP TRIGGER IF EXISTS trg_invocation_fts_after_insert;
DROP TABLE IF EXISTS skill_invocation_fts;
DROP TABLE IF EXISTS skill_invocation;
