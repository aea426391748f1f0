"""One SCPI parser for all emulated instruments, its command-tree format, a TCP server with
injectable faults, and the source-measure channel physics the SMU emulations share."""

from licycler.sim_instruments.scpi.errors import STANDARD_MESSAGES, ScpiError
from licycler.sim_instruments.scpi.instrument import ScpiInstrument, split_units
from licycler.sim_instruments.scpi.smu import Readings, SmuChannel
from licycler.sim_instruments.scpi.tree import Call, Command, CommandTree, HeaderPattern
from licycler.sim_instruments.scpi.values import (
    Boolean,
    ChannelList,
    Choice,
    Numeric,
    Param,
    QuotedChoice,
    String,
    split_params,
)

__all__ = [
    "STANDARD_MESSAGES",
    "Boolean",
    "Call",
    "ChannelList",
    "Choice",
    "Command",
    "CommandTree",
    "HeaderPattern",
    "Numeric",
    "Param",
    "QuotedChoice",
    "Readings",
    "ScpiError",
    "ScpiInstrument",
    "SmuChannel",
    "String",
    "split_params",
    "split_units",
]
