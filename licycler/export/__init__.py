"""Standard exports of a run: the Battery Data Format (ontology 1.3.0 labels) as CSV or Parquet,
with a cycles table and the event log."""

from licycler.export.files import FORMATS, export_run, write_table
from licycler.export.tables import (
    BDF_ONTOLOGY_VERSION,
    BDF_REQUIRED,
    Column,
    Table,
    bdf_table,
    cycles_table,
    events_table,
)

__all__ = [
    "BDF_ONTOLOGY_VERSION",
    "BDF_REQUIRED",
    "FORMATS",
    "Column",
    "Table",
    "bdf_table",
    "cycles_table",
    "events_table",
    "export_run",
    "write_table",
]
