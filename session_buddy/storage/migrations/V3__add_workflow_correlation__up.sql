-- V3__add_workflow_correlation: where in a workflow each invocation happened.
ALTER TABLE skill_invocation ADD COLUMN workflow_phase TEXT;
ALTER TABLE skill_invocation ADD COLUMN workflow_step_id TEXT;

CREATE INDEX IF NOT EXISTS idx_invocation_workflow_phase
    ON skill_invocation(workflow_phase, skill_name);
