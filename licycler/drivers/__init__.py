"""Real instrument drivers behind small async capability interfaces (pyvisa @py and pyserial)."""

from licycler.drivers.errors import DriverError, IdentityMismatch, InstrumentReportedError, NotSupported
from licycler.drivers.generic_scpi import CommandMap, GenericScpiSmu, bundled_map
from licycler.drivers.interfaces import (
    InstrumentError,
    OutputOffMode,
    PressureRig,
    RigStatus,
    SampleBlock,
    SourceMeasureChannel,
)
from licycler.drivers.keithley2450 import Keithley2450
from licycler.drivers.keysight_b2900 import KeysightB2900
from licycler.drivers.scan import ScanResult, scan
from licycler.drivers.transport import VisaTransport

__all__ = [
    "CommandMap",
    "DriverError",
    "GenericScpiSmu",
    "IdentityMismatch",
    "InstrumentError",
    "InstrumentReportedError",
    "Keithley2450",
    "KeysightB2900",
    "NotSupported",
    "OutputOffMode",
    "PressureRig",
    "RigStatus",
    "SampleBlock",
    "ScanResult",
    "SourceMeasureChannel",
    "VisaTransport",
    "bundled_map",
    "scan",
]
