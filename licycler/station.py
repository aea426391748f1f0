"""The station file: instruments (model, resource), channels (instrument, electrode area, rig), limits.

A station file is YAML, validated with file/line/field errors like a schedule. :func:`open_station`
connects every instrument (checking identities), puts every channel in its safe state first of all,
and returns a :class:`~licycler.safety.ChannelSupervisor` per channel with the instrument's and the
station's limits layered in. Nothing here sources current.

```yaml
station: 1
name: bench-1
lease: 10 s                 # the instruments' dead-man lease (default 10 s; "none" to run without)
read_period: 1 s            # how often each channel is read (default 1 s)
limits: {voltage_min: -2 V, voltage_max: 2 V, current_max: 20 mA}
instruments:
  smu1: {model: keithley2450, resource: "TCPIP::127.0.0.1::5025::SOCKET", timeout: 2 s}
  rig1: {model: mark10, resource: "ASRL/dev/pts/4::INSTR", area: 1.13 cm^2}
channels:
  A1: {instrument: smu1, electrode_area: 1.13 cm^2, rig: rig1, limits: {current_max: 5 mA}}
```
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from licycler import units as u
from licycler.clock import Clock, RealTimeClock
from licycler.drivers.alicat import AlicatPressureController
from licycler.drivers.emstat4 import EmStat4Channel
from licycler.drivers.errors import DriverError
from licycler.drivers.generic_scpi import CommandMap, GenericScpiSmu, bundled_map
from licycler.drivers.interfaces import LeasedChannel, PressureRig, SourceMeasureChannel
from licycler.drivers.keithley2450 import Keithley2450
from licycler.drivers.keysight_b2900 import KeysightB2900
from licycler.drivers.mark10 import Mark10ForceGauge
from licycler.errors import UserError
from licycler.events import EventSink, FanOut
from licycler.protocols.parse import LIMIT_KEYS
from licycler.safety.limits import Limits, LimitStack
from licycler.safety.supervisor import ChannelSupervisor
from licycler.yamlsource import Field, load_yaml, load_yaml_text

__all__ = [
    "INSTRUMENT_LIMITS",
    "MODELS",
    "ChannelConfig",
    "InstrumentConfig",
    "Station",
    "StationConfig",
    "instrument_label",
    "load_station",
    "load_station_text",
    "open_station",
]

DEFAULT_LEASE_S = 10.0
"""The instruments' dead-man lease when the station file does not set one (s)."""
WATCHDOG_MIN_S = 1.0
"""The shortest silence (no fresh sample) a station channel's watchdog trips on, s: fast reads (10 Hz)
must not fault a month-long run on a stall of a few periods (the instrument's lease covers a dead one)."""
DEFAULT_READ_PERIOD_S = 1.0
"""How often each channel of a station is read when the file does not say (s)."""

SMU_MODELS = ("keithley2450", "keysight-b2901a", "keysight-b2902a", "emstat4", "generic-scpi")
RIG_MODELS = ("mark10", "alicat-pc")
MODELS = SMU_MODELS + RIG_MODELS

INSTRUMENT_LIMITS: dict[str, Limits] = {
    "keithley2450": Limits(voltage_min_v=-210.0, voltage_max_v=210.0, current_max_a=1.05),
    "keysight-b2901a": Limits(voltage_min_v=-210.0, voltage_max_v=210.0, current_max_a=3.03),
    "keysight-b2902a": Limits(voltage_min_v=-210.0, voltage_max_v=210.0, current_max_a=3.03),
    "emstat4": Limits(voltage_min_v=-6.0, voltage_max_v=6.0, current_max_a=0.03),
    "generic-scpi": Limits(),
}
"""What each model can do at most: the bottom layer of every channel's limits."""


@dataclass(frozen=True)
class InstrumentConfig:
    name: str
    model: str
    resource: str
    timeout_s: float = 2.0
    area_m2: float | None = None  # rigs: the area the force acts on
    command_map: str | None = None  # generic-scpi: a bundled map name or a YAML file
    options: dict[str, Any] = field(default_factory=dict)
    lease_s: float | None = None  # None: no lease (the station's or this instrument's "lease: none")


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    instrument: str
    channel: int = 1
    area_m2: float | None = None
    rig: str | None = None
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class StationConfig:
    name: str
    instruments: dict[str, InstrumentConfig]
    channels: dict[str, ChannelConfig]
    limits: Limits = field(default_factory=Limits)
    source: str = "<string>"
    text: str = ""
    read_period_s: float = DEFAULT_READ_PERIOD_S


def _limits(f: Field | None) -> Limits:
    if f is None:
        return Limits()
    f.mapping(tuple(LIMIT_KEYS))
    values: dict[str, float] = {}
    for key, child in f.items():
        name, dim = LIMIT_KEYS[key]
        values[name] = child.quantity(dim, positive=key not in ("voltage_min", "voltage_max"))
    try:
        return Limits(**values)
    except ValueError as exc:
        raise f.error(str(exc)) from None


