"""The channel supervisor: every setpoint and every sample block of one channel passes through it.

It does not know about schedules or the engine. Its promise: whatever goes wrong (a limit, a bad
reading, a silent instrument, an exception, a cancellation, an emergency stop) the channel ends in
its safe state (current zero, output off in high impedance, queried back) and an :class:`Event`
says why, with the numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

import numpy as np

from licycler.clock import Clock
from licycler.drivers.errors import DriverError
from licycler.drivers.interfaces import (
    LeasedChannel,
    OutputOffMode,
    PressureRig,
    SampleBlock,
    SourceMeasureChannel,
)
from licycler.events import Event, EventSink
from licycler.safety.checks import BlockChecker, Violation
from licycler.safety.limits import Limits, LimitStack

__all__ = ["ChannelSupervisor", "InterlockError", "PressureInterlock", "SafetyTripped"]

Value = float | str | bool | None

LEASE_SLACK_READS = 3
"""How many read periods a lease may reach past the step's expected end (the engine's horizon), on
an instrument that cannot rest the cell by itself (``lease_rests`` False): the step's last reading
comes up to a period after it, an instrument rounds a lease down to whole periods (up to one less),
and a period is left for the engine to start the next step. An instrument that rests holds the
setpoint only to the horizon and then sources 0 A to the end of a whole lease."""
REST_MARGIN_READS = 0.1
"""How far past the horizon (read periods) the setpoint holds on an instrument that rests: the
reading that completes the step's charge lies at or after the horizon, never just before it."""


class SafetyTripped(RuntimeError):
    """Raised to the caller after the supervisor has put the channel in its safe state."""

    def __init__(self, violation: Violation, block: SampleBlock | None = None) -> None:
        super().__init__(f"{violation.cause}: {violation.message}")
        self.violation = violation
        self.block = block


class InterlockError(RuntimeError):
    """An interlock forbids current: identity mismatch, pressure out of window or not settled."""


@dataclass(frozen=True)
class PressureInterlock:
    """Stack pressure must stay inside the window for ``settle_s`` (s), varying less than
    ``settle_tolerance_pa`` (Pa), before current may flow; read every ``poll_s`` (s)."""

    settle_s: float = 10.0
    settle_tolerance_pa: float = 5e3
    poll_s: float = 1.0


