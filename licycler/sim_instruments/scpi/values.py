"""SCPI program data: splitting parameters, and the parameter types an emulation declares.

Each parameter type turns one program-data token into a Python value or raises the standard
error: numbers (IEEE 488.2 decimal and ``#H/#Q/#B`` non-decimal, with suffix multipliers and units,
``MIN``/``MAX``/``DEF``), booleans (``ON|OFF|1|0``), mnemonics in short or long form, quoted strings
(``'...'`` or ``"..."``, doubled quotes inside), quoted mnemonics (``"VOLT:DC"``) and channel lists
(``(@1,2)``, ``(@1:2)``).
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from licycler.sim_instruments.scpi.errors import ScpiError

__all__ = [
    "Boolean",
    "ChannelList",
    "Choice",
    "Mnemonic",
    "Numeric",
    "Param",
    "QuotedChoice",
    "String",
    "is_quoted",
    "split_params",
    "unquote",
]

_MULTIPLIERS = {
    "EX": 1e18,
    "PE": 1e15,
    "T": 1e12,
    "G": 1e9,
    "MA": 1e6,
    "K": 1e3,
    "M": 1e-3,
    "U": 1e-6,
    "N": 1e-9,
    "P": 1e-12,
    "F": 1e-15,
    "A": 1e-18,
}
_DECIMAL = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:\s*[eE]\s*[+-]?\d+)?)\s*(.*)", re.S)
_NONDECIMAL = {"H": 16, "Q": 8, "B": 2}


def split_params(text: str) -> list[str]:
    """Split the parameter part of a program message unit at top-level commas.

    Commas inside quotes or parentheses do not split. Tokens are stripped of surrounding
    whitespace. Raises -151 for an unterminated string, -102 for unbalanced parentheses or
    an empty token (``1,,2``).
    """
    text = text.strip()
    if not text:
        return []
    tokens: list[str] = []
    start = 0
    depth = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            end = i + 1
            while True:
                end = text.find(c, end)
                if end < 0:
                    raise ScpiError(-151)
                if end + 1 < n and text[end + 1] == c:  # doubled quote: literal
                    end += 2
                    continue
                break
            i = end + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                raise ScpiError(-102)
        elif c == "," and depth == 0:
            tokens.append(text[start:i].strip())
            start = i + 1
        i += 1
    if depth != 0:
        raise ScpiError(-102)
    tokens.append(text[start:].strip())
    if any(not t for t in tokens):
        raise ScpiError(-102)
    return tokens


def is_quoted(token: str) -> bool:
    """Whether ``token`` is string program data (single or double quotes)."""
    return len(token) >= 2 and token[0] in "'\"" and token[-1] == token[0]


def unquote(token: str) -> str:
    """The content of a quoted string, with doubled quotes undone; -104 if not a string."""
    if not is_quoted(token):
        raise ScpiError(-104)
    quote = token[0]
    body = token[1:-1]
    if body.replace(quote * 2, "").count(quote):
        raise ScpiError(-151)
    return body.replace(quote * 2, quote)


@dataclass(frozen=True)
class Mnemonic:
    """A SCPI mnemonic like ``CURRent``: short form = the upper-case letters ``CURR``."""

    long: str
    short: str = field(init=False, repr=False, compare=False)
    """The short form (computed once: headers are matched on every command)."""
    _long_upper: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "short", "".join(ch for ch in self.long if ch.isupper() or ch.isdigit()))
        object.__setattr__(self, "_long_upper", self.long.upper())

    def matches(self, word: str) -> bool:
        """``word`` (any case) is exactly the short or the long form."""
        w = word.upper()
        return w == self.short or w == self._long_upper


class Param(ABC):
    """One declared parameter: ``parse`` turns a token into a value or raises ScpiError."""

    name: str = ""
    optional: bool = False
    default: Any = None
    variadic: bool = False

    @abstractmethod
    def parse(self, token: str) -> Any:
        """The value of program-data ``token`` (already stripped)."""


def _character_data(token: str) -> str | None:
    """The upper-cased token if it is character program data (a mnemonic), else None."""
    if token and (token[0].isalpha()) and all(ch.isalnum() or ch == "_" for ch in token):
        return token.upper()
    return None


def _parse_number(token: str, unit: str) -> float:
    """A decimal or non-decimal numeric token with optional multiplier and unit suffix."""
    if token.startswith("#") and len(token) > 2 and token[1].upper() in _NONDECIMAL:
        try:
            return float(int(token[2:], _NONDECIMAL[token[1].upper()]))
        except ValueError as exc:
            raise ScpiError(-121) from exc
    m = _DECIMAL.fullmatch(token)
    if m is None:
        if _character_data(token) is not None:
            raise ScpiError(-224)
        if is_quoted(token) or token.startswith("("):
            raise ScpiError(-104)
        raise ScpiError(-121)
    value = float(re.sub(r"\s", "", m.group(1)))
    suffix = m.group(2).strip().upper()
    if not suffix:
        return value
    if not suffix.isalpha():
        raise ScpiError(-121)
    u = unit.upper()
    if u and suffix.endswith(u):
        suffix = suffix[: -len(u)]
        if not suffix:
            return value
        if suffix in _MULTIPLIERS:
            return value * _MULTIPLIERS[suffix]
        raise ScpiError(-131)
    if suffix in _MULTIPLIERS:
        return value * _MULTIPLIERS[suffix]
    raise ScpiError(-131)


@dataclass
class Numeric(Param):
    """A number in ``[minimum, maximum]`` (SI, with optional ``unit`` suffix and multipliers).

    ``MIN``/``MAX`` give the bounds, ``DEF`` gives ``default_value``; ``integer`` rounds.
    Out of range raises -222 Data out of range.
    """

    name: str = "value"
    minimum: float = -math.inf
    maximum: float = math.inf
    default_value: float | None = None
    unit: str = ""
    integer: bool = False
    optional: bool = False
    default: Any = None
    variadic: bool = False
    extra_words: dict[str, float] = field(default_factory=dict)
    """Other mnemonics accepted as numbers (e.g. ``{"INF": 9.9e37}``)."""

    def parse(self, token: str) -> Any:
        word = _character_data(token)
        if word is not None:
            if word in ("MIN", "MINIMUM") and math.isfinite(self.minimum):
                return self._finish(self.minimum)
            if word in ("MAX", "MAXIMUM") and math.isfinite(self.maximum):
                return self._finish(self.maximum)
            if word in ("DEF", "DEFAULT") and self.default_value is not None:
                return self._finish(self.default_value)
            if word in self.extra_words:
                return self.extra_words[word]
            raise ScpiError(-224)
        value = _parse_number(token, self.unit)
        if not (self.minimum <= value <= self.maximum):
            raise ScpiError(-222)
        return self._finish(value)

    def _finish(self, value: float) -> float | int:
        return round(value) if self.integer else value


@dataclass
class Boolean(Param):
    """``ON``/``OFF`` or a number (nonzero after rounding is true)."""

    name: str = "state"
    optional: bool = False
    default: Any = None
    variadic: bool = False

    def parse(self, token: str) -> Any:
        word = _character_data(token)
        if word is not None:
            if word == "ON":
                return True
            if word == "OFF":
                return False
            raise ScpiError(-224)
        return round(_parse_number(token, "")) != 0


@dataclass
class Choice(Param):
    """One of a set of mnemonics in short or long form; the value is the option's short form."""

    options: Sequence[str] = ()
    name: str = "choice"
    optional: bool = False
    default: Any = None
    variadic: bool = False

    def __post_init__(self) -> None:
        mnemonics = [Mnemonic(o) for o in self.options]
        # every spelling (upper case) -> the short form; the first option declared wins a clash
        self._spellings: dict[str, str] = {}
        for m in reversed(mnemonics):
            self._spellings[m.long.upper()] = m.short
            self._spellings[m.short] = m.short

    def parse(self, token: str) -> Any:
        word = _character_data(token)
        if word is None:
            if is_quoted(token) or token.startswith("("):
                raise ScpiError(-104)
            # a number where a mnemonic is wanted
            raise ScpiError(-104 if _DECIMAL.fullmatch(token) else -141)
        short = self._spellings.get(word.upper())
        if short is None:
            raise ScpiError(-224)
        return short