def _lease(f: Field | None, default: float | None, most: float | None = None) -> float | None:
    """A ``lease:`` value: a time (s) or ``none``; ``most`` is what the station allows."""
    if f is None:
        return default
    if isinstance(f.value, str) and f.value.strip().lower() == "none":
        return None
    lease = f.quantity(u.TIME, positive=True)
    if most is not None and lease > most:
        raise f.error(f"a lease of {lease:g} s is longer than the station's {most:g} s")
    return lease


def load_station(path: str | Path) -> StationConfig:
    """Read and validate a station file (errors give file, line and field)."""
    data, text = load_yaml(path)
    return _station(data, text, str(path))


def load_station_text(text: str, source: str) -> StationConfig:
    """A station file's text (as recorded with a run), validated like a file (``source`` names it)."""
    return _station(load_yaml_text(text, source), text, source)


def _station(data: Any, text: str, path: str) -> StationConfig:
    root = Field(data, str(path)).mapping(("station", "name", "lease", "read_period", "limits", "instruments",
                                           "channels"), required=("name", "instruments", "channels"))  # fmt: skip
    if (version := root.get("station")) is not None and version.integer() != 1:
        raise version.error("this licycler reads station format 1")
    station_lease = _lease(root.get("lease"), DEFAULT_LEASE_S)
    period = root.get("read_period")
    read_period_s = period.quantity(u.TIME, positive=True) if period else DEFAULT_READ_PERIOD_S
    if station_lease is not None and station_lease < 3 * read_period_s:
        raise (root.get("lease") or root).error(
            f"a lease of {station_lease:g} s needs at least three read periods ({read_period_s:g} s each)"
        )
    instruments: dict[str, InstrumentConfig] = {}
    for name, f in root["instruments"].items():
        f.mapping(("model", "resource", "timeout", "area", "command_map", "options", "lease"),
                  required=("model", "resource"))  # fmt: skip
        model = f["model"].text(MODELS)
        area = f.get("area")
        if model == "mark10" and area is None:
            raise f.error("a mark10 force gauge needs 'area' (the area the force acts on) to give pressure")
        cmap = f.get("command_map")
        if model == "generic-scpi" and cmap is None:
            raise f.error("a generic-scpi instrument needs 'command_map' (a bundled name or a YAML file)")
        timeout = f.get("timeout")
        options = f.get("options")
        own = f.get("lease")
        lease = _lease(own, station_lease, station_lease)
        if own is not None and lease is not None and lease < 3 * read_period_s:
            raise own.error(f"a lease of {lease:g} s needs at least three read periods ({read_period_s:g} s each)")
        instruments[name] = InstrumentConfig(
            name, model, f["resource"].text(), timeout.quantity(u.TIME, positive=True) if timeout else 2.0,
            area.quantity(u.AREA, positive=True) if area else None, cmap.text() if cmap else None,
            dict(options.mapping().value) if options else {}, lease if model in SMU_MODELS else None,
        )  # fmt: skip
    channels: dict[str, ChannelConfig] = {}
    for name, f in root["channels"].items():
        f.mapping(("instrument", "channel", "electrode_area", "rig", "limits"), required=("instrument",))
        inst = f["instrument"].text()
        if inst not in instruments or instruments[inst].model not in SMU_MODELS:
            smus = [n for n, i in instruments.items() if i.model in SMU_MODELS]
            raise f["instrument"].error(f"no source-measure instrument named '{inst}' (instruments: {', '.join(smus)})")
        rig = f.get("rig")
        if rig is not None and (rig.text() not in instruments or instruments[rig.text()].model not in RIG_MODELS):
            raise rig.error(f"no pressure rig named '{rig.value}'")
        number = f.get("channel")
        area = f.get("electrode_area")
        channels[name] = ChannelConfig(
            name, inst, number.integer(minimum=1, maximum=2) if number else 1,
            area.quantity(u.AREA, positive=True) if area else None, rig.text() if rig else None,
            _limits(f.get("limits")),
        )  # fmt: skip
    if not channels:
        raise root["channels"].error("a station needs at least one channel")
    return StationConfig(root["name"].text(), instruments, channels, _limits(root.get("limits")), str(path), text,
                         read_period_s)  # fmt: skip


def _command_map(ref: str) -> CommandMap:
    if ref.endswith((".yaml", ".yml")):
        return CommandMap.from_yaml(ref)
    return bundled_map(ref)


def instrument_label(inst: InstrumentConfig, channel: int = 1) -> str:
    """How a channel's instrument is named in events and the store: name, model, resource (and the
    channel of a two-channel SMU)."""
    label = f"{inst.name} ({inst.model} at {inst.resource})"
    return f"{label} ch{channel}" if inst.model.startswith("keysight-b290") else label


def _smu(inst: InstrumentConfig, channel: int) -> SourceMeasureChannel:
    label = instrument_label(inst, channel)
    if inst.model == "keithley2450":
        return Keithley2450.for_resource(inst.resource, name=label, timeout_s=inst.timeout_s)
    if inst.model.startswith("keysight-b290"):
        return KeysightB2900.for_resource(inst.resource, channel=channel, name=label, timeout_s=inst.timeout_s)
    if inst.model == "emstat4":
        return EmStat4Channel(inst.resource, name=label, **inst.options)
    assert inst.command_map is not None
    return GenericScpiSmu.for_resource(
        inst.resource, _command_map(inst.command_map), name=label, timeout_s=inst.timeout_s
    )


