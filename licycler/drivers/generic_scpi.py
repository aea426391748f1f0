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
    measure*: {query: ..., fields: [voltage, current, time, ignore ...]}
    error_query: ":SYST:ERR?" (default)    clear: "*CLS" (default)
    max_current_a: 1.0 (default: no check)  read_termination / write_termination: "\\n"
"""

from __future__ import annotations

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
from licycler.drivers.scpi import ScpiDriver, expect_numbers, format_number
from licycler.drivers.transport import VisaTransport
from licycler.errors import UserError

__all__ = ["CommandMap", "GenericScpiSmu", "bundled_map"]

_FIELDS = ("voltage", "current", "time", "ignore")
_REQUIRED = (
    "name", "identity", "voltage_limit", "off_mode", "set_current", "output_on", "output_off",
    "output_query", "tripped_query", "measure",
)
_OPTIONAL = (
    "configure", "voltage_limit_query", "current_range", "current_range_auto", "voltage_range",
    "voltage_range_auto", "nplc", "error_query", "clear", "max_current_a", "read_termination",
    "write_termination",
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
        fields = measure["fields"]
        if (
            not isinstance(fields, list)
            or any(f not in _FIELDS for f in fields)
            or fields.count("voltage") != 1
            or fields.count("current") > 1
            or fields.count("time") > 1
        ):
            raise bad(f"measure.fields: a list of {', '.join(_FIELDS)} with one voltage")
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
            measure_fields=tuple(fields),
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
    """A :class:`SourceMeasureChannel` speaking the commands of a :class:`CommandMap`."""

    def __init__(
        self, transport: VisaTransport, command_map: CommandMap, *, name: str | None = None
    ) -> None:
        super().__init__(transport, name=name or command_map.name)
        self.map = command_map
        self.manufacturers = (command_map.manufacturer,)
        self.models = (command_map.model,)
        self.error_query = command_map.error_query
        self._t0 = time.monotonic()

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
        label = name or f"{command_map.name} at {resource}"
        transport = VisaTransport(
            resource, name=label, timeout_s=timeout_s, retries=retries,
            read_termination=command_map.read_termination,
            write_termination=command_map.write_termination,
        )
        return cls(transport, command_map, name=label)

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

    async def set_current(self, current_a: float) -> None:
        limit = self.map.max_current_a
        if limit is not None and not abs(current_a) <= limit:
            raise ValueError(f"current_a must be within +-{limit} A, got {current_a}")
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
        now = time.monotonic() - self._t0

        def pick(name: str, default: float) -> npt.NDArray[np.float64]:
            return np.array([values[fields.index(name)] if name in fields else default])

        return SampleBlock(pick("time", now), pick("voltage", np.nan), pick("current", np.nan))
