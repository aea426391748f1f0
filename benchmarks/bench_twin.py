"""How fast the digital twin advances constant-current segments, against numpy filling the same samples.

The twin (``default`` scenario: Li||Li, 25 um separator) is driven through CellTerminals as the
engine's in-process SMU drives it: ``source_current`` once, then ``sample`` in blocks of times (the
cell's exact voltage stops armed, as for a step with a cutoff). Every sample is the full model:
exact salt transport, Butler-Volmer at both electrodes with i0(c_s), concentration overpotential,
ohmic drop with the SEI growing, inventory, event prediction.

The baseline fills the same number of samples with numpy alone (a time grid, ``np.full`` for the
current and one multiply-add for the voltage): the floor of any per-sample work. Reported: the
twin's samples per second, its ratio to that baseline, and its ratio to the 1,000,000 samples/s the
issue requires (target >= 1). Also reported without a target: a thick-gap (capillary) cell during
its transient, where many slow modes are alive, and a voltage-controlled hold (solved sample by
sample).
"""

from __future__ import annotations

import numpy as np

from benchmarks.harness import Result, best_of, ratio_result
from licycler.sim_instruments.scenario import load_scenario
from licycler.sim_instruments.twin import TwinCell

REQUIRED_SAMPLES_PER_S = 1_000_000.0


def _baseline(n: int, block: int, dt: float) -> float:
    def fill() -> None:
        for start in range(0, n, block):
            m = min(block, n - start)
            times = (start + 1 + np.arange(m)) * dt
            current = np.full(m, -2e-3)
            voltage = -0.03 + 1e-9 * times
            assert voltage.size == current.size

    return n / best_of(fill, 3)


def _twin_rate(scenario: str, n: int, block: int, dt: float, j: float = 10.0) -> float:
    config = load_scenario(scenario)

    def run() -> None:
        cell = TwinCell(config)
        cell.source_current(-j * cell.area_m2, 0.0)
        for start in range(0, n, block):
            m = min(block, n - start)
            times = (start + 1 + np.arange(m)) * dt
            v, _ = cell.sample(times, stop_above_v=5.0, stop_below_v=-5.0)
            assert v.size == m

    return n / best_of(run, 3)


def _cv_rate(n: int) -> float:
    config = load_scenario("default")

    def run() -> None:
        cell = TwinCell(config)
        cell.source_voltage(-0.03, 0.0)
        cell.sample(np.arange(1.0, n + 1.0))

    return n / best_of(run, 1)


def run(quick: bool) -> list[Result]:
    n = 200_000 if quick else 2_000_000
    block = 65_536
    dt = 0.01  # 2,000,000 samples: 5.6 h at 1 mA/cm^2, a quarter of the lithium
    base = _baseline(n, block, dt)
    twin = _twin_rate("default", n, block, dt)
    thick = _twin_rate("thick-gap", n // 4, block, 0.0005)  # the first seconds of a 61,000 s transient
    cv = _cv_rate(200 if quick else 1000)
    blocks = f"{n:,} samples at {dt} s in blocks of {block:,}"
    return [
        ratio_result("twin constant current vs numpy fill", twin, "samples/s", base, "numpy fill", notes=blocks),
        ratio_result(
            "twin constant current vs required rate",
            twin,
            "samples/s",
            REQUIRED_SAMPLES_PER_S,
            "required",
            target=">= 1.0",
            notes=blocks,
        ),
        ratio_result("twin thick-gap transient vs numpy fill", thick, "samples/s", base, "numpy fill"),
        ratio_result("twin voltage-controlled hold vs numpy fill", cv, "samples/s", base, "numpy fill"),
    ]