class ChannelSupervisor:
    """Guards one source-measure channel (and its pressure rig, if any).

    ``limits`` holds the layers (instrument, station, protocol, step); the effective limits are
    checked on every setpoint and every block. ``read_period_s`` is how often the engine reads;
    the watchdog trips when no fresh sample arrives within ``watchdog_factor`` read periods;
    ``stuck_count`` identical readings under current count as a stuck instrument.

    ``lease_s`` (s) is the instrument-side dead-man lease (:class:`~licycler.drivers.interfaces.
    LeasedChannel`): while the output is on the instrument is armed to turn it off by itself unless
    renewed, which happens with the fresh samples (every third of the lease): a controller whose
    reads stop, dead or hung, stops renewing. :attr:`lease_horizon`, set by the engine, tells where
    the running step is due to end (clock s, None when open-ended): a lease reaches at most
    ``LEASE_SLACK_READS`` read periods past it, so an instrument left alone stops about where the
    step would have, rather than sourcing on for a whole lease.
    """

    def __init__(
        self,
        name: str,
        channel: SourceMeasureChannel,
        *,
        clock: Clock,
        events: EventSink,
        limits: LimitStack | None = None,
        area_m2: float | None = None,
        rig: PressureRig | None = None,
        expected_identity: str | None = None,
        read_period_s: float = 1.0,
        watchdog_factor: float = 3.0,
        pressure_interlock: PressureInterlock | None = None,
        stuck_count: int = 20,
        lease_s: float | None = None,
    ) -> None:
        self.name = name
        self.channel = channel
        self.clock = clock
        self.events = events
        self.limits = limits or LimitStack()
        self.area_m2 = area_m2
        self.rig = rig
        self.expected_identity = expected_identity
        self.read_period_s = read_period_s
        self.watchdog_factor = watchdog_factor
        self.pressure_interlock = pressure_interlock or PressureInterlock()
        self.stuck_count = stuck_count
        self.checker = BlockChecker(area_m2=area_m2, stuck_count=stuck_count)
        self.lease_s = lease_s
        self.lease_waived = False
        """True when the station file said ``lease: none`` for this instrument (warned at every run start)."""
        self.lease_horizon: Callable[[], float | None] | None = None
        self.setpoint_is_current = True
        """False while the engine holds a voltage (a rest is a current of 0 A: only after a current)."""
        self._rest_at_s = math.inf
        """Clock time from which the instrument rests the cell (the setpoint ended by the lease)."""
        self._leased_at: float | None = None
        self._lease_end_s = 0.0
        self.tripped: Violation | None = None
        self.last_pressure_pa: float | None = None
        """The stack pressure read with the last block (Pa), None without a rig."""
        self.armed = False
        self.identity: str | None = None
        """The instrument's identity as it answered at the last arming (``*IDN?`` or the like)."""
        self._last_sample_t: float | None = None
        self._time_offset_s: float | None = None
        self._last_instrument_t = -np.inf
        self._last_mapped_t: float | None = None
        self._last_fresh_clock: float = clock.now()
        self._watchdog: asyncio.Task[None] | None = None
        self._retry: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # --- events -----------------------------------------------------------------------------
    def _emit(self, kind: str, cause: str, message: str, values: Mapping[str, Value] | None = None) -> None:
        self.events.emit(Event(self.clock.now(), "safety", kind, cause, message, self.name, dict(values or {})))

    # --- safe state -------------------------------------------------------------------------
    async def _try_safe_state(self, attempts: int) -> tuple[bool, str]:
        error = ""
        for attempt in range(attempts):
            try:
                await self.channel.safe_state()
                if not await self.channel.output_enabled():
                    return True, ""
            except DriverError as exc:
                error = str(exc)
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        return False, error

    async def secure(self, cause: str, message: str, values: Mapping[str, Value] | None = None) -> bool:
        """Put the channel in its safe state and query that the output is off.

        Returns True when the instrument confirmed the output off. Never raises for an instrument
        fault: when the instrument cannot be reached, the event says so (``output_off_verified``
        False) and a background task keeps trying, with backoff, until it confirms; then a second
        ``secured`` event says so.
        """
        self.armed = False
        self._leased_at = None
        self._rest_at_s = math.inf
        verified, error = await self._try_safe_state(3)
        self._emit("secured", cause, message, {**(values or {}), "output_off_verified": verified,
                                               "driver_error": error or None})  # fmt: skip
        if not verified and (self._retry is None or self._retry.done()):
            self._retry = asyncio.create_task(self._secure_until_confirmed(cause), name=f"secure:{self.name}")
        return verified

    async def _secure_until_confirmed(self, cause: str) -> None:
        attempt = 0
        while True:
            verified, _ = await self._try_safe_state(1)
            if verified:
                self._emit("secured", cause, "output off confirmed after the instrument came back",
                           {"output_off_verified": True, "attempts": attempt + 1})  # fmt: skip
                return
            attempt += 1
            await asyncio.sleep(min(0.2 * 2**attempt, 30.0))

    async def wait_secured(self) -> None:
        """Wait until a background attempt to reach a lost instrument has confirmed its safe state."""
        if self._retry is not None:
            await self._retry

    async def trip(self, violation: Violation) -> None:
        """Act on a violation: safe state first, then the event carrying its numbers."""
        async with self._lock:
            first = self.tripped is None
            if first:
                self.tripped = violation
            values = {**violation.values, "at_s": violation.time_s}
            verified = await self.secure(violation.cause, violation.message, values)
            self._emit("trip", violation.cause, violation.message,
                       {**values, "output_off_verified": verified, "repeat": not first})  # fmt: skip

    async def emergency_stop(self, reason: str = "emergency stop") -> None:
        """Put the channel in its safe state now, whatever it is doing."""
        await self.trip(Violation("estop", reason, self.clock.now()))

    def reset(self) -> None:
        """Clear a trip (an operator's decision after reading the event); the channel must be armed again."""
        self.tripped = None
        self.checker = BlockChecker(area_m2=self.area_m2, stuck_count=self.stuck_count)

    # --- interlocks and arming --------------------------------------------------------------
    async def check_identity(self) -> str:
        """Query the identity and compare it with the configured one (substring, case-insensitive)."""
        identity = await self.channel.identify()
        self.identity = identity
        if self.expected_identity and self.expected_identity.lower() not in identity.lower():
            raise InterlockError(
                f"{self.name}: instrument identifies as '{identity}', expected '{self.expected_identity}'"
            )
        return identity

    async def check_pressure(self, limits: Limits | None = None) -> float | None:
        """One pressure reading checked against the window; returns it (Pa), or None without a rig."""
        if self.rig is None:
            return None
        limits = limits or self.limits.effective
        pressure = await self.rig.read_pressure_pa()
        self.last_pressure_pa = pressure
        low, high = limits.pressure_min_pa, limits.pressure_max_pa
        if not np.isfinite(pressure) or (low is not None and pressure < low) or (high is not None and pressure > high):
            raise InterlockError(f"{self.name}: stack pressure {pressure:.4g} Pa outside the window [{low}, {high}] Pa")
        return pressure

    async def wait_pressure_settled(self) -> float | None:
        """Read the rig until it has stayed in its window and within the settle tolerance for the
        settle time; returns the last pressure (Pa). Raises :class:`InterlockError` when it leaves.
        Without a pressure window in the limits there is nothing to wait for (returns None)."""
        eff = self.limits.effective
        if self.rig is None or (eff.pressure_min_pa is None and eff.pressure_max_pa is None):
            return None  # no rig, or no pressure window: no pressure interlock
        spec = self.pressure_interlock
        readings: list[tuple[float, float]] = []
        start = self.clock.now()
        while True:
            pressure = await self.check_pressure()
            assert pressure is not None
            now = self.clock.now()
            readings.append((now, pressure))
            window = [p for t, p in readings if t >= now - spec.settle_s]
            if now - start >= spec.settle_s and max(window) - min(window) <= spec.settle_tolerance_pa:
                return pressure
            if now - start > 10 * spec.settle_s:
                raise InterlockError(f"{self.name}: stack pressure did not settle within {10 * spec.settle_s:g} s")
            await self.clock.sleep_until(now + spec.poll_s)

    async def arm(self) -> None:
        """Interlocks, then compliance at the limit and high-impedance output-off, before any current.

        The instrument's own voltage limit is set to the larger magnitude of the voltage window
        (the driver reads it back); the software window catches the other side.
        """
        if self.tripped is not None:
            raise InterlockError(f"{self.name}: tripped ({self.tripped.cause}); reset before arming")
        await self.check_identity()
        await self.wait_pressure_settled()
        eff = self.limits.effective
        bounds = [abs(b) for b in (eff.voltage_min_v, eff.voltage_max_v) if b is not None]
        if not bounds:
            raise InterlockError(f"{self.name}: no voltage window is set; refusing to source current")
        await self.channel.configure_current_source(voltage_limit_v=max(bounds), off_mode=OutputOffMode.HIGH_IMPEDANCE)
        self.armed = True
        self._emit("armed", "armed", "interlocks passed, compliance set", {"voltage_limit_v": max(bounds)})

    # --- setpoints --------------------------------------------------------------------------
    async def set_current(self, current_a: float) -> None:
        """Check ``current_a`` (A) against the effective limits, then send it. Refused setpoints raise
        :class:`~licycler.safety.limits.SetpointRefused` and never reach the instrument."""
        self.limits.effective.check_current(current_a, self.area_m2)
        if current_a != 0.0 and (not self.armed or self.tripped is not None):
            raise InterlockError(f"{self.name}: not armed; refusing a current of {current_a:g} A")
        await self.channel.set_current(current_a)
        self.setpoint_is_current = True

    async def output_on(self) -> None:
        """Turn the output on, only when armed and not tripped."""
        if not self.armed or self.tripped is not None:
            raise InterlockError(f"{self.name}: not armed; refusing to turn the output on")
        await self.channel.output_on()
        self._last_fresh_clock = self.clock.now()
        if self.lease_s is not None and isinstance(self.channel, LeasedChannel):
            await self._renew_lease()
            self._emit("lease", "lease_armed", f"the instrument turns its output off by itself unless renewed within "
                       f"{self.lease_s:g} s ({self.channel.lease_mechanism})", {"lease_s": self.lease_s})  # fmt: skip

    @property
    def leased(self) -> bool:
        """Whether the instrument holds a lease now (armed with the output on)."""
        return self._leased_at is not None

    async def _renew_lease(self, *, rest: bool = False) -> None:
        """Arm the lease again from now, for the whole lease. An instrument that rests holds the
        setpoint to the step's horizon (or rests at once: ``rest``, a step that has ended) and
        rests the cell at 0 A after it; any other is cut to a few read periods past the horizon."""
        channel = self.channel
        assert self.lease_s is not None
        assert isinstance(channel, LeasedChannel)
        now = self.clock.now()
        duration = self.lease_s
        horizon = now if rest else self.lease_horizon() if self.lease_horizon is not None else None
        setpoint_s: float | None = None
        if horizon is not None and channel.lease_rests and self.setpoint_is_current:
            setpoint_s = max(horizon - now, 0.0) + (0.0 if rest else REST_MARGIN_READS * self.read_period_s)
        elif horizon is not None and not rest:
            duration = min(duration, max(horizon - now, 0.0) + LEASE_SLACK_READS * self.read_period_s)
        await channel.arm_lease(duration, self.read_period_s, setpoint_s)
        self._leased_at = now
        self._lease_end_s = now + duration - self.read_period_s  # whole periods: it may end one sooner
        self._rest_at_s = math.inf if setpoint_s is None else now + setpoint_s

    async def renew_lease(self, *, rest: bool = False) -> None:
        """Renew now if a lease is held: the engine calls it when a step starts (a new horizon),
        and with ``rest`` when one ends (the cell rests until the next step's setpoint)."""
        if self._leased_at is not None and self.armed:
            await self._renew_lease(rest=rest)

    def lease_due(self) -> bool:
        """Whether the lease wants renewing: a third of it has passed, or less than two read
        periods of it are left while the step is due to end later than it reaches (a step that
        runs late; one that ends on time is covered, and the next step renews)."""
        if self._leased_at is None or self.lease_s is None:
            return False
        now = self.clock.now()
        if now - self._leased_at >= self.lease_s / 3:
            return True
        horizon = self.lease_horizon() if self.lease_horizon is not None else None
        if horizon is not None and now >= self._rest_at_s + 1.5 * self.read_period_s:
            return True  # the instrument rests while the step goes on (its count fell just short)
        if self._lease_end_s - now >= 2 * self.read_period_s:
            return False
        reach = math.inf if horizon is None else horizon + (LEASE_SLACK_READS - 1.5) * self.read_period_s
        return self._lease_end_s < reach

    # --- samples ----------------------------------------------------------------------------
    async def read_block(self) -> SampleBlock:
        """Read the next block from the instrument and check it before anyone else sees it.

        A violation, an instrument error, or an exception leaves the channel secured and raises
        :class:`SafetyTripped` carrying the block (so the data up to the fault is kept).
        """
        return await self._accept(self._on_clock(self.channel.read_block()))

    async def _on_clock(self, reading: Awaitable[SampleBlock]) -> SampleBlock:
        """Instrument timestamps onto the controller's clock (s).

        An instrument counts time from its own origin (power-on, a reset, its first buffered
        reading); the run counts on the clock. The first block is anchored so that its newest
        reading is "now", and spacing then follows the instrument; a timestamp going backwards (the
        instrument was reset or replaced) anchors again, after the last mapped time."""
        block = await reading
        if not len(block):
            return block
        t = block.time_s
        if self._time_offset_s is None or float(t[0]) < self._last_instrument_t:
            offset = self.clock.now() - float(t[-1])
            if self._last_mapped_t is not None:
                offset = max(offset, self._last_mapped_t - float(t[0]) + 1e-6)
            self._time_offset_s = offset
            if isinstance(self.channel, LeasedChannel):  # what a resume needs to place the instrument's readings
                self._emit("time_base", "anchored", "instrument times mapped onto the run's clock", self.resume_state())
        self._last_instrument_t = float(t[-1])
        mapped = t + self._time_offset_s
        self._last_mapped_t = float(mapped[-1])
        return SampleBlock(time_s=mapped, voltage_v=block.voltage_v, current_a=block.current_a)

    def resume_state(self) -> dict[str, Value]:
        """What another controller needs to take this channel over (flat, JSON-able): the instrument's
        identity, the driver's time base (``base.*``), the offset from instrument to run-clock time (s),
        the last instrument time mapped, and the wall-clock time of the run's clock zero (Unix s)."""
        state: dict[str, Value] = {
            "identity": self.identity,
            "time_offset_s": self._time_offset_s,
            "last_instrument_s": None if not np.isfinite(self._last_instrument_t) else self._last_instrument_t,
            "clock_epoch_unix_s": time.time() - self.clock.now(),
        }
        if isinstance(self.channel, LeasedChannel):
            state.update({f"base.{k}": v for k, v in self.channel.time_base().items()})
        return state

    def restore_time_mapping(self, state: Mapping[str, Value]) -> None:
        """Map the instrument's times as the controller that recorded ``state`` (:meth:`resume_state`) did."""
        if isinstance(self.channel, LeasedChannel):
            base = {k[5:]: float(v) for k, v in state.items() if k.startswith("base.") and isinstance(v, int | float)}
            self.channel.restore_time_base(base)
        offset, last = state.get("time_offset_s"), state.get("last_instrument_s")
        if isinstance(offset, int | float) and not isinstance(offset, bool):
            self._time_offset_s = float(offset)
        if isinstance(last, int | float) and not isinstance(last, bool):
            self._last_instrument_t = float(last)
            self._last_mapped_t = float(last) + (self._time_offset_s or 0.0)

    def to_clock(self, block: SampleBlock) -> SampleBlock:
        """A block of instrument times (on the restored mapping) on the run's clock; advances the mapping."""
        if self._time_offset_s is None or not len(block):
            return block
        self._last_instrument_t = max(self._last_instrument_t, float(block.time_s[-1]))
        mapped = block.time_s + self._time_offset_s
        self._last_mapped_t = float(mapped[-1])
        return SampleBlock(time_s=mapped, voltage_v=block.voltage_v, current_a=block.current_a)

    async def read_segment(
        self, n_samples: int, *, stop_above_v: float | None = None, stop_below_v: float | None = None
    ) -> SampleBlock:
        """Let an instrument that runs segments itself source for up to ``n_samples`` samples (see
        the engine's ``SegmentChannel``), then check the block exactly like :meth:`read_block`."""
        run_segment = getattr(self.channel, "run_segment", None)
        if run_segment is None:
            raise TypeError(f"{self.name}: the instrument cannot run segments")
        return await self._accept(run_segment(n_samples, stop_above_v=stop_above_v, stop_below_v=stop_below_v))

    async def _accept(self, reading: Awaitable[SampleBlock]) -> SampleBlock:
        try:
            block = await reading
        except DriverError as exc:
            lost = Violation("instrument_error", str(exc), self.clock.now(), {"cause": exc.cause})
            await self.trip(lost)
            raise SafetyTripped(lost) from exc
        violation = self.checker.check(block, self.limits.effective)
        if violation is None and self.rig is not None:
            try:
                await self.check_pressure()
            except InterlockError as exc:
                violation = Violation("pressure_out_of_window", str(exc), self.clock.now())
            except DriverError as exc:
                violation = Violation("rig_error", str(exc), self.clock.now())
        if len(block):
            newest = float(block.time_s[-1])
            if self._last_sample_t is None or newest > self._last_sample_t:
                self._last_sample_t = newest
                self._last_fresh_clock = self.clock.now()
        if violation is not None:
            await self.trip(violation)
            raise SafetyTripped(violation, block)
        if self.tripped is not None:  # tripped meanwhile by another task (watchdog, emergency stop): secured
            raise SafetyTripped(self.tripped, block)
        if self.lease_due() and self.armed:  # renewed with fresh, accepted samples only
            try:
                await self._renew_lease()
            except DriverError as exc:
                lost = Violation("lease_failure", f"the lease could not be renewed: {exc}", self.clock.now())
                await self.trip(lost)
                raise SafetyTripped(lost, block) from exc
        return block

    # --- watchdog and exit paths ------------------------------------------------------------
    def start_watchdog(self) -> None:
        """Start the watchdog task: no fresh sample within ``watchdog_factor`` read periods trips."""
        if self._watchdog is None or self._watchdog.done():
            self._last_fresh_clock = self.clock.now()
            self._watchdog = asyncio.create_task(self._watch(), name=f"watchdog:{self.name}")

    async def stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None

    async def _watch(self) -> None:
        timeout = self.watchdog_factor * self.read_period_s
        while self.tripped is None:
            deadline = self._last_fresh_clock + timeout
            await self.clock.wait_until(deadline)
            if self.clock.now() >= self._last_fresh_clock + timeout and self.armed:
                await self.trip(
                    Violation(
                        "watchdog", f"no fresh sample for {timeout:g} s", self.clock.now(), {"timeout_s": timeout}
                    )
                )
                return
            if not self.armed:
                self._last_fresh_clock = self.clock.now()
                await self.clock.wait_until(self.clock.now() + self.read_period_s)

    @contextlib.asynccontextmanager
    async def guard(self, context: str = "") -> AsyncIterator[ChannelSupervisor]:
        """Secure the channel on any way out but a normal one: exception, cancellation, trip.

        ``async with supervisor.guard("plating step 3"):`` around everything that can source current.
        """
        try:
            yield self
        except SafetyTripped:
            raise
        except asyncio.CancelledError:
            await asyncio.shield(self._secure_on_exit("cancelled", f"task cancelled {context}".strip()))
            raise
        except BaseException as exc:
            cause = "exception" if isinstance(exc, Exception) else type(exc).__name__.lower()
            await asyncio.shield(
                self._secure_on_exit(
                    cause, f"{type(exc).__name__} {context}: {exc}".strip(), {"error": type(exc).__name__}
                )
            )
            raise

    async def _secure_on_exit(self, cause: str, message: str, values: Mapping[str, Value] | None = None) -> None:
        if self.tripped is None:
            self.tripped = Violation(cause, message, self.clock.now(), dict(values or {}))
        if asyncio.current_task() is not self._watchdog:
            await self.stop_watchdog()
        verified = await self.secure(cause, message, values)
        self._emit("trip", cause, message, {**(values or {}), "output_off_verified": verified})
