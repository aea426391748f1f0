"""Quantities with units, parsed once at the user-facing edge and converted to SI.

Everything inside licycler is SI (m, kg, s, A, mol, K and their products). A user writes
``"5 mA/cm^2"``, ``"0.5 mAh/cm2"``, ``"6 h"``, ``"1.0 V"`` or ``"3.2e-10"`` (a bare number means SI);
:func:`parse_quantity` checks the dimension and returns the SI value as a float.

The grammar is small and strict: ``number [unit]`` where a unit is a product of symbols with an
optional SI prefix and an optional exponent (``cm^2``, ``cm2``, ``s^-1``), joined by ``*``, ``.``,
``·``, a space, or ``/`` (which divides by the next factor only), with parentheses for groups
(``mol/(m^2 s)``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = [
    "AREA",
    "AREAL_CHARGE",
    "AREA_RESISTANCE",
    "CHARGE",
    "CONCENTRATION",
    "CONDUCTIVITY",
    "CONTACT_STIFFNESS",
    "CURRENT",
    "CURRENT_DENSITY",
    "DIFFUSIVITY",
    "DIMENSIONLESS",
    "ENERGY",
    "EXCHANGE_CURRENT_DENSITY",
    "LENGTH",
    "MOLAR_VOLUME",
    "PRESSURE",
    "RESISTANCE",
    "TEMPERATURE",
    "TIME",
    "VOLTAGE",
    "Dimension",
    "UnitError",
    "parse_quantity",
    "parse_unit",
]

_BASES = ("m", "kg", "s", "A", "mol", "K")


@dataclass(frozen=True)
class Dimension:
    """Exponents of the SI base units (m, kg, s, A, mol, K), with a human name and an example."""

    exponents: tuple[float, float, float, float, float, float]
    name: str = ""
    example: str = ""

    def __mul__(self, other: Dimension) -> Dimension:
        return Dimension(_add(self.exponents, other.exponents))

    def __truediv__(self, other: Dimension) -> Dimension:
        return Dimension(_add(self.exponents, tuple(-e for e in other.exponents)))

    def __pow__(self, power: float) -> Dimension:
        return Dimension(_six(e * power for e in self.exponents))

    def same_as(self, other: Dimension) -> bool:
        """True when both have the same exponents (names are ignored)."""
        return all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(self.exponents, other.exponents, strict=True))

    def named(self, name: str, example: str) -> Dimension:
        return Dimension(self.exponents, name, example)

    def describe(self) -> str:
        """The SI unit of this dimension written out, e.g. ``A m^-2``."""
        parts = []
        for base, exp in zip(_BASES, self.exponents, strict=True):
            if abs(exp) < 1e-12:
                continue
            parts.append(base if math.isclose(exp, 1.0) else f"{base}^{exp:g}")
        return " ".join(parts) or "1"


def _six(values: object) -> tuple[float, float, float, float, float, float]:
    t = tuple(float(v) for v in values)  # type: ignore[attr-defined]
    if len(t) != 6:
        raise ValueError("a dimension has six exponents")
    return (t[0], t[1], t[2], t[3], t[4], t[5])


def _add(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float, float, float, float, float]:
    return _six(x + y for x, y in zip(a, b, strict=True))


def _dim(m: float = 0, kg: float = 0, s: float = 0, A: float = 0, mol: float = 0, K: float = 0) -> Dimension:
    return Dimension((m, kg, s, A, mol, K))


DIMENSIONLESS = _dim().named("a dimensionless number", "0.38")
LENGTH = _dim(m=1).named("a length", "25 um")
AREA = _dim(m=2).named("an area", "1.13 cm^2")
TIME = _dim(s=1).named("a time", "6 h")
CURRENT = _dim(A=1).named("a current", "1.2 mA")
CURRENT_DENSITY = _dim(A=1, m=-2).named("a current density", "5 mA/cm^2")
EXCHANGE_CURRENT_DENSITY = CURRENT_DENSITY.named("an exchange current density", "7 mA/cm^2")
CHARGE = _dim(A=1, s=1).named("a charge", "1 mAh")
AREAL_CHARGE = _dim(A=1, s=1, m=-2).named("an areal charge", "5 mAh/cm^2")
VOLTAGE = _dim(kg=1, m=2, s=-3, A=-1).named("a voltage", "1.0 V")
ENERGY = _dim(kg=1, m=2, s=-2).named("an energy", "3.6 mWh")
RESISTANCE = _dim(kg=1, m=2, s=-3, A=-2).named("a resistance", "10 ohm")
AREA_RESISTANCE = (RESISTANCE * AREA).named("an area-specific resistance", "10 ohm cm^2")
CONDUCTIVITY = (RESISTANCE**-1 / LENGTH).named("a conductivity", "1 S/m")
PRESSURE = _dim(kg=1, m=-1, s=-2).named("a pressure", "1 MPa")
CONTACT_STIFFNESS = (PRESSURE / LENGTH).named("a contact stiffness", "1e13 Pa/m")
CONCENTRATION = _dim(mol=1, m=-3).named("a concentration", "1 M")
DIFFUSIVITY = _dim(m=2, s=-1).named("a diffusivity", "3.22e-10 m^2/s")
MOLAR_VOLUME = _dim(m=3, mol=-1).named("a molar volume", "13 cm^3/mol")
TEMPERATURE = _dim(K=1).named("a temperature", "298.15 K")

_J = _dim(kg=1, m=2, s=-2)
# symbol -> (factor to SI, dimension). Prefixable symbols may take an SI prefix.
_UNITS: dict[str, tuple[float, Dimension]] = {
    "m": (1.0, LENGTH),
    "g": (1e-3, _dim(kg=1)),
    "s": (1.0, TIME),
    "min": (60.0, TIME),
    "h": (3600.0, TIME),
    "d": (86400.0, TIME),
    "A": (1.0, CURRENT),
    "C": (1.0, CHARGE),
    "Ah": (3600.0, CHARGE),
    "V": (1.0, VOLTAGE),
    "W": (1.0, _J / TIME),
    "Wh": (3600.0, _J),
    "J": (1.0, _J),
    "ohm": (1.0, RESISTANCE),
    "Ohm": (1.0, RESISTANCE),
    "Ω": (1.0, RESISTANCE),
    "S": (1.0, RESISTANCE**-1),
    "Pa": (1.0, PRESSURE),
    "bar": (1e5, PRESSURE),
    "atm": (101325.0, PRESSURE),
    "psi": (6894.757293168, PRESSURE),
    "N": (1.0, _dim(kg=1, m=1, s=-2)),
    "mol": (1.0, _dim(mol=1)),
    "M": (1000.0, CONCENTRATION),
    "L": (1e-3, _dim(m=3)),
    "K": (1.0, TEMPERATURE),
    "Hz": (1.0, TIME**-1),
    "%": (0.01, DIMENSIONLESS),
}
_NOT_PREFIXABLE = {"min", "h", "d", "%", "atm", "psi"}
_PREFIXES = {
    "T": 1e12, "G": 1e9, "M": 1e6, "k": 1e3, "c": 1e-2, "m": 1e-3,
    "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15,
}  # fmt: skip

_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")
_TOKEN = re.compile(
    r"\s*(?:(?P<sym>[A-Za-zΩµμ%]+)(?P<digits>-?\d+(?:\.\d+)?)?|(?P<op>[*/·^().])|(?P<num>[-+]?\d+(?:\.\d+)?))"
)


class UnitError(ValueError):
    """A quantity whose number, unit or dimension is not what was expected."""


def _symbol(sym: str) -> tuple[float, Dimension]:
    if sym in _UNITS:
        return _UNITS[sym]
    for prefix, factor in _PREFIXES.items():
        rest = sym[len(prefix) :]
        if sym.startswith(prefix) and rest in _UNITS and rest not in _NOT_PREFIXABLE:
            scale, dim = _UNITS[rest]
            return factor * scale, dim
    raise UnitError(f"unknown unit '{sym}'")


class _UnitParser:
    """Recursive descent over the unit part: expr := factor (('*'|'/'|' ') factor)*."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if not match or match.end() == pos:
                raise UnitError(f"cannot read the unit at '{text[pos:]}'")
            if match.group("sym"):
                self.tokens.append(("sym", match.group("sym")))
                if match.group("digits"):
                    self.tokens.append(("op", "^"))
                    self.tokens.append(("num", match.group("digits")))
            elif match.group("op"):
                self.tokens.append(("op", match.group("op")))
            else:
                self.tokens.append(("num", match.group("num")))
            pos = match.end()
        self.i = 0

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise UnitError("the unit ends too early")
        self.i += 1
        return token

    def parse(self) -> tuple[float, Dimension]:
        scale, dim = self._expr()
        if self._peek() is not None:
            raise UnitError(f"unexpected '{self._peek()[1]}' in the unit")  # type: ignore[index]
        return scale, dim

    def _expr(self) -> tuple[float, Dimension]:
        scale, dim = self._factor()
        while (token := self._peek()) is not None and token != ("op", ")"):
            if token in (("op", "*"), ("op", "·"), ("op", ".")):
                self.i += 1
                s2, d2 = self._factor()
            elif token == ("op", "/"):
                self.i += 1
                s2, d2 = self._factor()
                s2, d2 = 1.0 / s2, d2**-1
            else:  # juxtaposition: a space means multiply
                s2, d2 = self._factor()
            scale, dim = scale * s2, dim * d2
        return scale, dim

    def _factor(self) -> tuple[float, Dimension]:
        kind, value = self._take()
        if (kind, value) == ("op", "("):
            scale, dim = self._expr()
            if self._take() != ("op", ")"):
                raise UnitError("a '(' is not closed")
        elif kind == "sym":
            scale, dim = _symbol(value)
        elif kind == "num" and value == "1":
            scale, dim = 1.0, DIMENSIONLESS
        else:
            raise UnitError(f"expected a unit symbol, got '{value}'")
        if self._peek() == ("op", "^"):
            self.i += 1
            kind, exponent = self._take()
            if kind != "num":
                raise UnitError(f"expected an exponent after '^', got '{exponent}'")
            power = float(exponent)
            scale, dim = scale**power, dim**power
        return scale, dim


