"""An emulated PalmSens EmStat4 that runs a MethodSCRIPT subset against a simulated cell.

Online commands (one line each, LF): ``t`` firmware (two lines, the second ends in ``*``), ``i``
serial number, ``v`` MethodSCRIPT version, ``e`` + script lines + an empty line (load and run),
``Z`` abort (``Z!0006`` when nothing runs), ``Y`` abort the running measurement loop only (the
script goes on after its ``endloop``; ``Y!0006`` when no measurement loop runs); ``fs_dir <dir>``,
``fs_get <path>``, ``fs_del <path>`` on the on-board file storage (the lines, then an empty line;
reply framing assumed, see docs/lease-emstat4.md). Replies echo the command's first character; errors are
``!XXXX`` (hex), with ``: Line L, Col C`` for a script rejected while loading and ``: Line L`` for
a runtime error (which, as on the instrument, skips ``on_finished:``).

Script subset: ``var``; ``set_pgstat_chan``, ``set_pgstat_mode``, ``set_max_bandwidth``,
``set_range``, ``set_range_minmax``, ``set_autoranging``, ``set_acquisition_frac_autoadjust``;
``set_i``, ``set_e``, ``cell_on``, ``cell_off``; ``timer_start``, ``timer_get``;
``meas_loop_cp E I <current> <interval> <run time>`` and ``meas_loop_ocp E <interval> <run time>``
... ``endloop`` holding ``pck_start``/``pck_add``/``pck_end``, ``timer_get`` and
``if <var> <op> <number|var>`` / ``breakloop`` / ``endif``; ``on_finished:``; ``#`` comments. Outside
measurement loops: ``loop <var> <op> <var|number>`` ... ``endloop`` (``breakloop`` leaves it),
``if`` ... ``endif`` on scalars, ``store_var``, ``add_var``, ``sub_var``; ``file_open "<path>" <mode>``,
``file_close`` and ``set_script_output <1 comm | 2 file | 3 both>`` (files live as long as the
emulation: the instrument's storage).

The script runs on ``clock`` alone: a loop ends at its run time and ``on_finished:`` switches the
cell off whether or not anybody reads the pty (replies are queued, never waited for). A loop that
breaks on time alone (``if t >= r`` on a ``timer_get`` variable, as the lease's rest does) ends at
that very reading even when the clock jumped far past it, and what follows (a 0 A loop) drives the
cell from there.

A measurement loop prints ``M000A`` (chronopotentiometry) or ``M000B`` (open circuit), then one
packet per interval *on the clock*, ``*`` at its end, and the script ends with an empty line.
Packets that fall due together (a virtual clock moved far ahead) are computed as one numpy block.
The cell sees ``source_current`` at the loop start, ``open_circuit`` at ``cell_off``; a current
source that would need more than the compliance voltage holds the compliance voltage instead
(the ``ab`` status then carries the overload bit). The switch to the compliance voltage happens at
the last reading of the block in which the overload is first seen (on a real-time clock a block
holds one reading).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from licycler.drivers import methodscript as ms
from licycler.sim_instruments.interfaces import CellTerminals, Clock, FloatArray
from licycler.sim_instruments.serial_server import PtySerialServer, ReplyChannel

if TYPE_CHECKING:
    from licycler.sim_instruments.registry import SimWorld

__all__ = ["EmStat4Emulation", "EmStat4Spec", "serve"]

_MAX_BATCH = 4096
_TIME_EPS_S = 1e-9
"""A reading falls due when the clock is this close to its time (s)."""
_OPS = {">", "<", ">=", "<=", "==", "!="}
_CONFIG_COMMANDS = {
    "set_pgstat_chan": (1, 1),
    "set_pgstat_mode": (1, 1),
    "set_max_bandwidth": (1, 1),
    "set_range": (2, 2),
    "set_range_minmax": (3, 3),
    "set_autoranging": (3, 3),
    "set_acquisition_frac_autoadjust": (1, 1),
}


@dataclass(frozen=True)
class EmStat4Spec:
    """What distinguishes one EmStat4 model: device type (firmware prefix), limits, identity."""

    device_type: str = "es4_hr"
    firmware_version: str = "1100"
    build: str = "Jan 28 2022 11:04:43"
    serial_number: str = "ES4HR22A0042"
    mscript_version: str = "mscr1.3"
    compliance_v: float = 6.0
    """Largest |cell voltage| the galvanostat can apply, V."""
    max_current_range_a: float = 0.1
    min_current_range_a: float = 100e-9


class _ScriptError(Exception):
    def __init__(self, code: int, line: int, column: int = 1) -> None:
        super().__init__(f"!{code:04X}: Line {line}, Col {column}")
        self.code, self.line, self.column = code, line, column


@dataclass
class _Stmt:
    line: int
    op: str
    args: tuple[str, ...]
    body: list[_Stmt] = field(default_factory=list)


def _parse_number(text: str, line: int, col: int) -> float:
    try:
        return ms.parse_literal(text)
    except ms.MethodScriptError:
        raise _ScriptError(0x0007, line, col) from None


class _Parser:
    """Script text -> (main statements, on_finished statements), checked as the instrument does."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.declared: set[str] = set()

    def parse(self) -> tuple[list[_Stmt], list[_Stmt]]:
        main: list[_Stmt] = []
        finished: list[_Stmt] = []
        target = main
        stack: list[_Stmt] = []  # open meas loops / ifs
        for number, raw in enumerate(self.lines, start=1):
            text = raw.split("#", 1)[0].strip()
            if not text:
                continue
            col = len(raw) - len(raw.lstrip()) + 1
            words = text.split()
            op, args = words[0], tuple(words[1:])
            if op == "on_finished:":
                if stack or target is finished:
                    raise _ScriptError(0x4004, number, col)
                target = finished
                continue
            stmt = self._statement(op, args, number, col, stack)
            if op in ("endloop", "endif"):
                opener = stack.pop()
                want = "endif" if opener.op == "if" else "endloop"
                if op != want:
                    raise _ScriptError(0x4004, number, col)
                continue
            if stack:
                stack[-1].body.append(stmt)
            else:
                target.append(stmt)
            if op.startswith("meas_loop") or op in ("if", "loop"):
                stack.append(stmt)
        if stack:
            raise _ScriptError(0x4018, len(self.lines) or 1)
        return main, finished

    def _statement(self, op: str, args: tuple[str, ...], line: int, col: int, stack: list[_Stmt]) -> _Stmt:
        in_loop = any(s.op.startswith("meas_loop") for s in stack)
        in_any_loop = in_loop or any(s.op == "loop" for s in stack)

        def need(n_min: int, n_max: int) -> None:
            if len(args) > n_max:
                raise _ScriptError(0x420A, line, col)
            if len(args) < n_min:
                raise _ScriptError(0x4001, line, col)

        def declared(name: str) -> None:
            if name not in self.declared:
                raise _ScriptError(0x420B, line, col)

        if op == "var":
            need(1, 1)
            if in_loop:
                raise _ScriptError(0x401A, line, col)
            if args[0] in self.declared:
                raise _ScriptError(0x4026, line, col)
            self.declared.add(args[0])
        elif op in _CONFIG_COMMANDS:
            need(*_CONFIG_COMMANDS[op])
            numbers = args[1:] if op in ("set_range", "set_range_minmax", "set_autoranging") else args
            for a in numbers:
                _parse_number(a, line, col)
        elif op in ("set_i", "set_e"):
            need(1, 1)
            if args[0] not in self.declared:  # a variable or a number
                _parse_number(args[0], line, col)
        elif op in ("cell_on", "cell_off", "timer_start", "pck_start", "pck_end", "breakloop", "endloop", "endif"):
            need(0, 0)
            if op in ("pck_start", "pck_end") and not in_loop:
                raise _ScriptError(0x400C, line, col)
            if op == "breakloop" and not in_any_loop:
                raise _ScriptError(0x400C, line, col)
            if op in ("endloop", "endif") and not stack:
                raise _ScriptError(0x4004, line, col)
        elif op in ("timer_get", "pck_add"):
            need(1, 1)
            declared(args[0])
            if op == "pck_add" and not in_loop:
                raise _ScriptError(0x400C, line, col)
        elif op in ("if", "loop"):
            need(3, 3)
            declared(args[0])
            if args[1] not in _OPS:
                raise _ScriptError(0x4004, line, col)
            if args[2] not in self.declared:
                _parse_number(args[2], line, col)
        elif op == "store_var":
            need(3, 3)
            declared(args[0])
            _parse_number(args[1], line, col)
        elif op in ("add_var", "sub_var"):
            need(2, 2)
            declared(args[0])
            if args[1] not in self.declared:
                _parse_number(args[1], line, col)
        elif op == "file_open":
            need(2, 2)
            if len(args[0]) < 3 or not (args[0][0] == args[0][-1] == '"'):
                raise _ScriptError(0x4004, line, col)
            _parse_number(args[1], line, col)
        elif op == "file_close":
            need(0, 0)
        elif op == "set_script_output":
            need(1, 1)
            _parse_number(args[0], line, col)
        elif op in ("meas_loop_cp", "meas_loop_ocp"):
            if in_loop:
                raise _ScriptError(0x400B, line, col)
            # cp: E and I outputs, current, interval, run time; ocp: E output, interval, run time
            n_vars, n_args = (2, 5) if op == "meas_loop_cp" else (1, 3)
            need(n_args, n_args)
            for name in args[:n_vars]:
                declared(name)
            numbers = args[n_vars:]
            if op == "meas_loop_cp" and numbers[0] in self.declared:
                numbers = numbers[1:]
            values = [_parse_number(a, line, col) for a in numbers]
            if any(not v > 0 for v in values[-2:]):
                raise _ScriptError(0x4204, line, col)
        else:
            raise _ScriptError(0x4001, line, col)
        return _Stmt(line, op, args)


