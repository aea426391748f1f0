"""SCPI error/event codes (SCPI-99 volume 2, chapter 21) and the error raised by command handlers."""

from __future__ import annotations

__all__ = ["STANDARD_MESSAGES", "ScpiError", "esr_bit_for"]

STANDARD_MESSAGES: dict[int, str] = {
    0: "No error",
    -100: "Command error",
    -101: "Invalid character",
    -102: "Syntax error",
    -103: "Invalid separator",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -110: "Command header error",
    -112: "Program mnemonic too long",
    -113: "Undefined header",
    -114: "Header suffix out of range",
    -120: "Numeric data error",
    -121: "Invalid character in number",
    -131: "Invalid suffix",
    -141: "Invalid character data",
    -148: "Character data not allowed",
    -150: "String data error",
    -151: "Invalid string data",
    -200: "Execution error",
    -213: "Init ignored",
    -220: "Parameter error",
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -230: "Data corrupt or stale",
    -300: "Device-specific error",
    -350: "Queue overflow",
    -400: "Query error",
    -410: "Query INTERRUPTED",
    -420: "Query UNTERMINATED",
}


class ScpiError(Exception):
    """An error an emulated instrument puts in its error queue (code and message).

    Handlers raise it; the parser catches it, queues it and sets the event status bit.
    """

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        self.message = message or STANDARD_MESSAGES.get(code, "Error")
        super().__init__(f"{code},{self.message}")

    @property
    def is_command_error(self) -> bool:
        """A -1xx error: the rest of the program message is not executed."""
        return -199 <= self.code <= -100


def esr_bit_for(code: int) -> int:
    """The standard event status register bit an error sets (IEEE 488.2 11.5.1)."""
    if -199 <= code <= -100:
        return 1 << 5  # CME
    if -299 <= code <= -200:
        return 1 << 4  # EXE
    if -499 <= code <= -400:
        return 1 << 2  # QYE
    if code != 0:
        return 1 << 3  # DDE (-3xx and device-specific positive codes)
    return 0
