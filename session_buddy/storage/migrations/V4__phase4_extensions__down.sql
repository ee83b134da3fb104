-- Reverses V4__phase4_extensions.
DROP TABLE IF EXISTS skill_modalities;
DROP TABLE IF EXISTS skill_dependencies;
DROP TABLE IF EXISTS skill_category_mapping;
DROP TABLE IF EXISTS skill_categories;
DROP TABLE IF EXISTS ab_test_outcomes;
DROP TABLE IF EXISTS ab_test_assignments;
DROP TABLE IF EXISTS ab_test_configs;
DROP TABLE IF EXISTS skill_cluster_membership;
DROP TABLE IF EXISTS skill_clusters;
DROP TABLE IF EXISTS skill_user_interactions;
DROP TABLE IF EXISTS skill_community_baselines;
DROP VIEW IF EXISTS v_realtime_skill_dashboard;
DROP TRIGGER IF EXISTS trg_metrics_cache_after_insert;
DROP TABLE IF EXISTS skill_anomalies;
DROP TABLE IF EXISTS skill_time_series;
DROP TABLE IF EXISTS skill_metrics_cache;
