"""The durable store: SQLAlchemy 2.x, SQLite (WAL) by default, PostgreSQL by URL."""
