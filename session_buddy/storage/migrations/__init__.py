"""The V1-V4 schema migrations of the skills database and the manager that applies them."""

from session_buddy.storage.migrations.base import Migration, MigrationError, MigrationManager

__all__ = ["Migration", "MigrationError", "MigrationManager"]
