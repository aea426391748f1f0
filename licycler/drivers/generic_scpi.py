"""A source-measure channel for any SCPI instrument, configured by a small YAML command map.

Labs own many SCPI SMUs; a command map says which command does what (``{value}`` is replaced by
the number), and :class:`GenericScpiSmu` does the rest (transport, ``*IDN?`` check, error queue,
safe state). Example maps are in ``licycler/drivers/command_maps/`` (:func:`bundled_map`).

Keys of a map (``*`` required)::

    name*: a label                       identity*: {manufacturer: ..., model: ...}
    configure: [commands sent first by configure_current_source]
    voltage_limit*: ":SOUR:CURR:VLIM {value}"      voltage_limit_query: ":SOUR:CURR:VLIM?"
    current_range / current_range_auto / voltage_range / voltage_range_auto / nplc: commands
    off_mode*: {high_impedance*: ..., normal: ..., zero: ...}
    set_current* / output_on* / output_off* / output_query* / tripped_query*: commands
    measure*: {query: ..., fields: [voltage, current, time | seconds, fraction, ignore ...]}
    error_query: ":SYST:ERR?" (default)    clear: "*CLS" (default)
    max_current_a: 1.0 (default: no check)  read_termination / write_termination: "\\n"
    lease: the instrument's own dead-man lease (below)

Fields of a reading: ``time`` is the instrument's time in s, reported as it is; ``seconds`` (and
``fraction``) are its clock's whole seconds and fraction (the 2450's ``SEC,FRAC``), reported from
the first reading the driver saw (its time base); with neither, the controller's clock is used.

The optional ``lease`` section declares the commands of the instrument's own lease (see
:class:`~licycler.drivers.interfaces.LeasedChannel`, docs/lease-generic-scpi.md); with it,
:meth:`GenericScpiSmu.for_resource` returns a :class:`LeasedGenericScpiSmu`. Its keys::

    mechanism*: one line naming the mechanism (events, docs)
    arm*: [commands that build and start the lease; the last one starts it]
    rearm*: one program message that restarts a running lease without a gap in the current
    running_query*: ":TRIG:STAT?"   running_reply*: "RUNNING" (a prefix of the reply)
    release*: ":ABOR" (stops the lease, leaves the output as it is)
    count_query*: ':TRAC:ACT? "{buffer}"' (readings in the instrument's buffer)
    data_query*: ':TRAC:DATA? {first},{last},"{buffer}",READ,SEC,FRAC,SOUR'
    fields*: [voltage, seconds, fraction, current] (as measure.fields, with a time)
    first_index: 1 (default; 0 where the instrument counts its buffer from 0)
    max_count: the instrument's largest {count} (default: no check)
    reading_time: s per reading; reading_time_per_nplc: s per power-line cycle (default 0)
    set_current: ":ABOR;:SOUR:CURR {value};:INIT" (the level while leased; default set_current)
    switch: {buffers: [defbuffer1, defbuffer2], after: 50000, rearm: ...} (two buffers in turn)

Placeholders: in ``arm``, ``rearm``, ``switch.rearm`` and ``set_current``: ``{count}`` readings per
lease (floor(duration / period)), ``{delay}`` = period - reading time (s, at least 0),
``{period}``, ``{duration}`` (s), ``{buffer}`` (the buffer in use); in ``count_query``: ``{buffer}``;
in ``data_query``: ``{first}``, ``{last}`` (indices, inclusive), ``{n}`` (how many), ``{buffer}``.
``{buffer}`` needs ``switch``. The driver confirms an arm and a re-arm by sending
``running_query`` in the same program message (``<rearm>;<running_query>``) and then checks that
the output is on. With ``switch``, a re-arm made when the active buffer holds more than ``after``
readings is ``switch.rearm`` with ``{buffer}`` the next buffer (it must clear that buffer and send
the readings there); the buffer left is read to its end by the next :meth:`read_block`. Without
``switch``, the buffer must hold every reading taken between two reads of the station and is
not cleared by the driver.
"""

from __future__ import annotations

