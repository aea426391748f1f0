"""The standard Sand's-time protocol on the digital twin recovers D / (1 - t+)^2."""

from __future__ import annotations

from pathlib import Path

import pytest

from licycler.analysis import sand_time_fit
from licycler.engine import RunController, RunState
from licycler.engine.sim import twin_config, twin_setups
from licycler.physics import sand_coefficient, sand_time
from licycler.protocols import load_protocol
from licycler.store import Store


async def test_sand_time_protocol_recovers_the_sand_coefficient(tmp_path: Path) -> None:
    schedule = load_protocol("sand-time")
    setups, _ = twin_setups(schedule, "thick-gap")
    store = Store(f"sqlite:///{tmp_path / 'sand.db'}")
    controller = RunController(schedule, setups, store)
    assert (await controller.run())["ch1"] is RunState.COMPLETED
    config, _ = twin_config(schedule, "thick-gap")
    el = config.electrolyte
    fit = sand_time_fit(store.steps(controller.run_id, "ch1"), schedule.cell.area_m2, el.concentration_mol_m3)
    assert len(fit.sand_time_s) == 4  # every current density reached divergence
    # the twin's electrolyte (1 M LiPF6 EC:DMC: D = 3.22e-10 m^2/s, t+ = 0.38, Valoen & Reimers)
    expected = sand_coefficient(el.diffusivity_m2_s, el.transference_number)
    assert expected == pytest.approx(3.22e-10 / 0.62**2, rel=1e-3)
    assert fit.sand_coefficient_m2_s == pytest.approx(expected, rel=0.05)
    # and every point lies on the analytic curve t_s = pi D F^2 c0^2 / (4 (1 - t+)^2 j^2)
    for j, t in zip(fit.current_density_a_m2, fit.sand_time_s, strict=True):
        analytic = sand_time(el.diffusivity_m2_s, el.concentration_mol_m3, el.transference_number, j)
        assert t == pytest.approx(analytic, rel=0.03)
