"""Key management across the database: the registry of encrypted columns and rotation."""