import math
import string
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from licycler.drivers.errors import DriverError
from licycler.drivers.interfaces import OutputOffMode, SampleBlock
from licycler.drivers.scpi import ScpiDriver, expect_numbers, format_number, parse_int
from licycler.drivers.transport import VisaTransport
from licycler.errors import UserError

__all__ = ["CommandMap", "GenericScpiSmu", "LeaseCommands", "LeasedGenericScpiSmu", "bundled_map"]

FloatArray = npt.NDArray[np.float64]

_FIELDS = ("voltage", "current", "time", "seconds", "fraction", "ignore")
_REQUIRED = (
    "name", "identity", "voltage_limit", "off_mode", "set_current", "output_on", "output_off",
    "output_query", "tripped_query", "measure",
)
_OPTIONAL = (
    "configure", "voltage_limit_query", "current_range", "current_range_auto", "voltage_range",
    "voltage_range_auto", "nplc", "error_query", "clear", "max_current_a", "read_termination",
    "write_termination", "lease",
)
_LEASE_REQUIRED = (
    "mechanism", "arm", "rearm", "running_query", "running_reply", "release", "count_query",
    "data_query", "fields",
)
_LEASE_OPTIONAL = (
    "first_index", "max_count", "reading_time", "reading_time_per_nplc", "set_current", "switch",
)
_ARM_PLACEHOLDERS = frozenset({"count", "delay", "period", "duration", "buffer"})
_FETCH_CHUNK = 2000
"""Readings fetched per data query."""


