"""Physics relations on blocks: the library call against the same formula written inline in numpy."""

from __future__ import annotations

import numpy as np

from benchmarks.harness import Result, best_of, ratio_result
from licycler import physics as ph

F = ph.FARADAY_C_PER_MOL


def run(quick: bool) -> list[Result]:
    n = 100_000 if quick else 2_000_000
    rng = np.random.default_rng(0)
    j = rng.uniform(1.0, 200.0, n)
    d, c0, tp = 3.22e-10, 1000.0, 0.38

    def library() -> None:
        ph.sand_time(d, c0, tp, j)

    def raw() -> None:
        np.pi * d * F**2 * c0**2 / (4.0 * (1.0 - tp) ** 2 * j**2)

    t_lib, t_raw = best_of(library, 5), best_of(raw, 5)
    results = [
        ratio_result(
            "sand_time on a block (time per sample)",
            t_lib / n * 1e9,
            "ns",
            t_raw / n * 1e9,
            "inline numpy",
            notes=f"{n} samples",
        )
    ]
    i0 = 70.0

    def bv_inverse_sym() -> None:
        ph.kinetic_overpotential(j, i0)

    def bv_raw() -> None:
        np.arcsinh(j / (2 * i0)) / (0.5 * F / (ph.GAS_CONSTANT_J_PER_MOL_K * ph.ROOM_TEMPERATURE_K))

    results.append(
        ratio_result(
            "kinetic_overpotential, symmetric (per sample)",
            best_of(bv_inverse_sym, 5) / n * 1e9,
            "ns",
            best_of(bv_raw, 5) / n * 1e9,
            "inline asinh",
        )
    )

    def bv_inverse_asym() -> None:
        ph.kinetic_overpotential(j, i0, 0.3, 0.7)

    results.append(
        ratio_result(
            "kinetic_overpotential, asymmetric (per sample)",
            best_of(bv_inverse_asym, 3) / n * 1e9,
            "ns",
            best_of(bv_raw, 5) / n * 1e9,
            "inline asinh",
            notes="safeguarded Newton",
        )
    )
    return results
