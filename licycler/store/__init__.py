"""The durable store: SQLAlchemy 2.x, SQLite (WAL) by default, PostgreSQL by URL."""

from licycler.store.process_writer import ProcessStoreWriter
from licycler.store.sql import DEFAULT_DB_URL, BatchWriter, SampleRows, Store, StoreError, StoreWriter, WriteBatch

__all__ = [
    "DEFAULT_DB_URL",
    "BatchWriter",
    "ProcessStoreWriter",
    "SampleRows",
    "Store",
    "StoreError",
    "StoreWriter",
    "WriteBatch",
]
