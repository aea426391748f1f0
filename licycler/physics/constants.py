"""Physical constants and lithium properties, SI units (CODATA 2018 exact values where defined)."""

from __future__ import annotations

FARADAY_C_PER_MOL: float = 96485.33212
"""Faraday's constant F, C/mol."""

GAS_CONSTANT_J_PER_MOL_K: float = 8.314462618
"""Molar gas constant R, J/(mol K)."""

LI_MOLAR_VOLUME_M3_PER_MOL: float = 1.30e-5
"""Molar volume of dense lithium V_m, m^3/mol (parameters.md: 1 mAh/cm^2 = 4.85 um)."""

ROOM_TEMPERATURE_K: float = 298.15
"""Reference temperature, K."""