@dataclass
class QuotedChoice(Param):
    """A quoted mnemonic path such as ``"VOLT"`` or ``'voltage:dc'`` from ``options`` written
    like headers (``"VOLTage[:DC]"``); the value is the option as declared, e.g. ``VOLT:DC``
    is returned as the option's canonical name ``canonical[i]``."""

    options: Sequence[str] = ()
    canonical: Sequence[str] = ()
    name: str = "function"
    optional: bool = False
    default: Any = None
    variadic: bool = False

    def __post_init__(self) -> None:
        from licycler.sim_instruments.scpi.tree import HeaderPattern

        self._patterns = [HeaderPattern.parse(o) for o in self.options]
        if not self.canonical:
            self.canonical = [p.short_path() for p in self._patterns]

    def parse(self, token: str) -> Any:
        text = unquote(token).strip().lstrip(":")
        words = text.split(":") if text else []
        for pattern, name in zip(self._patterns, self.canonical, strict=True):
            if pattern.match(words) is not None:
                return name
        raise ScpiError(-224)


@dataclass
class String(Param):
    """A quoted string; the value is its content."""

    name: str = "string"
    optional: bool = False
    default: Any = None
    variadic: bool = False

    def parse(self, token: str) -> Any:
        return unquote(token)


@dataclass
class ChannelList(Param):
    """``(@1)``, ``(@1,2)``, ``(@1:2)``, ``(@2,1)``: a tuple of channel numbers in 1..channels."""

    channels: int = 1
    name: str = "chanlist"
    optional: bool = True
    default: Any = (1,)
    variadic: bool = False

    def parse(self, token: str) -> Any:
        t = token.replace(" ", "")
        if not (t.startswith("(@") and t.endswith(")")):
            raise ScpiError(-104)
        out: list[int] = []
        try:
            for part in t[2:-1].split(","):
                if ":" in part:
                    a, b = (int(x) for x in part.split(":"))
                    step = 1 if b >= a else -1
                    out.extend(range(a, b + step, step))
                else:
                    out.append(int(part))
        except ValueError as exc:
            raise ScpiError(-102) from exc
        if not out or any(not 1 <= c <= self.channels for c in out):
            raise ScpiError(-222)
        return tuple(out)