def _placeholders(template: str) -> set[str]:
    """The ``{name}`` placeholders of a template (ValueError if it is not a valid one)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _time_fields(fields: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f for f in fields if f in ("time", "seconds", "fraction"))


def _check_fields(fields: Any, key: str, bad: Any) -> tuple[str, ...]:
    if (
        not isinstance(fields, list)
        or any(f not in _FIELDS for f in fields)
        or fields.count("voltage") != 1
        or any(fields.count(f) > 1 for f in ("current", "time", "seconds", "fraction"))
        or ("time" in fields and "seconds" in fields)
        or ("fraction" in fields and "seconds" not in fields)
    ):
        raise bad(
            f"{key}: a list of {', '.join(_FIELDS)} with one voltage, at most one of each other"
            " (time or seconds, fraction only with seconds)"
        )
    return tuple(fields)


@dataclass(frozen=True)
class LeaseCommands:
    """The ``lease`` section of a command map (see the module doc for the keys)."""

    mechanism: str
    arm: tuple[str, ...]
    rearm: str
    running_query: str
    running_reply: str
    release: str
    count_query: str
    data_query: str
    fields: tuple[str, ...]
    first_index: int = 1
    max_count: int | None = None
    reading_time_s: float = 0.0
    reading_time_per_nplc_s: float = 0.0
    set_current: str | None = None
    buffers: tuple[str, ...] = ("",)
    """The buffers used in turn (``switch.buffers``); one unnamed buffer without ``switch``."""
    switch_after: int | None = None
    switch_rearm: str | None = None

    @classmethod
    def from_dict(cls, data: Any, bad: Any) -> LeaseCommands:
        """Check the section; ``bad(message)`` makes the error (naming the file)."""
        if not isinstance(data, dict):
            raise bad("lease: expected a mapping of keys to commands")
        unknown = sorted(set(data) - set(_LEASE_REQUIRED) - set(_LEASE_OPTIONAL))
        if unknown:
            raise bad(f"lease: unknown key(s) {', '.join(unknown)}")
        missing = [k for k in _LEASE_REQUIRED if k not in data]
        if missing:
            raise bad(f"lease: missing key(s) {', '.join(missing)}")
        switch = data.get("switch")
        if switch is not None and (
            not isinstance(switch, dict) or set(switch) != {"buffers", "after", "rearm"}
        ):
            raise bad("lease.switch: expected {buffers: [...], after: N, rearm: ...}")

        def text(key: str, value: Any, allowed: frozenset[str] = frozenset()) -> str:
            if not isinstance(value, str) or not value.strip():
                raise bad(f"lease.{key}: expected a command string")
            try:
                names = _placeholders(value)
            except ValueError as exc:
                raise bad(f"lease.{key}: not a valid template ({exc})") from exc
            if switch is None:
                allowed = allowed - {"buffer"}
            extra = sorted(names - allowed)
            if extra:
                known = ", ".join(f"{{{n}}}" for n in sorted(allowed)) or "none"
                raise bad(
                    f"lease.{key}: unknown placeholder(s) {', '.join(f'{{{n}}}' for n in extra)}"
                    f" (known here: {known}{'; {buffer} needs switch' if switch is None else ''})"
                )
            return value

        def number(key: str, *, integer: bool, minimum: float, default: Any) -> Any:
            value = data.get(key, default)
            if value is default:
                return value
            ok = isinstance(value, int) if integer else isinstance(value, int | float)
            if isinstance(value, bool) or not ok or not value >= minimum:
                kind = "an integer" if integer else "a number"
                raise bad(f"lease.{key}: expected {kind} >= {minimum}")
            return value if integer else float(value)

        arm = data["arm"]
        if not isinstance(arm, list) or not arm:
            raise bad("lease.arm: expected a list of commands (the last one starts the lease)")
        fields = _check_fields(data["fields"], "lease.fields", bad)
        if not _time_fields(fields):
            raise bad("lease.fields: the readings of a lease need a time (time or seconds)")
        data_query = text("data_query", data["data_query"], frozenset({"first", "last", "n", "buffer"}))
        if "first" not in _placeholders(data_query) or not {"last", "n"} & _placeholders(data_query):
            raise bad("lease.data_query: the query must contain {first} and {last} or {n}")
        first_index = data.get("first_index", 1)
        if first_index not in (0, 1) or isinstance(first_index, bool):
            raise bad("lease.first_index: expected 0 or 1")
        set_current = data.get("set_current")
        buffers: tuple[str, ...] = ("",)
        switch_after: int | None = None
        switch_rearm: str | None = None
        if switch is not None:
            names = switch["buffers"]
            if (
                not isinstance(names, list) or len(names) < 2
                or not all(isinstance(n, str) and n.strip() for n in names)
            ):
                raise bad("lease.switch.buffers: expected a list of two or more buffer names")
            after = switch["after"]
            if isinstance(after, bool) or not isinstance(after, int) or after < 1:
                raise bad("lease.switch.after: expected a positive integer (readings)")
            buffers, switch_after = tuple(names), after
            switch_rearm = text("switch.rearm", switch["rearm"], _ARM_PLACEHOLDERS)
            if "buffer" not in _placeholders(switch_rearm):
                raise bad("lease.switch.rearm: the command must contain {buffer}")
        return cls(
            mechanism=text("mechanism", data["mechanism"]),
            arm=tuple(text("arm", c, _ARM_PLACEHOLDERS) for c in arm),
            rearm=text("rearm", data["rearm"], _ARM_PLACEHOLDERS),
            running_query=text("running_query", data["running_query"]),
            running_reply=text("running_reply", str(data["running_reply"])),
            release=text("release", data["release"]),
            count_query=text("count_query", data["count_query"], frozenset({"buffer"})),
            data_query=data_query,
            fields=fields,
            first_index=first_index,
            max_count=number("max_count", integer=True, minimum=1, default=None),
            reading_time_s=number("reading_time", integer=False, minimum=0.0, default=0.0),
            reading_time_per_nplc_s=number(
                "reading_time_per_nplc", integer=False, minimum=0.0, default=0.0
            ),
            set_current=None if set_current is None else text(
                "set_current", set_current, _ARM_PLACEHOLDERS | {"value"}
            ),
            buffers=buffers,
            switch_after=switch_after,
            switch_rearm=switch_rearm,
        )


@dataclass(frozen=True)
class CommandMap:
    """The commands of one instrument model (see the module doc for the YAML keys)."""

    name: str
    manufacturer: str
    model: str
    voltage_limit: str
    off_mode: dict[str, str]
    set_current: str
    output_on: str
    output_off: str
    output_query: str
    tripped_query: str
    measure_query: str
    measure_fields: tuple[str, ...]
    configure: tuple[str, ...] = ()
    voltage_limit_query: str | None = None
    current_range: str | None = None
    current_range_auto: str | None = None
    voltage_range: str | None = None
    voltage_range_auto: str | None = None
    nplc: str | None = None
    error_query: str = ":SYST:ERR?"
    clear: str = "*CLS"
    max_current_a: float | None = None
    read_termination: str = "\n"
    write_termination: str = "\n"
    lease: LeaseCommands | None = None
    source: str = field(default="<dict>", compare=False)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> CommandMap:
        """Build and check a map; a mistake raises :class:`UserError` naming the file and key."""

        def bad(message: str) -> UserError:
            return UserError(f"{source}: {message}")

        if not isinstance(data, dict):
            raise bad("a command map must be a mapping of keys to commands")
        unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
        if unknown:
            raise bad(f"unknown key(s) {', '.join(unknown)}")
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise bad(f"missing key(s) {', '.join(missing)}")

        def text(key: str, value: Any) -> str:
            if not isinstance(value, str) or not value.strip():
                raise bad(f"{key}: expected a command string")
            return value

        def template(key: str) -> str | None:
            value = data.get(key)
            if value is None:
                return None
            value = text(key, value)
            if "{value}" not in value:
                raise bad(f"{key}: the command must contain {{value}}")
            return value

        identity = data["identity"]
        if not isinstance(identity, dict) or not {"manufacturer", "model"} <= set(identity):
            raise bad("identity: expected {manufacturer: ..., model: ...}")
        off_mode = data["off_mode"]
        if not isinstance(off_mode, dict) or "high_impedance" not in off_mode:
            raise bad("off_mode: expected a mapping with at least high_impedance")
        for key in off_mode:
            if key not in {m.value for m in OutputOffMode}:
                raise bad(f"off_mode: unknown mode {key!r}")
        measure = data["measure"]
        if not isinstance(measure, dict) or "query" not in measure or "fields" not in measure:
            raise bad("measure: expected {query: ..., fields: [...]}")
        fields = _check_fields(measure["fields"], "measure.fields", bad)
        lease = None if data.get("lease") is None else LeaseCommands.from_dict(data["lease"], bad)
        if lease is not None and set(_time_fields(fields)) != set(_time_fields(lease.fields)):
            raise bad("lease.fields: the time fields must be those of measure.fields (one time base)")
        configure = data.get("configure", [])
        if not isinstance(configure, list):
            raise bad("configure: expected a list of commands")
        max_current = data.get("max_current_a")
        if max_current is not None and not (
            isinstance(max_current, int | float) and max_current > 0
        ):
            raise bad("max_current_a: expected a positive number (A)")
        vlim = template("voltage_limit")
        set_current = template("set_current")
        assert vlim is not None
        assert set_current is not None
        return cls(
            name=text("name", data["name"]),
            manufacturer=text("identity.manufacturer", identity["manufacturer"]),
            model=text("identity.model", str(identity["model"])),
            voltage_limit=vlim,
            off_mode={k: text(f"off_mode.{k}", v) for k, v in off_mode.items()},
            set_current=set_current,
            output_on=text("output_on", data["output_on"]),
            output_off=text("output_off", data["output_off"]),
            output_query=text("output_query", data["output_query"]),
            tripped_query=text("tripped_query", data["tripped_query"]),
            measure_query=text("measure.query", measure["query"]),
            measure_fields=fields,
            configure=tuple(text("configure", c) for c in configure),
            voltage_limit_query=data.get("voltage_limit_query"),
            current_range=template("current_range"),
            current_range_auto=data.get("current_range_auto"),
            voltage_range=template("voltage_range"),
            voltage_range_auto=data.get("voltage_range_auto"),
            nplc=template("nplc"),
            error_query=data.get("error_query", ":SYST:ERR?"),
            clear=data.get("clear", "*CLS"),
            max_current_a=None if max_current is None else float(max_current),
            read_termination=data.get("read_termination", "\n"),
            write_termination=data.get("write_termination", "\n"),
            lease=lease,
            source=source,
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> CommandMap:
        """Read a map from a YAML file."""
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UserError(f"{p}: cannot read the command map: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise UserError(f"{p}: not valid YAML: {exc}") from exc
        return cls.from_dict(data, str(p))


def bundled_map(name: str) -> CommandMap:
    """One of the maps shipped in ``licycler/drivers/command_maps`` (``keithley2450`` ...)."""
    ref = resources.files("licycler.drivers").joinpath("command_maps", f"{name}.yaml")
    data = yaml.safe_load(ref.read_text(encoding="utf-8"))
    return CommandMap.from_dict(data, f"command_maps/{name}.yaml")


class GenericScpiSmu(ScpiDriver):
    """A :class:`SourceMeasureChannel` speaking the commands of a :class:`CommandMap`.

    Build it with :meth:`for_resource` (or :meth:`for_transport`): a map with a ``lease`` section
    gives a :class:`LeasedGenericScpiSmu`. The constructor builds exactly the class it is called
    on, so ``GenericScpiSmu(transport, command_map)`` never holds a lease.
    """

    def __init__(
        self, transport: VisaTransport, command_map: CommandMap, *, name: str | None = None
    ) -> None:
        super().__init__(transport, name=name or command_map.name)
        self.map = command_map
        self.manufacturers = (command_map.manufacturer,)
        self.models = (command_map.model,)
        self.error_query = command_map.error_query
        self._t0 = time.monotonic()
        self._origin: tuple[float, float] | None = None
        """Seconds and fraction of the first reading seen (fields ``seconds``/``fraction``)."""

    @classmethod
    def for_transport(
        cls, transport: VisaTransport, command_map: CommandMap, *, name: str | None = None
    ) -> GenericScpiSmu:
        """A driver on ``transport``: a :class:`LeasedGenericScpiSmu` when the map has a lease."""
        if command_map.lease is not None and not issubclass(cls, LeasedGenericScpiSmu):
            return LeasedGenericScpiSmu(transport, command_map, name=name)
        return cls(transport, command_map, name=name)

    @classmethod
    def for_resource(
        cls,
        resource: str,
        command_map: CommandMap,
        *,
        name: str | None = None,
        timeout_s: float = 2.0,
        retries: int = 2,
    ) -> GenericScpiSmu:
        """A driver on a new transport to ``resource`` (not opened yet: ``await connect()``); a
        :class:`LeasedGenericScpiSmu` when the map has a ``lease`` section."""
        label = name or f"{command_map.name} at {resource}"
        transport = VisaTransport(
            resource, name=label, timeout_s=timeout_s, retries=retries,
            read_termination=command_map.read_termination,
            write_termination=command_map.write_termination,
        )
        return cls.for_transport(transport, command_map, name=label)

    async def connect(self) -> str:
        await self.transport.open()
        identity = await self.identify()
        await self.transport.write(self.map.clear, idempotent=True)
        return identity

    async def configure_current_source(
        self,
        *,
        voltage_limit_v: float,
        current_range_a: float | None = None,
        voltage_range_v: float | None = None,
        nplc: float = 1.0,
        off_mode: OutputOffMode = OutputOffMode.HIGH_IMPEDANCE,
    ) -> None:
        m = self.map
        if off_mode.value not in m.off_mode:
            raise DriverError(self.name, None, f"the command map has no off mode {off_mode.value}")
        commands = list(m.configure)

        def optional(template: str | None, value: float | None, auto: str | None) -> None:
            if value is None:
                if auto is not None:
                    commands.append(auto)
            elif template is not None:
                commands.append(template.format(value=format_number(value)))

        optional(m.current_range, current_range_a, m.current_range_auto)
        optional(m.voltage_range, voltage_range_v, m.voltage_range_auto)
        optional(m.nplc, nplc, None)
        commands.append(m.voltage_limit.format(value=format_number(voltage_limit_v)))
        commands.append(m.off_mode[off_mode.value])
        for command in commands:
            await self.transport.write(command, idempotent=True)
        await self.check_errors("configure_current_source")
        if m.voltage_limit_query is not None:
            limit = await self.query_number(m.voltage_limit_query)
            if not abs(limit - voltage_limit_v) <= 1e-6 * max(1.0, abs(voltage_limit_v)):
                raise DriverError(
                    self.name, m.voltage_limit_query,
                    f"voltage limit reads back {limit} V, expected {voltage_limit_v} V",
                )

    def _check_current(self, current_a: float) -> None:
        limit = self.map.max_current_a
        if limit is not None and not abs(current_a) <= limit:
            raise ValueError(f"current_a must be within +-{limit} A, got {current_a}")

    async def set_current(self, current_a: float) -> None:
        self._check_current(current_a)
        command = self.map.set_current.format(value=format_number(current_a))
        await self.transport.write(command, idempotent=True)

    async def output_on(self) -> None:
        await self.transport.write(self.map.output_on, idempotent=True)

    async def output_off(self) -> None:
        await self.transport.write(self.map.output_off, idempotent=True)

    async def output_enabled(self) -> bool:
        return await self.query_bool(self.map.output_query)

    async def voltage_limit_tripped(self) -> bool:
        return await self.query_bool(self.map.tripped_query)

    async def safe_state(self) -> None:
        """High-impedance off mode, 0 A, output off; the output must read back off."""
        m = self.map
        writes = (m.off_mode["high_impedance"], m.set_current.format(value="0"), m.output_off)
        for _ in range(3):
            for command in writes:
                await self.transport.write(command, idempotent=True)
            if not await self.output_enabled():
                return
        raise DriverError(self.name, m.output_off, "the output still reads on")

    async def read_block(self) -> SampleBlock:
        fields = self.map.measure_fields
        values = await self.transport.query_as(self.map.measure_query, expect_numbers(len(fields)))
        return self._block(values.reshape(1, len(fields)), fields)

    def _block(self, rows: FloatArray, fields: tuple[str, ...]) -> SampleBlock:
        """Rows of readings in the order of ``fields`` as a block on the driver's time base."""
        if not rows.shape[0]:
            return SampleBlock.empty()

        def column(name: str) -> FloatArray | None:
            return np.ascontiguousarray(rows[:, fields.index(name)]) if name in fields else None

        seconds, fraction, t = column("seconds"), column("fraction"), column("time")
        if seconds is not None:
            fraction = np.zeros_like(seconds) if fraction is None else fraction
            if self._origin is None:
                self._origin = (float(seconds[0]), float(fraction[0]))
            sec0, frac0 = self._origin
            t = (seconds - sec0) + (fraction - frac0)
        elif t is None:
            t = np.full(rows.shape[0], time.monotonic() - self._t0)
        nan = np.full(rows.shape[0], np.nan)
        voltage, current = column("voltage"), column("current")
        return SampleBlock(
            time_s=np.asarray(t, dtype=np.float64),
            voltage_v=nan.copy() if voltage is None else voltage,
            current_a=nan if current is None else current,
        )


