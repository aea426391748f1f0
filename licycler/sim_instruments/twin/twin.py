"""The twin as a whole: one cell and the pressure rig acting on it, built from a config or scenario."""

from __future__ import annotations

from pathlib import Path

from licycler.sim_instruments.twin.cell import TwinCell, TwinEvent
from licycler.sim_instruments.twin.config import TwinConfig
from licycler.sim_instruments.twin.rig import PressureRig

__all__ = ["Twin"]


class Twin:
    """A simulated cell (``cell``, a CellTerminals) in a pressure rig (``rig``, a PressureRigModel).

    Both share one event log (``events``) and one seed. Drive ``cell`` with an instrument
    emulation or directly; times are seconds on whatever clock drives them (a VirtualClock for
    in-process runs).
    """

    def __init__(self, config: TwinConfig | None = None, *, start_s: float = 0.0) -> None:
        self.config = config or TwinConfig()
        self.cell = TwinCell(self.config, start_s=start_s)
        self.rig: PressureRig = self.cell.rig

    @classmethod
    def from_scenario(cls, name_or_path: str | Path, *, start_s: float = 0.0) -> Twin:
        """A twin from a bundled scenario name (``default``, ...) or a YAML file path."""
        from licycler.sim_instruments.scenario import load_scenario

        return cls(load_scenario(name_or_path), start_s=start_s)

    @property
    def events(self) -> list[TwinEvent]:
        """Everything that happened so far (TwinEvent), in time order."""
        return sorted(self.cell.events, key=lambda e: e.t_s)