def _rig(inst: InstrumentConfig) -> PressureRig:
    label = f"{inst.name} ({inst.model} at {inst.resource})"
    if inst.model == "mark10":
        assert inst.area_m2 is not None
        return Mark10ForceGauge(inst.resource, area_m2=inst.area_m2, name=label, **inst.options)
    return AlicatPressureController(inst.resource, name=label, **inst.options)


async def _open(instrument: object) -> None:
    opener: Callable[[], Awaitable[object]] | None = getattr(instrument, "connect", None) or getattr(
        instrument, "open", None
    )
    if opener is not None:
        await opener()


async def _open_safely(smu: SourceMeasureChannel) -> None:
    """Open a source-measure instrument so that its first commands put it in the safe state: a
    controller restarting after a crash may find an output still on. Then identify it."""
    transport = getattr(smu, "transport", None)
    if transport is not None:
        await transport.open()
        await smu.safe_state()
        await _open(smu)  # identifies (and checks) the instrument
    else:
        await _open(smu)  # serial potentiostats abort any running script on open
        await smu.safe_state()


@dataclass
class Station:
    """An opened station: a supervisor per channel (instrument, station and channel limits layered)."""

    config: StationConfig
    supervisors: dict[str, ChannelSupervisor]
    instruments: list[object]

    async def close(self) -> None:
        for inst in self.instruments:
            close = getattr(inst, "close", None)
            if close is not None:
                with contextlib.suppress(DriverError, OSError):
                    await close()


def _check_lease(config: StationConfig, inst: InstrumentConfig, smu: SourceMeasureChannel) -> None:
    """Refuse an instrument that cannot hold the lease the station asks for (before it is opened)."""
    if inst.lease_s is not None and not isinstance(smu, LeasedChannel):
        how = " (give its command map a 'lease' section)" if inst.model == "generic-scpi" else ""
        raise UserError(
            f"{config.source}: instrument {inst.name} ({inst.model}) has no lease mechanism{how}: if the "
            f"controller died its output would stay on; write 'lease: none' for it (or the station) to run "
            f"without one"
        )


def waived_leases(config: StationConfig) -> list[str]:
    """The source-measure instruments that run without a lease (``lease: none``)."""
    used = {ch.instrument for ch in config.channels.values()}
    return [name for name, inst in config.instruments.items() if name in used and inst.lease_s is None]


async def open_station(
    config: StationConfig, *, events: EventSink | None = None, clock: Clock | None = None, secure: bool = True
) -> Station:
    """Connect and identify every instrument, then (``secure``) put every channel in its safe state
    before anything else is sent. Raises :class:`UserError` naming an instrument that cannot be
    reached, or one without the lease the station asks for."""
    clock = clock or RealTimeClock()
    events = events or FanOut()
    smus: dict[tuple[str, int], SourceMeasureChannel] = {}
    rigs: dict[str, PressureRig] = {}
    opened: list[object] = []
    for ch in config.channels.values():  # every instrument can hold its lease, before anything is opened
        if (ch.instrument, ch.channel) not in smus:
            inst = config.instruments[ch.instrument]
            smus[(ch.instrument, ch.channel)] = _smu(inst, ch.channel)
            _check_lease(config, inst, smus[(ch.instrument, ch.channel)])
    try:
        for ch in config.channels.values():
            key = (ch.instrument, ch.channel)
            if smus[key] not in opened:
                opened.append(smus[key])
                await _open_safely(smus[key])
            if ch.rig and ch.rig not in rigs:
                rigs[ch.rig] = _rig(config.instruments[ch.rig])
                opened.append(rigs[ch.rig])
                await _open(rigs[ch.rig])
    except DriverError as exc:
        await Station(config, {}, opened).close()
        raise UserError(f"{config.source}: cannot open {exc.instrument}: {exc.cause}") from None
    supervisors: dict[str, ChannelSupervisor] = {}
    for ch in config.channels.values():
        inst = config.instruments[ch.instrument]
        stack = LimitStack()
        stack.push("instrument", INSTRUMENT_LIMITS[inst.model])
        stack.push("station", config.limits)
        stack.push(f"channel {ch.name}", ch.limits)
        supervisors[ch.name] = ChannelSupervisor(
            ch.name, smus[(ch.instrument, ch.channel)], clock=clock, events=events, limits=stack,
            area_m2=ch.area_m2, rig=rigs.get(ch.rig) if ch.rig else None, read_period_s=config.read_period_s,
            lease_s=inst.lease_s, watchdog_factor=max(3.0, WATCHDOG_MIN_S / config.read_period_s),
        )  # fmt: skip
        supervisors[ch.name].lease_waived = inst.lease_s is None
    station = Station(config, supervisors, opened)
    if secure:
        await asyncio.gather(*(s.secure("startup", "securing the channel at start-up") for s in supervisors.values()))
    return station
