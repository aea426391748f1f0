"""Source configuration lists of the Keithley 2400-graphical series (2450 reference manual,
"Configuration lists"): named lists of points, each the source settings active when it was stored.

``:SOURce:CONFiguration:LIST:CREate "<name>"`` makes an empty list, ``:STORe "<name>"[, <index>]``
appends the active settings (or overwrites point ``index``), ``:RECall "<name>"[, <index>]``
makes a point's settings active (so does the trigger model's ``CONFig:RECall`` block), ``:SIZE?``,
``:CATalog?`` and ``:DELete "<name>"[, <index>]``. A source point holds the source function, its
level, limits and range, read-back and the output-off state; not the output state.
"""

from __future__ import annotations

from licycler.sim_instruments.scpi import ScpiError, SmuChannel

__all__ = ["SOURCE_SETTINGS", "SourceConfigLists"]

SOURCE_SETTINGS = (
    "source_function", "current_level_a", "voltage_level_v", "voltage_limit_v", "current_limit_a",
    "current_range_a", "voltage_range_v", "readback",
)  # fmt: skip
"""The :class:`SmuChannel` attributes a point keeps (with the output-off states of both functions)."""

MAX_POINTS = 300_000
"""A list's points at the most (the manual's limit depends on memory; this is generous)."""

Point = dict[str, object]


class SourceConfigLists:
    """The named source configuration lists (names are case-sensitive, as on the instrument)."""

    def __init__(self) -> None:
        self.lists: dict[str, list[Point]] = {}

    def clear(self) -> None:
        """``*RST`` keeps lists on the instrument; a power cycle loses them (the emulation's reset)."""
        self.lists.clear()

    def create(self, name: str) -> None:
        if not name or len(name) > 32:
            raise ScpiError(-224, "Illegal parameter value; list name must be 1 to 32 characters")
        if name in self.lists:
            raise ScpiError(-224, f"Illegal parameter value; configuration list {name} already exists")
        self.lists[name] = []

    def _points(self, name: str) -> list[Point]:
        points = self.lists.get(name)
        if points is None:
            raise ScpiError(-224, f"Illegal parameter value; configuration list {name} does not exist")
        return points

    def _check_index(self, points: list[Point], index: int) -> None:
        if not 1 <= index <= len(points):
            raise ScpiError(-222, f"Data out of range; index {index} of a list of {len(points)} points")

    def store(self, name: str, index: int | None, smu: SmuChannel, smode: dict[str, str]) -> None:
        """The active settings of ``smu`` (and the output-off states ``smode``) into the list."""
        points = self._points(name)
        point: Point = {key: getattr(smu, key) for key in SOURCE_SETTINGS}
        point["smode"] = dict(smode)
        if index is None or index == len(points) + 1:
            if len(points) >= MAX_POINTS:
                raise ScpiError(-225, "Out of memory; configuration list is full")
            points.append(point)
            return
        self._check_index(points, index)
        points[index - 1] = point

    def point(self, name: str, index: int) -> Point:
        """Point ``index`` (from 1) of list ``name``: settings to make active."""
        points = self._points(name)
        self._check_index(points, index)
        return points[index - 1]

    def size(self, name: str) -> int:
        return len(self._points(name))

    def delete(self, name: str, index: int | None) -> None:
        points = self._points(name)
        if index is None:
            del self.lists[name]
            return
        self._check_index(points, index)
        del points[index - 1]

    def catalog(self) -> str:
        """``:CATalog?``: the names, quoted, comma separated (an empty string when there is none)."""
        return ",".join(f'"{name}"' for name in self.lists) if self.lists else '""'
