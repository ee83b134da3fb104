"""The skills database: `SkillsStorage` for reads and writes, `MigrationManager` for its schema."""

from session_buddy.storage.migrations.base import MigrationError, MigrationManager
from session_buddy.storage.skills_storage import SkillsStorage

__all__ = ["MigrationError", "MigrationManager", "SkillsStorage"]
