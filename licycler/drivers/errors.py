"""Driver errors: every failure names the instrument, the command and the cause."""

from __future__ import annotations

__all__ = ["DriverError", "IdentityMismatch", "InstrumentReportedError", "NotSupported"]


class DriverError(Exception):
    """An instrument could not be reached or did not answer as it should.

    ``instrument`` is the driver's name for it (model and resource), ``command`` the command
    being sent (or None), ``cause`` a short reason (timeout, disconnect, bad reply ...).
    """

    def __init__(self, instrument: str, command: str | None, cause: str) -> None:
        self.instrument = instrument
        self.command = command
        self.cause = cause
        where = f" on '{command}'" if command else ""
        super().__init__(f"{instrument}{where}: {cause}")


class InstrumentReportedError(DriverError):
    """The instrument's own error queue reported an error (code and message kept)."""

    def __init__(self, instrument: str, command: str | None, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(instrument, command, f"instrument error {code}: {message}")


class IdentityMismatch(DriverError):
    """``*IDN?`` (or its equivalent) does not match the configured model."""


class NotSupported(DriverError):
    """The instrument cannot do what was asked (e.g. a force gauge has no pressure setpoint)."""