class _Aborted(Exception):
    """``Z`` arrived: leave the main statements for ``on_finished:``."""


class _Break(Exception):
    """``breakloop`` outside a measurement loop: leave the innermost ``loop``."""


class _RuntimeFailure(Exception):
    def __init__(self, code: int, line: int) -> None:
        super().__init__(f"!{code:04X}: Line {line}")
        self.code, self.line = code, line


class EmStat4Emulation:
    """The EmStat4 command set over a :class:`~licycler.sim_instruments.serial_server.PtySerialServer`.

    ``cell`` is what the working/counter electrode leads see, ``clock`` times the measurement
    loops. Attributes for tests: ``cell_on`` (bool), ``scripts_run`` (count), ``cell_log`` (every
    switch of the cell as (clock time s, on)), ``files`` (the on-board storage: path -> lines).
    """

    input_terminators = b"\n"
    keep_empty_lines = True

    def __init__(self, cell: CellTerminals, clock: Clock, spec: EmStat4Spec | None = None) -> None:
        self.cell = cell
        self.clock = clock
        self.spec = spec or EmStat4Spec()
        self.model = f"EmStat4 ({self.spec.device_type})"
        self.cell_on = False
        self.scripts_run = 0
        self.cell_log: list[tuple[float, bool]] = []
        self.files: dict[str, list[str]] = {}
        self._collecting: list[str] | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._abort = asyncio.Event()
        self._loop_abort = asyncio.Event()
        self._in_meas_loop = False

    def _switch_cell(self, on: bool, now: float) -> None:
        if on != self.cell_on:
            self.cell_log.append((now, on))
        self.cell_on = on

    @property
    def running(self) -> bool:
        return self._run_task is not None and not self._run_task.done()

    # ---------------------------------------------------------------- online commands

    async def handle_line(self, line: str, reply: ReplyChannel) -> None:
        line = line.rstrip("\r")
        if self._collecting is not None:
            if line:
                self._collecting.append(line)
                return
            script, self._collecting = self._collecting, None
            self._start(script, reply)
            return
        if self.running:
            if line.strip() == "Z":
                reply.send(b"Z\n")
                self._abort.set()
            elif line.strip() == "Y":
                if self._in_meas_loop and not self._loop_abort.is_set():
                    reply.send(b"Y\n")
                    self._loop_abort.set()
                else:
                    reply.send(b"Y!0006\n")
            elif line:
                reply.send(f"{line[0]}!0006\n".encode())
            return
        command = line.strip()
        if not command:
            return  # a bare newline flushes the command buffer
        if command == "t":
            s = self.spec
            reply.send(f"t{s.device_type}{s.firmware_version}#{s.build}\nR*\n".encode())
        elif command == "i":
            reply.send(f"i{self.spec.serial_number}\n".encode())
        elif command == "v":
            reply.send(f"v{self.spec.mscript_version}\n".encode())
        elif command == "e":
            self._collecting = []
        elif command in ("Z", "Y"):
            reply.send(f"{command}!0006\n".encode())
        elif command.split()[0] in ("fs_dir", "fs_get", "fs_del"):
            self._file_command(command, reply)
        else:
            reply.send(f"{command[0]}!0003\n".encode())

    def _file_command(self, command: str, reply: ReplyChannel) -> None:
        """``fs_dir <dir>`` (the names in it), ``fs_get <path>`` (the file's lines), ``fs_del
        <path>``: each reply ends with an empty line; an unknown path is ``f!0007``."""
        words = command.split()
        name, path = words[0], (words[1] if len(words) > 1 else "/")
        if name == "fs_dir":
            prefix = path.rstrip("/") + "/"
            names = sorted(p[len(prefix) :] for p in self.files if p.startswith(prefix) and "/" not in p[len(prefix) :])
            reply.send("".join(f"{n}\n" for n in names).encode() + b"\n")
            return
        if path not in self.files:
            reply.send(b"f!0007\n")
            return
        if name == "fs_get":
            reply.send("".join(f"{ln}\n" for ln in self.files[path]).encode() + b"\n")
        else:
            del self.files[path]
            reply.send(b"\n")

    async def shutdown(self) -> None:
        if self._run_task is not None:
            self._run_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._run_task

    def _start(self, script: list[str], reply: ReplyChannel) -> None:
        try:
            main, finished = _Parser(script).parse()
        except _ScriptError as exc:
            reply.send(f"e!{exc.code:04X}: Line {exc.line}, Col {exc.column}\n".encode())
            return
        reply.send(b"e\n")
        self._abort = asyncio.Event()
        self._loop_abort = asyncio.Event()
        self.scripts_run += 1
        self._run_task = asyncio.create_task(self._run(main, finished, reply), name="EmStat4 script")

    # ---------------------------------------------------------------- execution

    async def _run(self, main: list[_Stmt], finished: list[_Stmt], reply: ReplyChannel) -> None:
        state = _RunState()
        out = _ScriptOutput(self, reply, state)
        try:
            with contextlib.suppress(_Aborted, _Break):
                await self._block(main, state, out)
            for stmt in finished:
                await self._execute(stmt, state, out)
        except _RuntimeFailure as exc:
            reply.send(f"!{exc.code:04X}: Line {exc.line}\n".encode())
        finally:
            state.file = None  # files close when the script ends
        reply.send(b"\n")

    async def _block(self, stmts: list[_Stmt], state: _RunState, reply: ReplyChannel) -> None:
        """Main-flow statements in order; ``Z`` ends them (:class:`_Aborted`)."""
        for stmt in stmts:
            if self._abort.is_set():
                raise _Aborted
            if stmt.op == "loop":
                while self._condition(stmt, state) and not self._abort.is_set():
                    try:
                        await self._block(stmt.body, state, reply)
                    except _Break:
                        break
                    await asyncio.sleep(0)
            elif stmt.op == "if":
                if self._condition(stmt, state):
                    await self._block(stmt.body, state, reply)
            elif stmt.op == "breakloop":
                raise _Break
            else:
                await self._execute(stmt, state, reply)

    def _condition(self, stmt: _Stmt, state: _RunState) -> bool:
        left = np.asarray([self._value(stmt.args[0], state, stmt.line)])
        return bool(_compare(left, stmt.args[1], self._value(stmt.args[2], state, stmt.line))[0])

    def _value(self, arg: str, state: _RunState, line: int) -> float:
        if arg in state.scalars:
            return state.scalars[arg]
        try:
            return ms.parse_literal(arg)
        except ms.MethodScriptError:
            raise _RuntimeFailure(0x0007, line) from None

    async def _execute(self, stmt: _Stmt, state: _RunState, reply: ReplyChannel) -> None:
        now = self.clock.now() if state.now_s is None else state.now_s
        op, args = stmt.op, stmt.args
        if op == "set_pgstat_mode":
            state.mode = int(ms.parse_literal(args[0]))
        elif op == "set_range" and args[0] in ("ba", "db"):
            state.current_range_a = abs(ms.parse_literal(args[1]))
            if state.current_range_a > self.spec.max_current_range_a * (1 + 1e-9):
                raise _RuntimeFailure(0x4205, stmt.line)
        elif op == "set_range" and args[0] == "ab":
            state.potential_range_v = abs(ms.parse_literal(args[1]))
        elif op == "set_autoranging" and args[0] == "ab":
            state.potential_range_v = None
        elif op == "set_i":
            state.set_current_a = self._value(args[0], state, stmt.line)
            self._check_current(state.set_current_a, state, stmt.line)
            if self.cell_on:
                self.cell.source_current(state.set_current_a, now)
        elif op == "set_e":
            state.set_potential_v = self._value(args[0], state, stmt.line)
            if self.cell_on:
                self.cell.source_voltage(state.set_potential_v, now)
        elif op == "store_var":
            state.scalars[args[0]] = ms.parse_literal(args[1])
            state.types[args[0]] = args[2]
        elif op in ("add_var", "sub_var"):
            delta = self._value(args[1], state, stmt.line)
            base = self._value(args[0], state, stmt.line)
            state.scalars[args[0]] = base + delta if op == "add_var" else base - delta
        elif op == "file_open":
            path, mode = args[0][1:-1], int(ms.parse_literal(args[1]))
            if "&i" in path:
                n = 0
                while path.replace("&i", f"{n:04d}") in self.files:
                    n += 1
                path = path.replace("&i", f"{n:04d}")
            if mode == 0 or path not in self.files:
                self.files[path] = []
            state.file = path
        elif op == "file_close":
            state.file = None
        elif op == "set_script_output":
            state.output = int(ms.parse_literal(args[0]))
        elif op == "cell_on":
            self._switch_cell(True, now)
            if state.mode == ms.GALVANOSTATIC_MODE:
                self.cell.source_current(state.set_current_a, now)
            else:
                self.cell.source_voltage(state.set_potential_v, now)
        elif op == "cell_off":
            self._switch_cell(False, now)
            self.cell.open_circuit(now)
        elif op == "timer_start":
            state.timer_origin_s = now
        elif op == "timer_get":
            state.scalars[args[0]] = now - state.timer_origin_s
            state.types[args[0]] = "eb"
        elif op == "meas_loop_cp":
            await self._meas_loop(stmt, state, reply, galvanostatic=True)
        elif op == "meas_loop_ocp":
            await self._meas_loop(stmt, state, reply, galvanostatic=False)
        # var and the remaining configuration commands change nothing the emulation models

    def _check_current(self, current_a: float, state: _RunState, line: int) -> None:
        if abs(current_a) > state.current_range_a * (1 + 1e-9):
            raise _RuntimeFailure(0x4205, line)

    async def _meas_loop(self, stmt: _Stmt, state: _RunState, reply: ReplyChannel, *, galvanostatic: bool) -> None:
        args = stmt.args
        if galvanostatic:
            if state.mode != ms.GALVANOSTATIC_MODE:
                raise _RuntimeFailure(0x4205, stmt.line)
            if not self.cell_on:
                raise _RuntimeFailure(0x4027, stmt.line)
            e_var, i_var = args[0], args[1]
            current_a = self._value(args[2], state, stmt.line)
            self._check_current(current_a, state, stmt.line)
            interval_s, run_s = ms.parse_literal(args[3]), ms.parse_literal(args[4])
            reply.send(b"M000A\n")
        else:
            if self.cell_on:
                raise _RuntimeFailure(0x0014, stmt.line)
            e_var, i_var = args[0], None
            current_a = 0.0
            interval_s, run_s = ms.parse_literal(args[1]), ms.parse_literal(args[2])
            reply.send(b"M000B\n")
        self._loop_abort.clear()
        self._in_meas_loop = True
        try:
            await self._meas_points(stmt, state, reply, galvanostatic, e_var, i_var, current_a, interval_s, run_s)
        finally:
            self._in_meas_loop = False
            self._loop_abort.clear()
        reply.send(b"*\n")

    async def _meas_points(
        self,
        stmt: _Stmt,
        state: _RunState,
        reply: ReplyChannel,
        galvanostatic: bool,
        e_var: str,
        i_var: str | None,
        current_a: float,
        interval_s: float,
        run_s: float,
    ) -> None:
        t0 = self.clock.now() if state.now_s is None else state.now_s
        if galvanostatic:
            self.cell.source_current(current_a, t0)
        state.types[e_var] = "ab"
        if i_var is not None:
            state.types[i_var] = "ba"
        n_points = math.floor(run_s / interval_s + 1e-9)
        compliance = False
        k = 1
        state.now_s = t0 + n_points * interval_s  # where the loop ends if it runs its time
        while k <= n_points:
            if not await self._wait_until(t0 + k * interval_s):
                state.now_s = max(t0 + (k - 1) * interval_s, self.clock.now())  # aborted now
                break
            now = self.clock.now()
            k_due = math.floor((now - t0) / interval_s + 1e-9)
            k_last = max(k, min(n_points, k_due, k + _MAX_BATCH - 1))
            times = t0 + interval_s * np.arange(k, k_last + 1, dtype=np.float64)
            timed_break = self._time_break(stmt, state, times, e_var, i_var)
            if timed_break is not None:  # the loop ends there: the cell is not driven past it
                times = times[: timed_break + 1]
                k_last = k + timed_break
            voltage, current = self.cell.sample(times)
            if not galvanostatic:
                current = np.zeros_like(voltage)
            status_v = np.zeros(times.shape, dtype=np.int64)
            limit = self.spec.compliance_v
            over = (np.abs(voltage) > limit) | compliance  # in compliance the set current is not flowing
            if galvanostatic and over.any():
                status_v[over] |= int(ms.Status.OVERLOAD)
                voltage = np.clip(voltage, -limit, limit)
                if not compliance:
                    compliance = True
                    self.cell.source_voltage(float(np.sign(voltage[over][0]) * limit), float(times[-1]))
            if state.potential_range_v is not None:
                out_of_range = np.abs(voltage) > state.potential_range_v
                status_v[out_of_range] |= int(ms.Status.OVERLOAD)
                voltage = np.clip(voltage, -state.potential_range_v, state.potential_range_v)
            broke_at = self._loop_body(stmt, state, reply, times, voltage, current, status_v, e_var, i_var)
            k = k_last + 1
            if broke_at is not None:
                # the cell was sampled to the block's end: what follows happens there (a block
                # holds one reading on a real-time clock)
                state.now_s = float(times[-1])
                break
            await asyncio.sleep(0)

    def _time_break(
        self, stmt: _Stmt, state: _RunState, times: FloatArray, e_var: str, i_var: str | None
    ) -> int | None:
        """The first of ``times`` at which the body breaks the loop on time alone (an ``if`` with
        ``breakloop`` on a ``timer_get`` variable against a number or a variable the body does not
        set), or None. Known before the cell is sampled, so a block of readings stops there and
        what follows the loop (a rest) drives the cell from that reading on."""
        timers: set[str] = set()
        measured = {e_var} | ({i_var} if i_var is not None else set())
        first: int | None = None
        for s in stmt.body:
            if s.op == "timer_get":
                timers.add(s.args[0])
            elif s.op == "if" and any(inner.op == "breakloop" for inner in s.body):
                name, op, right = s.args
                if name not in timers or right in timers or right in measured:
                    continue
                cond = _compare(times - state.timer_origin_s, op, self._value(right, state, s.line))
                if cond.any():
                    at = int(np.argmax(cond))
                    first = at if first is None else min(first, at)
        return first

    def _loop_body(
        self,
        stmt: _Stmt,
        state: _RunState,
        reply: ReplyChannel,
        times: FloatArray,
        voltage: FloatArray,
        current: FloatArray,
        status_v: npt.NDArray[np.int64],
        e_var: str,
        i_var: str | None,
    ) -> float | None:
        """Run the loop body for a block of iterations; the time of the iteration whose
        ``breakloop`` ended the loop, or None."""
        n = times.size
        env: dict[str, FloatArray] = {e_var: voltage}
        if i_var is not None:
            env[i_var] = current
        broken = np.zeros(n, dtype=bool)
        packet: list[str] = []
        emitted = np.ones(n, dtype=bool)
        has_packet = False
        for s in stmt.body:
            if s.op == "timer_get":
                env[s.args[0]] = times - state.timer_origin_s
                state.types[s.args[0]] = "eb"
            elif s.op == "pck_start":
                packet = []
            elif s.op == "pck_add":
                if s.args[0] not in env and s.args[0] not in state.scalars:
                    raise _RuntimeFailure(0x420B, s.line)
                packet.append(s.args[0])
            elif s.op == "pck_end":
                has_packet = True
                emitted = ~broken
            elif s.op == "if":
                values = env.get(s.args[0])
                if values is None:
                    values = np.full(n, state.scalars.get(s.args[0], math.nan))
                right = env.get(s.args[2])
                cond = _compare(values, s.args[1], self._value(s.args[2], state, s.line) if right is None else right)
                if any(inner.op == "breakloop" for inner in s.body):
                    broken |= cond
            elif s.op == "breakloop":
                broken[:] = True
        end = n
        if broken.any():
            first = int(np.argmax(broken))
            end = first + 1 if emitted[first] else first
        if has_packet and end > 0:
            columns = []
            for name in packet:
                values = env[name][:end] if name in env else np.full(end, state.scalars[name])
                vtype = state.types.get(name, "aa")
                col_status = col_range = None
                if vtype == "ab":
                    col_status = status_v[:end]
                elif vtype == "ba":
                    col_status = np.zeros(end, dtype=np.int64)
                    col_range = np.full(end, ms.current_range_code(state.current_range_a), dtype=np.int64)
                columns.append(ms.Column(vtype, values, col_status, col_range))
            reply.send(ms.encode_packets(columns))
        if end > 0:
            for name, values in env.items():
                state.scalars[name] = float(values[end - 1])
        return float(times[int(np.argmax(broken))]) if broken.any() else None

    async def _wait_until(self, t_s: float) -> bool:
        """Wait for the clock to reach ``t_s`` (to within :data:`_TIME_EPS_S`: a loop started at
        a reading of an earlier loop puts its grid on sums that a clock moved by steps misses by
        rounding); False if an abort (``Z`` or ``Y``) came first."""
        if self._abort.is_set() or self._loop_abort.is_set():
            return False
        t_s -= _TIME_EPS_S
        if self.clock.now() >= t_s:
            return True
        sleeper = asyncio.ensure_future(self.clock.sleep_until(t_s))
        aborter = asyncio.ensure_future(self._abort.wait())
        loop_aborter = asyncio.ensure_future(self._loop_abort.wait())
        try:
            await asyncio.wait({sleeper, aborter, loop_aborter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, aborter, loop_aborter):
                task.cancel()
        return not (self._abort.is_set() or self._loop_abort.is_set())


class _ScriptOutput:
    """Where a script's output goes (``set_script_output``): the serial line (bit 0), the open
    file (bit 1), or both."""

    def __init__(self, emulation: EmStat4Emulation, reply: ReplyChannel, state: _RunState) -> None:
        self._emulation, self._reply, self._state = emulation, reply, state

    def send(self, data: bytes) -> None:
        state = self._state
        if state.output & 1:
            self._reply.send(data)
        if state.output & 2 and state.file is not None:
            lines = data.decode("ascii", errors="replace").split("\n")
            self._emulation.files.setdefault(state.file, []).extend(ln for ln in lines if ln)


@dataclass
class _RunState:
    now_s: float | None = None
    """The script's own time, s: where its last measurement loop ended (statements take no time);
    None before the first loop (the clock's time then)."""
    output: int = 1
    file: str | None = None
    mode: int = 2
    current_range_a: float = 1e-3
    potential_range_v: float | None = None
    set_current_a: float = 0.0
    set_potential_v: float = 0.0
    timer_origin_s: float = 0.0
    scalars: dict[str, float] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)


def _compare(values: FloatArray, op: str, limit: float | FloatArray) -> npt.NDArray[np.bool_]:
    result: npt.NDArray[np.bool_]
    if op == ">":
        result = values > limit
    elif op == "<":
        result = values < limit
    elif op == ">=":
        result = values >= limit
    elif op == "<=":
        result = values <= limit
    elif op == "==":
        result = values == limit
    else:
        result = values != limit
    return result


async def serve(world: SimWorld, host: str, port: int) -> PtySerialServer:
    """``licycler sim-serve emstat4``: an EmStat4 HR on the world's cell, on a new pseudo-terminal
    (``host`` and ``port`` do not apply to a serial device)."""
    server = PtySerialServer(EmStat4Emulation(world.cell, world.clock))
    await server.start()
    return server
