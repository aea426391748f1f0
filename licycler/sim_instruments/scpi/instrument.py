"""The SCPI parser and the IEEE 488.2 core every emulated instrument shares.

:class:`ScpiInstrument` executes one program message (a line) the way a real instrument does:

- program message units separated by ``;`` (outside quotes); replies of the queries of one line
  are joined by ``;`` into one response line;
- header path rules: a unit without a leading colon is relative to the path of the previous
  unit (its header minus the last node); a leading colon goes back to the root; common commands
  (``*XXX``) leave the path alone; each new line starts at the root;
- headers in short or long form in any case, optional nodes and numeric suffixes (see
  :mod:`.tree`); parameters after white space, comma separated (see :mod:`.values`);
- IEEE 488.2 common commands ``*IDN? *RST *CLS *OPC *OPC? *WAI *ESR? *ESE *SRE *STB? *TST?``;
- an error queue of ``error_queue_size`` entries whose last entry becomes -350 Queue overflow
  when it is full; errors set the standard event status bits (CME, EXE, DDE, QYE);
- a command error (-1xx) stops the rest of the line; an execution error does not.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import re
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from licycler.sim_instruments.interfaces import Clock
from licycler.sim_instruments.scpi.errors import STANDARD_MESSAGES, ScpiError, esr_bit_for
from licycler.sim_instruments.scpi.tree import Call, Command, CommandTree
from licycler.sim_instruments.scpi.values import Choice, Numeric, Param, split_params

__all__ = ["ScpiInstrument", "split_units"]

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_MAX_MNEMONIC = 12


def split_units(line: str) -> list[str]:
    """Split a program message into its units at ``;`` outside quoted strings."""
    if ";" not in line:
        return [line]
    units: list[str] = []
    start = 0
    quote = ""
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == ";":
            units.append(line[start:i])
            start = i + 1
    units.append(line[start:])
    return units


class ScpiInstrument:
    """Base of an emulated SCPI instrument: parser, common commands, error queue, status.

    Subclasses set ``identity`` and implement :meth:`build_commands`, :meth:`reset`, and may
    override :meth:`format_error`, :meth:`format_number`, :meth:`pending_until`,
    :meth:`next_event_s` and :meth:`advance` (called at the start of every line to bring the simulated world to now).
    """

    identity = "LICYCLER,SCPI EMULATION,0,0"
    error_queue_size = 10
    channels = 1

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.errors: deque[tuple[int, str]] = deque()
        self.esr = 0
        self.ese = 0
        self.sre = 0
        self._opc_due: float | None = None
        self._lock: asyncio.Lock | None = None
        self.settings: dict[tuple[str, int], Any] = {}
        self._setting_defaults: dict[str, Any] = {}
        self.tree = CommandTree(self.build_commands(), max_suffix=self.channels)
        self.log: list[tuple[str, str | None]] | None = None
        """When a list, every line executed and its reply are appended (transcripts)."""

    # ---------------------------------------------------------------- for subclasses

    def build_commands(self) -> list[Command]:
        """The instrument's command tree (subsystem commands; common commands are built in)."""
        return []

    def reset(self) -> None:
        """``*RST``: the instrument's reset state (does not touch the error queue)."""

    def format_error(self, code: int, message: str) -> str:
        """One ``:SYST:ERR?`` reply for an entry of the queue."""
        return f'{code},"{message}"'

    def format_number(self, value: float) -> str:
        """A numeric reply (NR3); NaN as 9.91E+37 ("not a number")."""
        if math.isnan(value):
            return "9.910000E+37"
        return f"{value:.6E}"

    def pending_until(self) -> float:
        """Clock time at which pending operations (a running acquisition) complete."""
        return -math.inf

    def advance(self) -> None:
        """Bring the emulated world up to ``clock.now()`` before a line is executed."""

    def next_event_s(self) -> float:
        """Clock time of the next thing the instrument does by itself (a trigger model's end, an
        automatic output-off), inf when nothing is pending. A server calls :meth:`advance` then, with
        no command arriving, so that the instrument acts on its own clock (a controller that died)."""
        return math.inf

    # ---------------------------------------------------------------- stored settings

    def setting(
        self,
        header: str,
        key: str,
        param: Param,
        default: Any,
        *,
        fmt: Callable[[Any], str] | None = None,
    ) -> Command:
        """A command that only stores a value (per channel suffix) and reports it back.

        Numeric settings also answer ``HEADER? MIN|MAX|DEF``. :meth:`reset` (through
        :meth:`reset_settings`) restores ``default``.
        """
        self._setting_defaults[key] = default

        def fmt_value(value: Any) -> str:
            if fmt is not None:
                return fmt(value)
            if isinstance(value, bool):
                return "1" if value else "0"
            if isinstance(value, float):
                return self.format_number(value)
            return str(value)

        def set_(call: Call) -> None:
            self.settings[(key, call.channel)] = call.args[0]

        def query(call: Call) -> str:
            which = call.arg(0)
            if which is not None and isinstance(param, Numeric):
                bound = {"MIN": param.minimum, "MAX": param.maximum, "DEF": param.default_value}
                value = bound[which]
                return fmt_value(float(value) if value is not None else default)
            return fmt_value(self.get_setting(key, call.channel))

        query_params: list[Param] = []
        if isinstance(param, Numeric):
            query_params = [Choice(("MINimum", "MAXimum", "DEFault"), optional=True)]
        return Command(header, set=set_, query=query, params=[param], query_params=query_params)

    def get_setting(self, key: str, channel: int = 1) -> Any:
        """A stored setting's value (its default until set)."""
        return self.settings.get((key, channel), self._setting_defaults[key])

    def reset_settings(self) -> None:
        """Forget all stored settings (back to their defaults)."""
        self.settings.clear()

    # ---------------------------------------------------------------- error queue / status

    @property
    def lock(self) -> asyncio.Lock:
        """Serialises program messages from all connections (created in the running loop)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def push_error(self, code: int, message: str | None = None) -> None:
        """Queue an error (the last slot becomes -350 Queue overflow when full)."""
        text = message or STANDARD_MESSAGES.get(code, "Error")
        self.esr |= esr_bit_for(code)
        if len(self.errors) < self.error_queue_size:
            self.errors.append((code, text))
        else:
            self.errors[-1] = (-350, STANDARD_MESSAGES[-350])

    def pop_error(self) -> tuple[int, str]:
        """The oldest error, removed from the queue; ``(0, "No error")`` when empty."""
        return self.errors.popleft() if self.errors else (0, STANDARD_MESSAGES[0])

    def status_byte(self) -> int:
        """IEEE 488.2 status byte: EAV (bit 2), ESB (bit 5), MSS (bit 6)."""
        self._update_opc()
        stb = 0
        if self.errors:
            stb |= 1 << 2
        if self.esr & self.ese:
            stb |= 1 << 5
        if stb & self.sre & 0xBF:
            stb |= 1 << 6
        return stb

    def _update_opc(self) -> None:
        if self._opc_due is not None and self.clock.now() >= self._opc_due:
            self.esr |= 1
            self._opc_due = None

    # ---------------------------------------------------------------- execution

    async def execute_line(self, line: str) -> str | None:
        """Execute one program message; returns the response line (without terminator) or
        None when the message held no query."""
        self.advance()
        replies: list[str] = []
        path: Sequence[str] = ()
        for unit in split_units(line.strip("\r\n")):
            unit = unit.strip()
            if not unit:
                continue
            try:
                path = await self._execute_unit(unit, path, replies)
            except ScpiError as exc:
                self.push_error(exc.code, exc.message)
                if exc.is_command_error:
                    break
        reply = ";".join(replies) if replies else None
        if self.log is not None:
            self.log.append((line.strip("\r\n"), reply))
        return reply

    async def _execute_unit(
        self, unit: str, path: Sequence[str], replies: list[str]
    ) -> Sequence[str]:
        parts = unit.split(None, 1)
        header = parts[0]
        rest = parts[1] if len(parts) > 1 else ""
        is_query = header.endswith("?")
        name = header[:-1] if is_query else header
        if name.startswith("*"):
            reply = await self._common(name[1:].upper(), is_query, split_params(rest))
            if is_query:
                replies.append(reply if reply is not None else "")
            return path
        absolute = name.startswith(":")
        words = (name[1:] if absolute else name).split(":")
        for w in words:
            if not _WORD.fullmatch(w):
                raise ScpiError(-102)
            if len(w) > _MAX_MNEMONIC:
                raise ScpiError(-112)
        full = tuple(words) if absolute else (*path, *words)
        command, suffixes = self.tree.resolve(full, is_query)
        new_path = full[:-1]
        args = command.parse_args(split_params(rest), is_query)
        handler = command.query if is_query else command.set
        assert handler is not None
        result: Any = handler(Call(header, suffixes, args, is_query))
        if inspect.isawaitable(result):
            result = await result
        if is_query:
            replies.append("" if result is None else str(result))
        return new_path

    async def _common(self, name: str, is_query: bool, tokens: list[str]) -> str | None:
        def no_params() -> None:
            if tokens:
                raise ScpiError(-108)

        def one_int() -> int:
            if not tokens:
                raise ScpiError(-109)
            if len(tokens) > 1:
                raise ScpiError(-108)
            return int(Numeric(minimum=0, maximum=255, integer=True).parse(tokens[0]))

        if is_query:
            no_params()
            if name == "IDN":
                return self.identity
            if name == "OPC":
                await self.clock.sleep_until(self.pending_until())
                self.advance()
                return "1"
            if name == "ESR":
                self._update_opc()
                value, self.esr = self.esr, 0
                return str(value)
            if name == "STB":
                return str(self.status_byte())
            if name == "ESE":
                return str(self.ese)
            if name == "SRE":
                return str(self.sre)
            if name == "TST":
                return "0"
            return self.extra_common(name, is_query, tokens)
        if name == "RST":
            no_params()
            self.reset()
        elif name == "CLS":
            no_params()
            self.errors.clear()
            self.esr = 0
            self._opc_due = None
        elif name == "OPC":
            no_params()
            self._opc_due = self.pending_until()
            self._update_opc()
        elif name == "WAI":
            no_params()
            await self.clock.sleep_until(self.pending_until())
            self.advance()
        elif name == "ESE":
            self.ese = one_int()
        elif name == "SRE":
            self.sre = one_int() & 0xBF
        else:
            return self.extra_common(name, is_query, tokens)
        return None

    def extra_common(self, name: str, is_query: bool, tokens: list[str]) -> str | None:
        """Instrument-specific common commands (``*LANG?`` ...); -113 by default."""
        raise ScpiError(-113)
