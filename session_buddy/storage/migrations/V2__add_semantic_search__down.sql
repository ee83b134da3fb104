-- Reverses V2__add_semantic_search.
DROP INDEX IF EXISTS idx_invocation_has_embedding;
ALTER TABLE skill_invocation DROP COLUMN embedding;