def parse_unit(text: str) -> tuple[float, Dimension]:
    """The SI factor and dimension of a unit expression such as ``mAh/cm^2``."""
    if not text.strip():
        return 1.0, DIMENSIONLESS
    return _UnitParser(text).parse()


def parse_quantity(value: str | float | int, expected: Dimension, *, what: str = "value") -> float:
    """Convert ``value`` to SI, checking that it has the ``expected`` dimension.

    A bare number (or a number given as ``int``/``float``) is taken as already in SI.
    Raises :class:`UnitError` naming ``what``, the dimension expected and an example.
    """
    hint = f"expected {expected.name or expected.describe()}"
    if expected.example:
        hint += f" such as '{expected.example}'"
    if isinstance(value, bool):
        raise UnitError(f"{what}: {hint}, got {value!r}")
    if isinstance(value, int | float):
        result = float(value)
    else:
        text = str(value)
        if expected.same_as(TEMPERATURE) and text.strip().endswith(("degC", "°C")):
            number = text.strip().removesuffix("degC").removesuffix("°C")
            try:
                return float(number) + 273.15
            except ValueError:
                raise UnitError(f"{what}: {hint}, got '{text}'") from None
        match = _NUMBER.match(text)
        if not match:
            raise UnitError(f"{what}: {hint}, got '{text}' (no number)")
        try:
            scale, dim = parse_unit(match.group(2))
        except UnitError as exc:
            raise UnitError(f"{what}: {hint}, got '{text}' ({exc})") from None
        if match.group(2).strip() and not dim.same_as(expected):
            raise UnitError(
                f"{what}: {hint}, got '{text}' which is {dim.describe()}, not {expected.describe()}"
            )
        result = float(match.group(1)) * scale
    if not math.isfinite(result):
        raise UnitError(f"{what}: {hint}, got a value that is not finite")
    return result
