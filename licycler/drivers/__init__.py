"""Real instrument drivers behind small async capability interfaces (pyvisa @py and pyserial)."""

from licycler.drivers.errors import DriverError, IdentityMismatch, InstrumentReportedError, NotSupported
from licycler.drivers.interfaces import (
    InstrumentError,
    OutputOffMode,
    PressureRig,
    RigStatus,
    SampleBlock,
    SourceMeasureChannel,
)

__all__ = [
    "DriverError",
    "IdentityMismatch",
    "InstrumentError",
    "InstrumentReportedError",
    "NotSupported",
    "OutputOffMode",
    "PressureRig",
    "RigStatus",
    "SampleBlock",
    "SourceMeasureChannel",
]