@dataclass
class _Lease:
    """The lease in force: its placeholder values and the buffer in use (index in ``buffers``)."""

    values: dict[str, Any]
    buffer: int = 0


class LeasedGenericScpiSmu(GenericScpiSmu):
    """A :class:`GenericScpiSmu` whose map declares the instrument's lease: a
    :class:`~licycler.drivers.interfaces.LeasedChannel` (see the module doc for the keys).

    While leased, :meth:`read_block` returns the readings the instrument took into its buffer
    since the previous call (``count_query``, then ``data_query`` for the new ones); readings a
    released lease left unread come first in the next :meth:`read_block`.
    """

    def __init__(
        self, transport: VisaTransport, command_map: CommandMap, *, name: str | None = None
    ) -> None:
        if command_map.lease is None:
            raise ValueError(f"{command_map.source}: the command map has no lease section")
        super().__init__(transport, command_map, name=name)
        self.lease: LeaseCommands = command_map.lease
        self.lease_mechanism: str = self.lease.mechanism
        self._nplc = 1.0
        self._lease: _Lease | None = None
        self._next = 1
        """Position (from 1) of the first reading not returned yet in the active buffer."""
        self._drain: tuple[int, int] | None = None
        """A buffer switched away from, and the position of its first reading not returned yet."""
        self._pending: list[SampleBlock] = []

    async def configure_current_source(
        self,
        *,
        voltage_limit_v: float,
        current_range_a: float | None = None,
        voltage_range_v: float | None = None,
        nplc: float = 1.0,
        off_mode: OutputOffMode = OutputOffMode.HIGH_IMPEDANCE,
    ) -> None:
        """As :meth:`GenericScpiSmu.configure_current_source`; a running lease is released first
        (the source is never set up under the instrument's lease program)."""
        await self.release_lease()
        await super().configure_current_source(
            voltage_limit_v=voltage_limit_v, current_range_a=current_range_a,
            voltage_range_v=voltage_range_v, nplc=nplc, off_mode=off_mode,
        )
        self._nplc = nplc

    async def set_current(self, current_a: float) -> None:
        """While leased, ``lease.set_current`` (if the map has one) instead of ``set_current``."""
        lease, template = self._lease, self.lease.set_current
        if lease is None or template is None:
            await super().set_current(current_a)
            return
        self._check_current(current_a)
        values = {**lease.values, "buffer": self.lease.buffers[lease.buffer]}
        await self.transport.write(
            template.format(value=format_number(current_a), **values), idempotent=True
        )

    async def output_off(self) -> None:
        """The lease released, then the output off; the readings it left come in read_block."""
        leased = self._lease is not None
        if leased:
            await self.transport.write(self.lease.release, idempotent=True)
        await super().output_off()
        if leased:
            await self._end_lease()

    async def safe_state(self) -> None:
        """``lease.release`` (always: a lease of an earlier controller may run), then high
        impedance, 0 A and output off (read back); the readings the lease left are fetched."""
        await self.transport.write(self.lease.release, idempotent=True)
        await super().safe_state()
        if self._lease is not None:
            await self._end_lease()

    async def release_lease(self) -> None:
        if self._lease is not None:
            await self.transport.write(self.lease.release, idempotent=True)
            await self._end_lease()

    async def _end_lease(self) -> None:
        """After the release: fetch what the lease took since the last read (kept for the next
        :meth:`read_block`), back to measuring on request."""
        lease = self._lease
        if lease is not None:
            self._pending.append(await self._new_readings(lease))
            self._lease = None
            self._drain = None

    lease_rests = False
    """A command map declares no rest after the setpoint: the engine bounds the lease instead."""

    async def arm_lease(self, duration_s: float, read_period_s: float, setpoint_s: float | None = None) -> None:
        """Arm (``lease.arm``, the count of readings asked before its last command) or re-arm
        (``lease.rearm``, or ``switch.rearm`` to change buffers) the lease, confirmed by
        ``running_query`` in the same message; DriverError if it does not run, or if the output
        is off (a lease that had run out: arming does not turn the output on again).
        ``setpoint_s`` is not honoured (:attr:`lease_rests` is False)."""
        if not duration_s > 0 or not read_period_s > 0:
            raise ValueError(
                f"lease and read period must be > 0 s, got {duration_s}, {read_period_s}"
            )
        c = self.lease
        count = max(1, math.floor(duration_s / read_period_s + 1e-9))
        if c.max_count is not None and count > c.max_count:
            raise ValueError(
                f"duration_s / read_period_s gives {count} readings, more than {c.max_count}"
            )
        reading_s = c.reading_time_s + self._nplc * c.reading_time_per_nplc_s
        values: dict[str, Any] = {
            "count": count,
            "delay": format_number(max(read_period_s - reading_s, 0.0)),
            "period": format_number(read_period_s),
            "duration": format_number(duration_s),
        }
        lease = self._lease
        if lease is None:
            lease = _Lease(values)
            commands = [cmd.format(buffer=c.buffers[0], **values) for cmd in c.arm]
            for command in commands[:-1]:
                await self.transport.write(command, idempotent=True)
            await self.check_errors("arming the lease")
            self._next = await self._count(0) + 1
            self._drain = None
            message, idempotent = commands[-1], False
        else:
            template, idempotent = c.rearm, True
            if (
                c.switch_rearm is not None and c.switch_after is not None
                and self._next - 1 > c.switch_after and self._drain is None
            ):
                self._drain = (lease.buffer, self._next)
                lease.buffer = (lease.buffer + 1) % len(c.buffers)
                self._next = 1
                template, idempotent = c.switch_rearm, False  # a repeat would clear it again
            lease.values = values
            message = template.format(buffer=c.buffers[lease.buffer], **values)
        self._lease = lease  # from here on, release and safe_state stop it
        line = f"{message};{c.running_query}"
        reply = (await self.transport.query(line, idempotent=idempotent)).strip()
        if not reply.upper().startswith(c.running_reply.upper()):
            await self.check_errors("arm_lease")
            raise DriverError(self.name, line, f"the lease is not running: {reply!r}")
        if not await self.output_enabled():
            raise DriverError(
                self.name, self.map.output_query,
                "the output is off: the lease had run out before it was renewed",
            )

    def time_base(self) -> dict[str, float]:
        """``seconds``/``fraction`` fields: the instrument's clock at time 0; ``time``: ``{}``
        (the instrument's own time is reported as it is)."""
        if self._origin is None:
            return {}
        return {"origin_seconds": self._origin[0], "origin_fraction": self._origin[1]}

    def restore_time_base(self, state: dict[str, float]) -> None:
        if state:
            origin = (float(state["origin_seconds"]), float(state["origin_fraction"]))
            if not all(math.isfinite(x) for x in origin):
                raise ValueError(f"the time base must be finite, got {state}")
            self._origin = origin

    async def read_lease_buffer(self) -> SampleBlock:
        """Every reading in the lease's buffer(s), oldest first, without changing the output;
        a running lease's next :meth:`read_block` returns what comes after."""
        parts: list[FloatArray] = []
        counts: list[int] = []
        for k in range(len(self.lease.buffers)):
            counts.append(await self._count(k))
            if counts[-1]:
                parts.append(await self._fetch(k, 1, counts[-1]))
        rows = np.concatenate(parts) if parts else np.empty((0, len(self.lease.fields)))
        fields = self.lease.fields
        key = sum(rows[:, fields.index(f)] for f in _time_fields(fields))
        if self._lease is not None:
            self._next, self._drain = counts[self._lease.buffer] + 1, None
        self._pending = []
        return self._block(rows[np.argsort(key, kind="stable")], fields)

    async def read_block(self) -> SampleBlock:
        """While leased, the readings the instrument took since the previous call (possibly
        none); else one measurement (``measure.query``), after those a released lease left."""
        lease = self._lease
        block = await self._new_readings(lease) if lease is not None else await super().read_block()
        if self._pending:
            block = _concatenate([*self._pending, block])
            self._pending = []
        return block

    async def _new_readings(self, lease: _Lease) -> SampleBlock:
        """What is left of a buffer switched away from, then the active buffer's new readings."""
        parts: list[FloatArray] = []
        if self._drain is not None:
            buffer, first = self._drain
            count = await self._count(buffer)
            if count >= first:
                parts.append(await self._fetch(buffer, first, count))
            self._drain = None
        count = await self._count(lease.buffer)
        if count < self._next - 1:  # cleared behind the driver's back: all it holds is new
            self._next = 1
        if count >= self._next:
            parts.append(await self._fetch(lease.buffer, self._next, count))
            self._next = count + 1
        fields = self.lease.fields
        return self._block(np.concatenate(parts) if parts else np.empty((0, len(fields))), fields)

    async def _count(self, buffer: int) -> int:
        query = self.lease.count_query.format(buffer=self.lease.buffers[buffer])
        return await self.transport.query_as(query, parse_int)

    async def _fetch(self, buffer: int, first: int, last: int) -> FloatArray:
        """Readings at positions ``first`` to ``last`` (from 1) of a buffer, in chunks."""
        c, width = self.lease, len(self.lease.fields)
        parts: list[FloatArray] = []
        for start in range(first, last + 1, _FETCH_CHUNK):
            end = min(start + _FETCH_CHUNK - 1, last)
            n = end - start + 1
            query = c.data_query.format(
                first=start - 1 + c.first_index, last=end - 1 + c.first_index, n=n,
                buffer=c.buffers[buffer],
            )
            data = await self.transport.query_as(query, expect_numbers(n * width))
            parts.append(data.reshape(n, width))
        return np.concatenate(parts) if parts else np.empty((0, width))


def _concatenate(blocks: list[SampleBlock]) -> SampleBlock:
    return SampleBlock(
        time_s=np.concatenate([b.time_s for b in blocks]),
        voltage_v=np.concatenate([b.voltage_v for b in blocks]),
        current_a=np.concatenate([b.current_a for b in blocks]),
    )
