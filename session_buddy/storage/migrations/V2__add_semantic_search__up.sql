-- V2__add_semantic_search: an embedding per invocation, for semantic skill search.
ALTER TABLE skill_invocation ADD COLUMN embedding BLOB;   -- packed float32 vector

CREATE INDEX IF NOT EXISTS idx_invocation_has_embedding
    ON skill_invocation(skill_name) WHERE embedding IS NOT NULL;
