"""Storage: SQLAlchemy models, sessions and repositories, and the file store."""
