-- Reverses V3__add_workflow_correlation.
DROP INDEX IF EXISTS idx_invocation_workflow_phase;
ALTER TABLE skill_invocation DROP COLUMN workflow_step_id;
ALTER TABLE skill_invocation DROP COLUMN workflow_phase;
