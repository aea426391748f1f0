"""Real instrument drivers behind small async capability interfaces (pyvisa @py and pyserial)."""

from licycler.drivers.alicat import AlicatPressureController
from licycler.drivers.emstat4 import EmStat4Channel
from licycler.drivers.errors import DriverError, IdentityMismatch, InstrumentReportedError, NotSupported
from licycler.drivers.generic_scpi import CommandMap, GenericScpiSmu, bundled_map
from licycler.drivers.interfaces import (
    InstrumentError,
    LeasedChannel,
    OutputOffMode,
    PressureRig,
    RigStatus,
    SampleBlock,
    SourceMeasureChannel,
)
from licycler.drivers.keithley2450 import Keithley2450
from licycler.drivers.keysight_b2900 import KeysightB2900
from licycler.drivers.mark10 import Mark10ForceGauge
from licycler.drivers.scan import ScanResult, scan
from licycler.drivers.transport import VisaTransport

__all__ = [
    "AlicatPressureController",
    "CommandMap",
    "DriverError",
    "EmStat4Channel",
    "GenericScpiSmu",
    "IdentityMismatch",
    "InstrumentError",
    "InstrumentReportedError",
    "Keithley2450",
    "KeysightB2900",
    "LeasedChannel",
    "Mark10ForceGauge",
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
