"""The Keithley 2400-graphical-series trigger model (2450, 2460, 2461), as the reference manual describes it.

A trigger model is a numbered list of blocks that the instrument runs by itself after ``:INIT``
until it falls off the end or is stopped with ``:ABORt``: measure into a buffer, wait a constant
delay, branch always or a set number of times (a counter per block, reset when the branching
stops and when the model starts), switch the source output on or off, recall a point of a source
configuration list (``CONFig:RECall``: the source settings stored there, level included), clear a
buffer, do nothing.
``:TRIGger:STATe?`` answers ``<state>;<state>;<last block>`` with IDLE, RUNNING, EMPTY, BUILDING,
ABORTED or FAILED.

:class:`TriggerModel` is the firmware's sequencer without the physics: :meth:`TriggerModel.run_until`
executes every block due by a time and returns the :class:`Action`\\ s the instrument must apply
(readings to take at given times, output changes, buffer clears), in order; the emulation applies
them to its source-measure channel. Times are seconds on the instrument's clock.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

from licycler.sim_instruments.scpi import ScpiError

__all__ = ["Action", "Block", "TriggerModel"]

MAX_STEPS = 1_000_000
"""Blocks executed in one call at the most: a loop without any delay or measurement never ends."""
DRY_RUN_STEPS = 100_000
"""Blocks a look-ahead runs through at the most (a model that runs for ever has no end to find)."""


@dataclass(frozen=True)
class Block:
    """One trigger-model block: ``kind`` one of ``measure``, ``delay``, ``branch_counter``,
    ``branch_always``, ``source_state``, ``config_recall``, ``buffer_clear``, ``nop``
    (``buffer`` names the configuration list of a ``config_recall``, ``count`` its point)."""

    kind: str
    buffer: str = "defbuffer1"
    count: int = 1
    delay_s: float = 0.0
    target: int = 0
    state: bool = False

    def describe(self, number: int) -> str:
        """A line of ``:TRIGger:BLOCk:LIST?``."""
        detail = {
            "measure": f'MEASURE "{self.buffer}", COUNT {self.count}',
            "delay": f"DELAY CONSTANT {self.delay_s:g}",
            "branch_counter": f"BRANCH COUNTER {self.count}, BLOCK {self.target}",
            "branch_always": f"BRANCH ALWAYS BLOCK {self.target}",
            "source_state": f"SOURCE STATE {'ON' if self.state else 'OFF'}",
            "config_recall": f'CONFIG RECALL "{self.buffer}", INDEX {self.count}',
            "buffer_clear": f'BUFFER CLEAR "{self.buffer}"',
            "nop": "NO OPERATION",
        }[self.kind]
        return f"{number}) {detail}"


@dataclass(frozen=True)
class Action:
    """What the instrument does at ``t_s`` (s): a reading into ``buffer`` (``measure``), the output
    to ``state`` (``output``), point ``index`` of configuration list ``buffer`` recalled
    (``recall``), or ``buffer`` emptied (``clear``)."""

    t_s: float
    kind: str
    buffer: str = ""
    state: bool = False
    index: int = 0


@dataclass
class _Cursor:
    block: int = 1
    t_s: float = 0.0
    counters: dict[int, int] = field(default_factory=dict)
    last: int = 0
    steps: int = 0


class TriggerModel:
    """The blocks, and the run in progress (if any) on the instrument's clock."""

    def __init__(self) -> None:
        self.blocks: dict[int, Block] = {}
        self.state = "EMPTY"
        self.measure_time_s = 0.0
        self._cursor = _Cursor()

    @property
    def running(self) -> bool:
        return self.state == "RUNNING"

    # ---------------------------------------------------------------- building

    def define(self, number: int, block: Block) -> None:
        """Set block ``number`` (1..63); refused while the model runs (settings conflict)."""
        if self.running:
            raise ScpiError(-221, "Settings conflict; trigger model is running")
        if not 1 <= number <= 63:
            raise ScpiError(-222)
        self.blocks[number] = block
        self.state = "BUILDING"

    def reset(self) -> None:
        """``*RST``: stopped, no blocks."""
        self.state = "IDLE"
        self.clear()

    def clear(self) -> None:
        """``:TRIGger:LOAD "Empty"``: no blocks."""
        if self.running:
            raise ScpiError(-221, "Settings conflict; trigger model is running")
        self.blocks.clear()
        self.state = "EMPTY"
        self._cursor = _Cursor()

    def listing(self) -> str:
        return ";".join(b.describe(n) for n, b in sorted(self.blocks.items()))

    # ---------------------------------------------------------------- running

    def start(self, t_s: float, measure_time_s: float) -> None:
        """``:INITiate`` at ``t_s``: run from block 1, counters reset; a measurement takes
        ``measure_time_s`` (s)."""
        if self.running:
            raise ScpiError(-213)
        if not self.blocks:
            raise ScpiError(-221, "Settings conflict; trigger model is empty")
        self.measure_time_s = measure_time_s
        self._cursor = _Cursor(block=min(self.blocks), t_s=t_s)
        self.state = "RUNNING"

    def abort(self) -> None:
        """``:ABORt``: stop where it is (the output is left as it is)."""
        if self.running:
            self.state = "ABORTED"

    def query_state(self) -> str:
        """``:TRIGger:STATe?``: the state and the block in execution (running) or last executed."""
        block = self._cursor.block if self.running else self._cursor.last
        return f"{self.state};{self.state};{block}"

    def run_until(self, t_s: float) -> list[Action]:
        """Execute every block due by ``t_s``: a measurement or a delay when it completes, the
        other blocks at once. Returns the actions in time order."""
        if not self.running:
            return []
        actions: list[Action] = []
        before = self._cursor.steps
        self._execute(self._cursor, t_s, actions)
        if self._cursor.block not in self.blocks:
            self.state = "IDLE"
        elif self._cursor.steps - before >= MAX_STEPS:  # a loop that takes no time
            self.state = "FAILED"
        return actions

    def lookahead(self) -> tuple[float, float]:
        """(time of the next source change (output or recalled settings), time the model ends),
        inf when there is none, from
        a dry run of a copy (of at most ``DRY_RUN_STEPS`` blocks)."""
        if not self.running:
            return math.inf, math.inf
        cursor = copy.deepcopy(self._cursor)
        cursor.steps = 0
        change = math.inf
        actions: list[Action] = []
        while cursor.block in self.blocks and cursor.steps < DRY_RUN_STEPS:
            self._execute(cursor, math.inf, actions, stop_at_output=True, max_steps=DRY_RUN_STEPS)
            if math.isinf(change):
                change = next((a.t_s for a in actions if a.kind in ("output", "recall")), math.inf)
            actions.clear()
        end = cursor.t_s if cursor.block not in self.blocks else math.inf
        return change, end

    def _duration(self, block: Block) -> float:
        if block.kind == "measure":
            return block.count * self.measure_time_s
        if block.kind == "delay":
            return block.delay_s
        return 0.0

    def _execute(
        self, c: _Cursor, t_s: float, actions: list[Action], *, stop_at_output: bool = False,
        max_steps: int = MAX_STEPS,
    ) -> None:
        limit = c.steps + max_steps
        while c.block in self.blocks and c.steps < limit:
            block = self.blocks[c.block]
            end = c.t_s + self._duration(block)
            if end > t_s:
                return
            c.steps += 1
            c.last = c.block
            nxt = c.block + 1
            if block.kind == "measure":
                actions.extend(
                    Action(c.t_s + self.measure_time_s * (k + 1), "measure", block.buffer) for k in range(block.count)
                )
            elif block.kind == "branch_counter":
                n = c.counters.get(c.block, 0) + 1
                if n < block.count:
                    c.counters[c.block] = n
                    nxt = block.target
                else:
                    c.counters[c.block] = 0
            elif block.kind == "branch_always":
                nxt = block.target
            elif block.kind == "source_state":
                actions.append(Action(c.t_s, "output", state=block.state))
            elif block.kind == "config_recall":
                actions.append(Action(c.t_s, "recall", block.buffer, index=block.count))
            elif block.kind == "buffer_clear":
                actions.append(Action(c.t_s, "clear", block.buffer))
            c.t_s = end
            c.block = nxt
            if stop_at_output and block.kind in ("source_state", "config_recall"):
                return
