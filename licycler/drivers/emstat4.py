"""PalmSens EmStat4 as a galvanostat channel, over MethodSCRIPT on a serial port.

MethodSCRIPT has no "set the current now" command: a constant current is a script that runs a
``meas_loop_cp`` (chronopotentiometry) loop and streams one data packet per interval until it is
aborted with ``Z``. So in this driver:

- :meth:`EmStat4Channel.output_on` loads and runs a :class:`~licycler.drivers.methodscript.ConstantCurrentScript`
  (ending, like every script here, in ``on_finished:`` / ``cell_off``); a background task reads
  its output (``M000A``, ``P`` packets, ``*``, the closing empty line) into a buffer;
- :meth:`set_current` and :meth:`configure_current_source` while the output is on abort the
  running script and start a new one (the cell is off for the few milliseconds in between);
- :meth:`output_off` aborts (``Z``): the loop ends, ``on_finished:`` switches the cell off (relay
  open: the only off mode of a potentiostat, i.e. high impedance);
- the voltage limit is a ``breakloop`` when |E| exceeds it: the loop ends and the cell goes off,
  and :meth:`voltage_limit_tripped` reports it until the output is switched on again;
- :meth:`read_block` returns the buffered packets (time = the script's timer ``eb`` on a
  continuing time base, E = ``ab``, I = ``ba``; overloaded readings are NaN); with the output off
  it takes one open-circuit reading (``meas_loop_ocp``);
- :meth:`safe_state` aborts whatever runs and runs a ``cell_off`` script; it also recovers a
  connection whose stream was lost (``\\nZ``, read up to the end of the old script);
- the dead-man lease (:class:`~licycler.drivers.interfaces.LeasedChannel`, docs/lease-emstat4.md):
  :meth:`arm_lease` runs a :class:`~licycler.drivers.methodscript.LeasedCurrentScript` (the loop
  bounded to the lease, ``on_finished:`` ``cell_off``, readings also written to a file on the
  instrument); arming it again sends ``Y`` (abort the measurement loop only: the script starts a
  new bounded loop, the cell stays on); :meth:`read_lease_buffer` reads the files back
  (``fs_dir``/``fs_get``), placed by the UTC start each file is named after;
- the rest (``setpoint_s``, :attr:`EmStat4Channel.lease_rests`): the script holds the time of the
  rest on its own timer (``store_var r``); the setpoint's loop breaks at the first reading at or
  after it and a 0 A ``meas_loop_cp`` (cell on) runs to the lease's last reading. The host cannot
  write a running script's variables, so a re-arm stays ``Y`` while the rest it asks for is the one
  the script holds (the same step's end), or lies beyond both leases; only a rest that moves within
  the lease restarts the script (``Z``, the cell off for a few ms): about once per step, near its end.

The measurement interval bounds how long the port's lock is held by the streaming read, so keep
``sample_interval_s`` short (<= a few seconds; default 1 s). Keep ``timeout_s`` below the interval
(default 0.5 s): after a garbled line the transport drains the port until it has been quiet for
``timeout_s``, which a stream only is between two packets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from licycler.drivers import methodscript as ms
from licycler.drivers.errors import DriverError, IdentityMismatch, InstrumentReportedError, NotSupported
from licycler.drivers.interfaces import InstrumentError, OutputOffMode, SampleBlock
from licycler.drivers.transport import VisaTransport

__all__ = ["DEVICE_TYPES", "EmStat4Channel", "Firmware", "parse_firmware"]

_log = logging.getLogger(__name__)

DEVICE_TYPES: dict[str, tuple[str, float, float]] = {
    "es4_lr": ("EmStat4 LR", 3.0, 10e-3),
    "es4_hr": ("EmStat4 HR", 6.0, 100e-3),
    "mes4lr": ("MultiEmStat4 LR", 3.0, 10e-3),
    "mes4hr": ("MultiEmStat4 HR", 6.0, 100e-3),
}
"""Firmware device type -> (model, largest |E| it applies (V), largest current range (A))."""


@dataclass(frozen=True)
class Firmware:
    """The ``t`` reply: device type (6 characters), version digits, build text, release letter."""

    device_type: str
    version: str
    build: str
    release: str

    @property
    def model(self) -> str:
        return DEVICE_TYPES.get(self.device_type, (self.device_type, 0.0, 0.0))[0]


def parse_firmware(first: str, second: str) -> Firmware:
    """The two lines of the ``t`` reply (``tes4_hr1100#Jan 28 2022 11:04:43``, ``R*``)."""
    if not first.startswith("t") or "#" not in first or not second.endswith("*"):
        raise ValueError(f"not a firmware reply: {first[:40]!r} / {second[:20]!r}")
    head, _, build = first[1:].partition("#")
    return Firmware(head[:6], head[6:], " ".join(build.split()), second[:-1])


@dataclass(frozen=True)
class _LeaseSpec:
    """An armed lease: its duration and reading period, s."""

    duration_s: float
    read_period_s: float

    @property
    def run_time_s(self) -> float:
        """The measurement loop's run time: whole reading periods within the duration, s."""
        return math.floor(self.duration_s / self.read_period_s + 1e-9) * self.read_period_s


@dataclass
class _Stream:
    """One running script whose output a background task reads."""

    kind: str
    time_offset_s: float
    interval_s: float
    lease: bool = False
    started_mono: float = 0.0
    """The driver's ``timer_clock`` when the instrument acknowledged the script (its timer starts)."""
    last_packet: str | None = None
    last_packet_mono: float = 0.0
    """The newest packet streamed, and the driver's ``timer_clock`` when it arrived."""
    rearm_answered: asyncio.Event = field(default_factory=asyncio.Event)
    rearm_refused: bool = False
    interrupting: int = 0
    packets: list[str] = field(default_factory=list)
    new_data: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    loop_ended: bool = False
    abort_acked: bool = False
    runtime_error: ms.ScriptError | None = None
    error_reported: bool = False
    stopping: bool = False
    failure: DriverError | None = None
    dropped: int = 0
    task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return not self.done.is_set()


class EmStat4Channel:
    """A :class:`~licycler.drivers.interfaces.SourceMeasureChannel` and
    :class:`~licycler.drivers.interfaces.LeasedChannel` on an EmStat4 (MethodSCRIPT).

    ``model``: what ``t`` must report (``EmStat4`` accepts LR and HR, ``EmStat4 HR`` only HR);
    ``sample_interval_s``: packet interval of the measurement loop, s; ``max_run_time_s``: run
    time written into each loop (the loop, and the current, end after it), s;
    ``line_frequency_hz``: mains frequency, for the integration time (NPLC) -> bandwidth;
    ``timer_clock``: a monotonic clock (s) on which the instrument's timer is carried on from its
    newest reading to now (where a re-arm asks for its rest; default :func:`time.monotonic`, a
    test on a virtual clock passes the clock the emulation runs on).
    """

    lease_mechanism = (
        "MethodSCRIPT meas_loop_cp with run time = lease inside a loop, on_finished: cell_off; "
        "re-arm Y (abort the measurement loop only, cell stays on); the rest: if t >= r breakloop, "
        "then meas_loop_cp at 0 A to the lease's end; readings kept on the instrument (file_open, "
        "set_script_output 3), read back with fs_dir/fs_get"
    )
    lease_rests = True

    def __init__(
        self,
        resource: str,
        *,
        name: str = "PalmSens EmStat4",
        model: str = "EmStat4",
        sample_interval_s: float = 1.0,
        max_run_time_s: float = 1e6,
        line_frequency_hz: float = 50.0,
        timeout_s: float = 0.5,
        baud_rate: int | None = 921600,
        retries: int = 2,
        stream_failures_allowed: int = 2,
        transport: VisaTransport | None = None,
        timer_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < sample_interval_s <= max_run_time_s:
            raise ValueError("need 0 < sample_interval_s <= max_run_time_s")
        self.name = name
        self.model = model
        self.sample_interval_s = float(sample_interval_s)
        self.max_run_time_s = float(max_run_time_s)
        self.line_frequency_hz = float(line_frequency_hz)
        self.stream_failures_allowed = int(stream_failures_allowed)
        self._timer_clock = timer_clock
        self.transport = transport or VisaTransport(
            resource,
            name=name,
            read_termination="\n",
            write_termination="\n",
            timeout_s=timeout_s,
            baud_rate=baud_rate,
            retries=retries,
        )
        self.firmware: Firmware | None = None
        self.dropped_packets = 0
        """Lines of a data stream that were not valid packets and were dropped (diagnostics)."""
        self._op_lock = asyncio.Lock()
        self._stream: _Stream | None = None
        self._errors: list[InstrumentError] = []
        self._configured = False
        self._voltage_limit_v: float | None = None
        self._current_range_a: float | None = None
        self._voltage_range_v: float | None = None
        self._bandwidth_hz: float | None = None
        self._current_a = 0.0
        self._tripped = False
        self._epoch_utc_ms = round(time.time() * 1000)
        self._mono0 = time.monotonic()
        self._base_s = 0.0
        self._last_time_s = 0.0
        self._last_lease_start_ms = 0
        self._lease: _LeaseSpec | None = None
        self._rest_at_s: float | None = None
        """The rest the running lease script holds: s on its timer (``r``), None for none."""
        self._serial = ""
        self._backlog: list[SampleBlock] = []

    # ---------------------------------------------------------------- connection

    async def open(self) -> None:
        """Open the port, stop any script left running (``Z``) and check the identity."""
        await self.transport.open()
        async with self._op_lock:
            await self._sync()
            await self._identify_locked()

    async def close(self) -> None:
        """Stop reading and release the port (a running script keeps running on the instrument)."""
        stream, self._stream = self._stream, None
        if stream is not None and stream.task is not None:
            stream.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await stream.task
        await self.transport.close()

    async def __aenter__(self) -> EmStat4Channel:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---------------------------------------------------------------- identity

    async def identify(self) -> str:
        """``t`` (firmware) and ``i`` (serial number), checked against ``model``.

        While a script runs the instrument does not answer these: the identity read at
        :meth:`open` is returned.
        """
        async with self._op_lock:
            if self._running():
                if self.firmware is None:
                    raise DriverError(self.name, "t", "a script is running and the identity is unknown")
                return self._describe(self.firmware, self._serial)
            return await self._identify_locked()

    def _describe(self, fw: Firmware, serial: str) -> str:
        return f"PalmSens {fw.model}, serial {serial}, firmware {fw.device_type} {fw.version} ({fw.build})"

    async def _identify_locked(self) -> str:
        async with self.transport.locked():
            first = await self.transport.query("t")
            second = await self.transport.read_line()
            try:
                fw = parse_firmware(first, second)
            except ValueError as exc:
                await self.transport.resync()
                raise DriverError(self.name, "t", str(exc)) from exc
            serial = await self.transport.query("i")
        if not serial.startswith("i") or "!" in serial:
            raise DriverError(self.name, "i", f"unexpected reply {serial[:40]!r}")
        wanted = self.model.lower().replace("palmsens", "").split()
        have = fw.model.lower().split()
        if fw.device_type not in DEVICE_TYPES or not all(w in have for w in wanted):
            raise IdentityMismatch(
                self.name, "t", f"instrument is {fw.model!r} ({fw.device_type}), expected {self.model!r}"
            )
        self.firmware, self._serial = fw, serial[1:]
        return self._describe(fw, self._serial)

    # ---------------------------------------------------------------- configuration

    async def configure_current_source(
        self,
        *,
        voltage_limit_v: float,
        current_range_a: float | None = None,
        voltage_range_v: float | None = None,
        nplc: float = 1.0,
        off_mode: OutputOffMode = OutputOffMode.HIGH_IMPEDANCE,
    ) -> None:
        """Galvanostatic loop settings; applied at once (script restarted) if the output is on.

        ``voltage_limit_v``: the loop breaks (and the cell goes off) when |E| exceeds it, V;
        ``current_range_a``: the galvanostat range (None: the smallest that holds the current);
        ``voltage_range_v``: fixed potential range (None: autorange); ``nplc``: integration time
        in power-line cycles (sets the bandwidth); only the high-impedance off mode exists.
        """
        if off_mode is not OutputOffMode.HIGH_IMPEDANCE:
            raise NotSupported(
                self.name, None, f"output-off mode {off_mode.value}: a potentiostat's cell off is high impedance"
            )
        if not voltage_limit_v > 0:
            raise ValueError(f"voltage_limit_v must be > 0, got {voltage_limit_v}")
        if not nplc > 0:
            raise ValueError(f"nplc must be > 0, got {nplc}")
        integration_s = nplc / self.line_frequency_hz
        if integration_s > self.sample_interval_s:
            raise ValueError(
                f"integration time {integration_s:g} s is longer than the {self.sample_interval_s:g} s interval"
            )
        if current_range_a is not None:
            ms.current_range_code(current_range_a)  # ValueError above 100 mA
        async with self._op_lock:
            fw = self.firmware
            if fw is not None and fw.device_type in DEVICE_TYPES:
                _, max_v, max_i = DEVICE_TYPES[fw.device_type]
                if voltage_limit_v > max_v:
                    raise NotSupported(
                        self.name, None, f"voltage limit {voltage_limit_v} V above the {fw.model}'s {max_v} V"
                    )
                if current_range_a is not None and current_range_a > max_i * (1 + 1e-9):
                    raise NotSupported(
                        self.name, None, f"current range {current_range_a} A above the {fw.model}'s {max_i} A"
                    )
            self._voltage_limit_v = float(voltage_limit_v)
            self._current_range_a = None if current_range_a is None else float(current_range_a)
            self._voltage_range_v = None if voltage_range_v is None else float(voltage_range_v)
            self._bandwidth_hz = 1.0 / integration_s
            self._configured = True
            if self._running():
                stream = self._stream
                rest_in = None
                if stream is not None and stream.lease and self._rest_at_s is not None:
                    rest_in = max(self._rest_at_s - self._script_now_s(stream), 0.0)  # the same moment
                await self._restart(rest_in)

    async def set_current(self, current_a: float) -> None:
        """The sourced current, A; restarts the loop at once if the output is on."""
        if not math.isfinite(current_a):
            raise ValueError(f"current must be finite, got {current_a}")
        async with self._op_lock:
            self._script_for(current_a)  # validates against the range before anything changes
            self._current_a = float(current_a)
            if self._running():
                await self._restart()

    def _script_for(
        self, current_a: float, run_time_s: float | None = None, interval_s: float | None = None
    ) -> ms.ConstantCurrentScript:
        max_i = 0.1
        if self.firmware is not None and self.firmware.device_type in DEVICE_TYPES:
            max_i = DEVICE_TYPES[self.firmware.device_type][2]
        current_range = self._current_range_a
        if current_range is None:
            full_scales = [fs for fs in ms.EMSTAT4_CURRENT_RANGES_A.values() if fs <= max_i * (1 + 1e-9)]
            fitting = [fs for fs in full_scales if fs >= max(abs(current_a), 100e-9) * (1 - 1e-12)]
            if not fitting:
                raise NotSupported(self.name, None, f"current {current_a} A above the largest range ({max_i} A)")
            current_range = min(fitting)
        try:
            return ms.ConstantCurrentScript(
                current_a=current_a,
                interval_s=interval_s if interval_s is not None else self.sample_interval_s,
                run_time_s=run_time_s if run_time_s is not None else self.max_run_time_s,
                current_range_a=current_range,
                voltage_limit_v=self._voltage_limit_v,
                potential_range_v=self._voltage_range_v,
                max_bandwidth_hz=self._bandwidth_hz,
            )
        except ValueError as exc:
            raise DriverError(self.name, None, str(exc)) from exc

    # ---------------------------------------------------------------- output

    async def output_on(self) -> None:
        """Start the constant-current loop (no-op if it runs)."""
        async with self._op_lock:
            if self._running():
                return
            if not self._configured:
                raise DriverError(self.name, None, "configure_current_source() before output_on()")
            await self._start_cp()

    async def output_off(self) -> None:
        """Abort the loop: ``on_finished:`` switches the cell off (high impedance); releases a lease."""
        async with self._op_lock:
            self._lease = None
            await self._stop_stream()

    async def output_enabled(self) -> bool:
        """Whether a current loop is running, as its data stream shows (DriverError if lost)."""
        async with self._op_lock:
            stream = self._stream
            if stream is None or stream.kind != "cp":
                return False
            self._scan_for_trip()
            if self._tripped and stream.active:
                # the limit breaks the loop: let the end of the script arrive before answering
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stream.done.wait(), stream.interval_s + self.transport.timeout_s)
            if stream.failure is not None:
                raise DriverError(self.name, None, f"data stream lost: {stream.failure.cause}")
            # a lease script keeps the cell on between its bounded loops: running is on
            return stream.active and (stream.lease or not stream.loop_ended)

    async def voltage_limit_tripped(self) -> bool:
        """Whether the voltage limit ended the loop (or the galvanostat hit its compliance)."""
        async with self._op_lock:
            self._scan_for_trip()
            return self._tripped

    def _running(self) -> bool:
        s = self._stream
        return s is not None and s.kind == "cp" and s.active

    async def _start_cp(self, rest_in_s: float | None = None) -> None:
        """Start the constant-current script: a lease script while a lease is armed, resting
        ``rest_in_s`` (s) after it starts (None: no rest)."""
        self._tripped = False
        self._rest_at_s = None
        lease = self._lease
        if lease is None:
            script = self._script_for(self._current_a)
            await self._start_stream("cp", script.lines())
            return
        plain = self._script_for(self._current_a, lease.run_time_s, lease.read_period_s)
        start_ms = max(
            self._epoch_utc_ms + round(self._now_s() * 1000),
            self._epoch_utc_ms + math.ceil(self._last_time_s * 1000),
            self._last_lease_start_ms + 1,
        )
        leased = ms.LeasedCurrentScript(
            current_a=plain.current_a,
            interval_s=lease.read_period_s,
            run_time_s=lease.run_time_s,
            current_range_a=plain.current_range_a,
            voltage_limit_v=plain.voltage_limit_v,
            potential_range_v=plain.potential_range_v,
            max_bandwidth_hz=plain.max_bandwidth_hz,
            file_path=ms.lease_file_path(start_ms),
            rest_at_s=rest_in_s,
        )
        self._last_lease_start_ms = start_ms
        offset = (start_ms - self._epoch_utc_ms) / 1000.0
        await self._start_stream("cp", leased.lines(), offset_s=offset, interval_s=lease.read_period_s, lease=True)
        self._rest_at_s = leased.rest_at_s

    async def _restart(self, rest_in_s: float | None = None) -> None:
        await self._stop_stream()
        await self._start_cp(rest_in_s)

    # ---------------------------------------------------------------- streams

    def _now_s(self) -> float:
        """The present time on this driver's time base, s (monotonic between restores)."""
        return self._base_s + (time.monotonic() - self._mono0)

    async def _start_stream(
        self,
        kind: str,
        lines: list[str],
        *,
        offset_s: float | None = None,
        interval_s: float | None = None,
        lease: bool = False,
    ) -> _Stream:
        await self._collect_finished_stream()
        self._retire_stream()
        payload = ("e\n" + "\n".join(lines) + "\n\n").encode("ascii")
        async with self.transport.locked():
            await self.transport.write_raw(payload)
            ack = await self.transport.read_line()
            while ack.startswith("Z"):  # a late answer to an abort (Z!0006: it had ended anyway)
                ack = await self.transport.read_line()
        if ack != "e":
            err = ms.parse_error(ack)
            if err is not None:
                raise InstrumentReportedError(self.name, "e", err.code, err.message)
            await self.transport.resync()
            raise DriverError(self.name, "e", f"unexpected reply {ack[:40]!r} to a script")
        offset = max(self._now_s(), self._last_time_s) if offset_s is None else offset_s
        interval = self.sample_interval_s if interval_s is None else interval_s
        stream = _Stream(
            kind=kind, time_offset_s=offset, interval_s=interval, lease=lease, started_mono=self._timer_clock()
        )
        stream.task = asyncio.create_task(self._read_stream(stream), name=f"{self.name} stream")
        self._stream = stream
        return stream

    async def _read_stream(self, stream: _Stream) -> None:
        timeout = stream.interval_s + self.transport.timeout_s
        failures = 0
        try:
            while True:
                try:
                    line = await self.transport.read_line(timeout_s=timeout)
                except DriverError as exc:
                    if stream.stopping and stream.abort_acked is False:
                        # our abort waited for this read to give the port up: not a fault
                        stream.stopping = False
                        continue
                    if stream.interrupting:
                        continue  # a re-arm (Y) waited for this read to give the port up
                    failures += 1
                    if failures > self.stream_failures_allowed:
                        stream.failure = exc
                        return
                    _log.warning("%s: stream read failed (%s); reading on", self.name, exc.cause)
                    continue
                failures = 0
                if line == "":
                    return
                head = line[0]
                if head == "P":
                    stream.packets.append(line)
                    stream.last_packet, stream.last_packet_mono = line, self._timer_clock()
                    stream.new_data.set()
                elif head == "*":
                    stream.loop_ended = True
                elif head == "Z":
                    stream.abort_acked = True
                elif head == "Y":  # the answer to a re-arm: Y, or Y!0006 (no measurement loop ran)
                    stream.rearm_refused = "!" in line
                    stream.rearm_answered.set()
                elif head == "M":
                    stream.loop_ended = False  # a lease script starts its next bounded loop
                elif head in "LC+-T":
                    pass
                elif (err := ms.parse_error(line)) is not None:
                    stream.runtime_error = err
                    self._errors.append(InstrumentError(err.code, err.message))
                else:
                    stream.dropped += 1
                    self.dropped_packets += 1
                    _log.warning("%s: dropped unexpected line %r", self.name, line[:40])
        finally:
            stream.done.set()
            stream.new_data.set()

    async def _stop_stream(self) -> None:
        """Abort the running script (if any) and wait for its end; recover a lost stream."""
        stream = self._stream
        if stream is None:
            return
        if stream.active:
            stream.stopping = True
            await self.transport.write_raw(b"\nZ\n")
            budget = stream.interval_s + 3 * self.transport.timeout_s * (self.stream_failures_allowed + 1)
            try:
                await asyncio.wait_for(stream.done.wait(), budget)
            except TimeoutError:
                if stream.task is not None:
                    stream.task.cancel()
                stream.failure = DriverError(self.name, "Z", "no end of the script after the abort")
        if stream.failure is not None:
            if stream.task is not None:
                stream.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await stream.task
            await self._sync()
        if stream.kind == "cp":
            self._scan_for_trip()

    def _retire_stream(self) -> None:
        """Keep the unread packets of the previous script for the next :meth:`read_block`."""
        stream, self._stream = self._stream, None
        if stream is not None and stream.packets:
            with contextlib.suppress(DriverError):
                self._backlog.append(self._take(stream))

    async def _collect_finished_stream(self) -> None:
        """Before starting a script: the previous one must have ended (its packets stay buffered)."""
        stream = self._stream
        if stream is not None and stream.active:
            await self._stop_stream()

    async def _sync(self) -> None:
        """Bring the instrument to "no script running": ``\\n`` + ``Z``, then read to the end."""
        deadline = time.monotonic() + 4 * self.transport.timeout_s + self.sample_interval_s
        async with self.transport.locked():
            await self.transport.write_raw(b"\nZ\n")
            while True:
                line = await self.transport.read_line()
                if line.startswith("Z"):
                    break
                if time.monotonic() > deadline:
                    raise DriverError(self.name, "Z", "the instrument did not acknowledge the abort")
            if line == "Z":  # a script was running: read to its end
                while await self.transport.read_line() != "":
                    if time.monotonic() > deadline:
                        raise DriverError(self.name, "Z", "the aborted script did not end")

    # ---------------------------------------------------------------- data

    def _scan_for_trip(self) -> None:
        """Trip when buffered packets show |E| at/over the limit or the compliance overload."""
        stream = self._stream
        limit = self._voltage_limit_v
        if stream is None or stream.kind != "cp" or not stream.packets or limit is None:
            return
        block = ms.decode_packets(stream.packets[-1:], strict=False)
        if len(block) and "ab" in block.type_codes:
            e = block.column("ab")
            overload = (block.column_status("ab") & ms.Status.OVERLOAD) != 0
            if np.any(np.abs(e) >= limit) or np.any(overload):
                self._tripped = True

    async def read_block(self) -> SampleBlock:
        """The readings since the previous call; waits for at least one (an open-circuit
        reading when the output is off)."""
        async with self._op_lock:
            stream = self._stream
            if stream is not None and stream.lease and stream.active:
                blocks, self._backlog = self._backlog, []
                if stream.packets:
                    blocks.append(self._take(stream))
                return _concatenate(blocks) if blocks else SampleBlock.empty()
            if self._backlog:
                blocks, self._backlog = self._backlog, []
                if stream is not None and stream.packets:
                    blocks.append(self._take(stream))
                return _concatenate(blocks)
            if stream is not None and stream.active and not stream.packets:
                wait_s = stream.interval_s + self.transport.timeout_s * (self.stream_failures_allowed + 1) * 2
                try:
                    await asyncio.wait_for(stream.new_data.wait(), wait_s)
                except TimeoutError:
                    raise DriverError(self.name, None, f"no data packet within {wait_s:g} s") from None
            if stream is not None and stream.packets:
                return self._take(stream)
            if stream is not None and stream.failure is not None:
                raise DriverError(self.name, None, f"data stream lost: {stream.failure.cause}")
            if stream is not None and stream.runtime_error is not None and not stream.error_reported:
                stream.error_reported = True  # the script failed: say so once instead of measuring
                err = stream.runtime_error
                raise InstrumentReportedError(self.name, "e", err.code, err.message)
            return await self._open_circuit_reading()

    async def _open_circuit_reading(self) -> SampleBlock:
        stream = await self._start_stream("ocp", ms.open_circuit_script(self.sample_interval_s))
        budget = self.sample_interval_s + 3 * self.transport.timeout_s * (self.stream_failures_allowed + 1)
        try:
            await asyncio.wait_for(stream.done.wait(), budget)
        except TimeoutError:
            await self._stop_stream()
            raise DriverError(self.name, "meas_loop_ocp", "the open-circuit reading did not end") from None
        if stream.failure is not None:
            await self._stop_stream()
            raise DriverError(self.name, "meas_loop_ocp", f"data stream lost: {stream.failure.cause}")
        if stream.runtime_error is not None:
            err = stream.runtime_error
            raise InstrumentReportedError(self.name, "meas_loop_ocp", err.code, err.message)
        if not stream.packets:
            raise DriverError(self.name, "meas_loop_ocp", "no reading in the open-circuit script's output")
        return self._take(stream)

    def _take(self, stream: _Stream) -> SampleBlock:
        lines, stream.packets = stream.packets, []
        if stream.active:
            stream.new_data.clear()
        block = ms.decode_packets(lines, strict=False)
        if block.rejected:
            self.dropped_packets += len(block.rejected)
            _log.warning("%s: dropped %d malformed packets", self.name, len(block.rejected))
        if len(block) == 0:
            raise DriverError(self.name, None, "no valid data packet in the stream")
        try:
            t = block.column("eb") + stream.time_offset_s
            e = block.column("ab").copy()
            e_status = block.column_status("ab")
        except KeyError as exc:
            raise DriverError(self.name, None, f"unexpected packet layout {block.type_codes}") from exc
        overload_e = (e_status & ms.Status.OVERLOAD) != 0
        limit = self._voltage_limit_v
        if stream.kind == "cp" and limit is not None and (np.any(np.abs(e) >= limit) or np.any(overload_e)):
            self._tripped = True
        e[overload_e] = np.nan
        if "ba" in block.type_codes:
            i = block.column("ba").copy()
            i[(block.column_status("ba") & ms.Status.OVERLOAD) != 0] = np.nan
        else:
            i = np.zeros_like(e)
        self._last_time_s = max(self._last_time_s, float(np.nanmax(t)))
        return SampleBlock(time_s=t, voltage_v=e, current_a=i)

    # ---------------------------------------------------------------- errors and safety

    async def drain_errors(self) -> list[InstrumentError]:
        """Errors the instrument reported while running scripts (``!XXXX``), oldest first."""
        async with self._op_lock:
            errors, self._errors = self._errors, []
            return errors

    async def safe_state(self) -> None:
        """Abort any script and run ``cell_off`` (idempotent). DriverError only if unreachable."""
        async with self._op_lock:
            stream = self._stream
            if stream is not None and stream.active:
                await self._stop_stream()
            elif stream is None or stream.failure is not None:
                await self._sync()
            off = await self._start_stream("off", ["cell_off"])
            try:
                await asyncio.wait_for(off.done.wait(), 2 * self.transport.timeout_s)
            except TimeoutError:
                raise DriverError(self.name, "cell_off", "the cell_off script did not end") from None
            if off.failure is not None:
                raise DriverError(self.name, "cell_off", f"no end of the cell_off script: {off.failure.cause}")
            self._current_a = 0.0
            self._lease = None  # released; its files stay on the instrument for read_lease_buffer()
            self._rest_at_s = None

    # ---------------------------------------------------------------- the lease

    async def arm_lease(self, duration_s: float, read_period_s: float, setpoint_s: float | None = None) -> None:
        """Arm the lease (abort the running loop and start a lease script: the cell is off for
        the few ms in between), or re-arm it (``Y``: no gap in the current) when one with the same
        ``duration_s`` and ``read_period_s`` (s) runs. The instrument turns the cell off by itself
        ``duration_s`` (rounded down to whole reading periods) after it received the last arming;
        a re-arm must reach it at least half a reading period before that. DriverError when the
        output is off (also when the lease ran out before this re-arm).

        ``setpoint_s`` (s from now): the setpoint holds up to and including the first reading at
        or after it, then the cell rests at 0 A (on) to the lease's end; None: no rest. A re-arm
        stays ``Y`` while the running script's rest is the one asked for (to within
        ``REST_EARLY`` / ``REST_LATE`` of a period: the same step's end), or neither falls within
        this lease; otherwise the script is restarted with the new rest (a ``Y`` cannot carry it)."""
        if not (math.isfinite(duration_s) and math.isfinite(read_period_s) and 0 < read_period_s <= duration_s):
            raise ValueError(f"need 0 < read_period_s ({read_period_s}) <= duration_s ({duration_s})")
        if setpoint_s is not None and not (math.isfinite(setpoint_s) and setpoint_s >= 0):
            raise ValueError(f"setpoint_s must be finite and >= 0, got {setpoint_s}")
        spec = _LeaseSpec(float(duration_s), float(read_period_s))
        async with self._op_lock:
            if self._bandwidth_hz is not None and 1.0 / self._bandwidth_hz > read_period_s:
                raise ValueError(f"integration time {1.0 / self._bandwidth_hz:g} s is longer than {read_period_s:g} s")
            if not self._running():
                raise DriverError(self.name, "Y", "arm_lease() needs the output on (a lapsed lease switched it off)")
            stream = self._stream
            assert stream is not None
            if stream.lease and self._lease == spec:
                now = self._script_now_s(stream)
                wanted = None if setpoint_s is None else now + float(setpoint_s)
                if _same_rest(self._rest_at_s, wanted, now, spec):
                    await self._rearm(stream)
                    return
            self._lease = spec
            await self._restart(None if setpoint_s is None else float(setpoint_s))

    def _script_now_s(self, stream: _Stream) -> float:
        """The running script's timer now (s), as the instrument's own readings place it: the
        newest packet's ``eb`` plus the time since it arrived (at most a period), or the time since
        the script started before any packet came."""
        elapsed_since = stream.started_mono
        base = 0.0
        if stream.last_packet is not None:
            try:
                eb = [v.value for v in ms.parse_packet(stream.last_packet) if v.type_code == "eb"]
            except ms.MethodScriptError:
                eb = []
            if eb and math.isfinite(eb[0]):
                base, elapsed_since = eb[0], stream.last_packet_mono
        return base + min(max(self._timer_clock() - elapsed_since, 0.0), stream.interval_s)

    async def _rearm(self, stream: _Stream) -> None:
        """``Y``: the running bounded loop ends and the script starts the next one at once."""
        budget = stream.interval_s + 3 * self.transport.timeout_s * (self.stream_failures_allowed + 1)
        for _ in range(3):
            stream.rearm_answered.clear()
            stream.rearm_refused = False
            stream.interrupting += 1
            try:
                await self.transport.write_raw(b"Y\n")
            finally:
                stream.interrupting -= 1
            answered = asyncio.ensure_future(stream.rearm_answered.wait())
            ended = asyncio.ensure_future(stream.done.wait())
            try:
                await asyncio.wait({answered, ended}, timeout=budget, return_when=asyncio.FIRST_COMPLETED)
            finally:
                answered.cancel()
                ended.cancel()
            if stream.rearm_answered.is_set() and not stream.rearm_refused:
                return
            if not stream.active:
                break
            if not stream.rearm_answered.is_set():
                raise DriverError(self.name, "Y", "no answer to the re-arm")
            await asyncio.sleep(0)  # refused between two bounded loops: ask again
        self._scan_for_trip()
        if self._tripped:
            raise DriverError(self.name, "Y", "the voltage limit ended the lease script: the output is off")
        raise DriverError(self.name, "Y", "the lease ran out before it was re-armed: the output is off")

    async def release_lease(self) -> None:
        """Stop the lease script, leaving the current on (a plain constant-current script takes
        over after the few ms of an abort and restart)."""
        async with self._op_lock:
            if self._lease is None:
                return
            self._lease = None
            self._rest_at_s = None
            stream = self._stream
            if stream is not None and stream.lease and stream.active:
                await self._restart()

    async def wait_readings(self, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` (s) until readings are buffered for :meth:`read_block` (or
        the stream ended); True if some are."""
        stream = self._stream
        if stream is None:
            return bool(self._backlog)
        if not stream.packets and stream.active:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stream.new_data.wait(), timeout_s)
        return bool(stream.packets or self._backlog)

    def time_base(self) -> dict[str, float]:
        """``epoch_utc_s``: the UTC time (s since 1970, whole ms) that reading times count from."""
        return {"epoch_utc_s": self._epoch_utc_ms / 1000.0}

    def restore_time_base(self, state: dict[str, float]) -> None:
        """Count reading times from ``state["epoch_utc_s"]`` (from :meth:`time_base`)."""
        epoch_ms = round(float(state["epoch_utc_s"]) * 1000)
        now_ms = time.time() * 1000.0
        self._epoch_utc_ms = epoch_ms
        self._mono0 = time.monotonic()
        self._base_s = (now_ms - epoch_ms) / 1000.0
        self._last_time_s = max(0.0, min(self._last_time_s, self._base_s))

    async def read_lease_buffer(self) -> SampleBlock:
        """Every reading the lease scripts wrote to the instrument's storage, oldest first, on this
        driver's (restored) time base: time = the file's UTC start - the epoch + ``eb``. Only with
        no script running (the instrument reads no files then): DriverError otherwise."""
        async with self._op_lock:
            stream = self._stream
            if stream is not None and stream.active:
                raise DriverError(self.name, "fs_get", "the instrument reads its files only with no script running")
            names = await self._fs_lines(f"fs_dir {ms.LEASE_DIRECTORY}")
            starts = sorted((s, n) for n in names if (s := ms.lease_file_start_ms(n)) is not None)
            blocks: list[SampleBlock] = []
            for start_ms, name in starts:
                lines = await self._fs_lines(f"fs_get {ms.LEASE_DIRECTORY}/{name}")
                packets = [ln for ln in lines if ln.startswith("P")]
                if packets:
                    blocks.append(self._decode_stored(packets, (start_ms - self._epoch_utc_ms) / 1000.0))
            return _concatenate(blocks) if blocks else SampleBlock.empty()

    async def clear_lease_buffer(self) -> None:
        """Delete the lease files from the instrument (``fs_del``), e.g. once a resume stored them."""
        async with self._op_lock:
            stream = self._stream
            if stream is not None and stream.active:
                raise DriverError(self.name, "fs_del", "the instrument deletes files only with no script running")
            for name in await self._fs_lines(f"fs_dir {ms.LEASE_DIRECTORY}"):
                if ms.lease_file_start_ms(name) is not None:
                    await self._fs_lines(f"fs_del {ms.LEASE_DIRECTORY}/{name}")

    async def _fs_lines(self, command: str) -> list[str]:
        """A file-system command's reply: its lines up to the closing empty line."""
        out: list[str] = []
        async with self.transport.locked():
            await self.transport.write(command)
            while (line := await self.transport.read_line()) != "":
                if not out and (err := ms.parse_error(line)) is not None and line[1:2] == "!":
                    raise InstrumentReportedError(self.name, command, err.code, err.message)
                out.append(line)
        return out

    def _decode_stored(self, packets: list[str], offset_s: float) -> SampleBlock:
        block = ms.decode_packets(packets, strict=False)
        if block.rejected:
            self.dropped_packets += len(block.rejected)
        if len(block) == 0:
            return SampleBlock.empty()
        e = block.column("ab").copy()
        e[(block.column_status("ab") & ms.Status.OVERLOAD) != 0] = np.nan
        i = block.column("ba").copy()
        i[(block.column_status("ba") & ms.Status.OVERLOAD) != 0] = np.nan
        return SampleBlock(time_s=block.column("eb") + offset_s, voltage_v=e, current_a=i)


REST_EARLY = 0.05
"""How much earlier than asked (read periods) the running script's rest may be for a re-arm to stay
``Y``: the host's estimate of the instrument's timer (its newest reading plus the time since)."""
REST_LATE = 0.1
"""How much later than asked (read periods) it may be: the reading the setpoint holds to is then
the same one, or the next."""


def _rest_in_lease(rest_at_s: float | None, now_s: float, spec: _LeaseSpec) -> float | None:
    """Where (script timer, s) a bounded loop started at ``now_s`` rests, or None when it does not:
    no rest, or the reading it holds to is the lease's last."""
    if rest_at_s is None:
        return None
    start = max(rest_at_s, now_s)
    return start if start - now_s <= spec.run_time_s - spec.read_period_s * (1 - 1e-6) else None


def _same_rest(held_s: float | None, wanted_s: float | None, now_s: float, spec: _LeaseSpec) -> bool:
    """Whether a re-arm (``Y``) now, with the script's rest at ``held_s``, does what a restart with
    the rest at ``wanted_s`` would within the new lease (script timer, s; None: no rest)."""
    held, wanted = _rest_in_lease(held_s, now_s, spec), _rest_in_lease(wanted_s, now_s, spec)
    if held is None or wanted is None:
        return held is None and wanted is None
    return -REST_EARLY * spec.read_period_s <= held - wanted <= REST_LATE * spec.read_period_s


def _concatenate(blocks: list[SampleBlock]) -> SampleBlock:
    if len(blocks) == 1:
        return blocks[0]
    return SampleBlock(
        time_s=np.concatenate([b.time_s for b in blocks]),
        voltage_v=np.concatenate([b.voltage_v for b in blocks]),
        current_a=np.concatenate([b.current_a for b in blocks]),
    )
