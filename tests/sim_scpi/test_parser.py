"""The SCPI parser as IEEE 488.2 / SCPI-99 say it behaves, through a small declared instrument.

The test instrument declares ``:SOURce#:CURRent[:LEVel][:IMMediate][:AMPLitude]`` and friends in
the command-tree format; every spelling the standard allows must reach the same handler, and every
mistake must queue the standard error code.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from licycler.sim_instruments.clock import VirtualClock
from licycler.sim_instruments.scpi import (
    Boolean,
    Call,
    ChannelList,
    Choice,
    Command,
    Numeric,
    QuotedChoice,
    ScpiInstrument,
    String,
)


class Toy(ScpiInstrument):
    identity = "ACME,TOY-1,42,1.0"
    channels = 2
    error_queue_size = 5

    def __init__(self) -> None:
        self.level: dict[int, float] = {1: 0.0, 2: 0.0}
        self.limit = 21.0
        self.calls: list[Call] = []
        super().__init__(VirtualClock())

    def reset(self) -> None:
        self.level = {1: 0.0, 2: 0.0}
        self.limit = 21.0

    def _set_level(self, call: Call) -> None:
        self.calls.append(call)
        self.level[call.channel] = call.args[0]

    def _record(self, call: Call) -> str:
        self.calls.append(call)
        return repr(call.args)

    def build_commands(self) -> list[Command]:
        return [
            Command(":SOURce#:CURRent[:LEVel][:IMMediate][:AMPLitude]", set=self._set_level,
                    query=lambda c: self.format_number(self.level[c.channel]),
                    params=[Numeric(minimum=-1.05, maximum=1.05, default_value=0.0, unit="A")]),
            Command(":SOURce#:CURRent:VLIMit[:LEVel]",
                    set=lambda c: setattr(self, "limit", c.args[0]),
                    query=lambda c: self.format_number(self.limit),
                    params=[Numeric(minimum=0.02, maximum=210, unit="V")]),
            Command("[:SENSe#]:FUNCtion[:ON]", set=self._record, query=lambda c: '"VOLT:DC"',
                    params=[QuotedChoice(("VOLTage[:DC]", "CURRent[:DC]"),
                                         canonical=("VOLT:DC", "CURR:DC"))]),
            Command(":OUTPut#[:STATe]", set=self._record, params=[Boolean()]),
            Command(":OUTPut#:SMODe", set=self._record,
                    params=[Choice(("NORMal", "HIMPedance", "ZERO"))]),
            Command(":TRACe:MAKE", set=self._record, params=[String(), Numeric(integer=True)]),
            Command(":MEASure:VOLTage", query=self._record, query_params=[ChannelList(channels=2)]),
            Command(":FORMat:ELEMents", set=self._record,
                    params=[Choice(("VOLTage", "CURRent", "TIME"), variadic=True)]),
            Command(":SYSTem:ERRor[:NEXT]", query=lambda c: self.format_error(*self.pop_error())),
        ]


async def run(toy: Toy, line: str) -> str | None:
    return await toy.execute_line(line)


async def errors(toy: Toy) -> list[int]:
    codes = []
    while True:
        reply = await run(toy, ":SYST:ERR?")
        assert reply is not None
        code = int(reply.split(",")[0])
        if code == 0:
            return codes
        codes.append(code)


@pytest.fixture
def toy() -> Toy:
    return Toy()


@pytest.mark.parametrize(
    "line",
    [
        ":SOURce:CURRent:LEVel:IMMediate:AMPLitude 0.5",
        ":SOUR:CURR 0.5",
        "SOUR:CURR 0.5",
        ":sour:curr:lev 0.5",
        ":Source1:Current:Level:Immediate 0.5",
        ":SOUR1:CURR:AMPL 0.5",
        "  :SOUR:CURR   0.5  ",
        ":SOUR:CURR 500mA",
        ":SOUR:CURR 500 MA",
        ":SOUR:CURR .5",
        ":SOUR:CURR +5E-1",
        ":SOUR:CURR 5e-1A",
        ":SOUR:CURR 5 E -1",
        ":SOUR:CURR 500000uA",
    ],
)
async def test_every_legal_spelling_reaches_the_command(toy: Toy, line: str) -> None:
    assert await run(toy, line) is None
    assert toy.level[1] == pytest.approx(0.5)
    assert await errors(toy) == []


@pytest.mark.parametrize(
    ("value", "expected"), [("MIN", -1.05), ("minimum", -1.05), ("MAX", 1.05), ("DEF", 0.0),
                            ("#H0", 0.0), ("#B1", 1.0)],
)
async def test_numeric_keywords_and_bases(toy: Toy, value: str, expected: float) -> None:
    await run(toy, f":SOUR:CURR {value}")
    assert toy.level[1] == expected
    assert await errors(toy) == []


async def test_numeric_suffix_selects_the_channel(toy: Toy) -> None:
    await run(toy, ":SOUR2:CURR 0.25")
    assert toy.level == {1: 0.0, 2: 0.25}
    assert await run(toy, ":SOUR2:CURR?") == "2.500000E-01"
    await run(toy, ":SOUR3:CURR 0.1")
    assert await errors(toy) == [-114]


async def test_compound_lines_follow_the_header_path_rules(toy: Toy) -> None:
    # after :SOUR:CURR:VLIM the path is :SOUR:CURR:, so LEV means :SOUR:CURR:LEV
    reply = await run(toy, ":SOUR:CURR:VLIM 5;LEV 0.1;:SOUR:CURR:LEV?;VLIM?")
    assert reply == "1.000000E-01;5.000000E+00"
    # common commands do not change the path; a leading colon goes back to the root
    reply = await run(toy, ":SOUR:CURR:VLIM 6;*IDN?;VLIM?;:SOUR:CURR?")
    assert reply == "ACME,TOY-1,42,1.0;6.000000E+00;1.000000E-01"
    # VLIM is not a child of :SOUR: -> -113
    await run(toy, ":SOUR:CURR 0.2;VLIM 7")
    assert toy.limit == 6.0
    assert await errors(toy) == [-113]


async def test_each_line_starts_at_the_root(toy: Toy) -> None:
    await run(toy, ":SOUR:CURR:VLIM 5")
    await run(toy, "LEV 0.3")
    assert await errors(toy) == [-113]


async def test_optional_root_node_may_be_left_out(toy: Toy) -> None:
    for line in (':SENS:FUNC "VOLT"', ':FUNC "volt:dc"', ":SENSe1:FUNCtion:ON 'Voltage'",
                 ':sense:function "VOLTAGE:DC"'):
        await run(toy, line)
    assert [c.args for c in toy.calls] == [("VOLT:DC",)] * 4
    assert await errors(toy) == []


async def test_both_quote_styles_and_doubled_quotes(toy: Toy) -> None:
    await run(toy, ":TRAC:MAKE 'it''s',10;:TRAC:MAKE \"say \"\"hi\"\"\",20")
    assert [c.args for c in toy.calls] == [("it's", 10), ('say "hi"', 20)]
    assert await errors(toy) == []


async def test_channel_lists(toy: Toy) -> None:
    assert await run(toy, ":MEAS:VOLT? (@1,2)") == "((1, 2),)"
    assert await run(toy, ":MEAS:VOLT? (@2:1)") == "((2, 1),)"
    assert await run(toy, ":MEAS:VOLT? (@1)") == "((1,),)"
    assert await run(toy, ":MEAS:VOLT?") == "((1,),)"
    await run(toy, ":MEAS:VOLT? (@3)")
    assert await errors(toy) == [-222]


async def test_variadic_mnemonics_and_booleans(toy: Toy) -> None:
    await run(toy, ":FORM:ELEM volt, CURRENT ,time;:OUTP ON;:OUTP 0;:OUTP:SMOD himpedance")
    assert [c.args for c in toy.calls] == [(("VOLT", "CURR", "TIME"),), (True,), (False,),
                                           ("HIMP",)]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (":SOUR:CURR:BOGUS 1", -113),
        (":SOURCES:CURR 1", -113),
        (":SOUR:CURRE 1", -113),  # neither short nor long form
        (":SOUR:CURR 2", -222),
        (":SOUR:CURR", -109),
        (":SOUR:CURR 1,2", -108),
        (":SOUR:CURR 1 Q", -131),
        (":SOUR:CURR 1.2.3", -121),
        (":SOUR:CURR ON", -224),
        (':SOUR:CURR "1"', -104),
        (":OUTP:SMOD MAYBE", -224),
        (':SENS:FUNC "TEMP"', -224),
        (":SENS:FUNC VOLT", -104),
        (':SENS:FUNC "VOLT', -151),
        (":SOUR::CURR 1", -102),
        (":SOURCECURRENTLEVEL 1", -112),
        ("*FOO", -113),
        ("*IDN? 1", -108),
    ],
)
async def test_standard_error_codes(toy: Toy, line: str, code: int) -> None:
    await run(toy, line)
    assert await errors(toy) == [code]


async def test_a_command_error_stops_the_rest_of_the_line(toy: Toy) -> None:
    await run(toy, ":SOUR:CURR 0.1;:BOGUS;:SOUR:CURR 0.2")
    assert toy.level[1] == pytest.approx(0.1)
    # an execution error does not
    await run(toy, ":SOUR:CURR 5;:SOUR:CURR 0.3")
    assert toy.level[1] == pytest.approx(0.3)
    assert await errors(toy) == [-113, -222]


async def test_queue_overflow_replaces_the_last_entry(toy: Toy) -> None:
    for _ in range(8):
        await run(toy, ":BOGUS")
    assert await errors(toy) == [-113, -113, -113, -113, -350]


async def test_common_commands_and_status(toy: Toy) -> None:
    assert await run(toy, "*IDN?") == "ACME,TOY-1,42,1.0"
    assert await run(toy, "*idn?") == "ACME,TOY-1,42,1.0"
    assert await run(toy, "*OPC?") == "1"
    assert await run(toy, "*TST?") == "0"
    await run(toy, ":BOGUS")  # command error: ESR bit 5 (32), STB bit 2 (error queue)
    await run(toy, ":SOUR:CURR 9")  # execution error: ESR bit 4 (16)
    assert await run(toy, "*STB?") == "4"
    await run(toy, "*ESE 48")
    assert await run(toy, "*ESE?") == "48"
    assert await run(toy, "*STB?") == "36"  # ESB set as ESR & ESE != 0
    assert await run(toy, "*ESR?") == "48"
    assert await run(toy, "*ESR?") == "0"  # reading clears it
    await run(toy, "*OPC")
    assert await run(toy, "*ESR?") == "1"
    await run(toy, ":SOUR:CURR 0.5;*CLS")
    assert await run(toy, "*STB?") == "0"
    await run(toy, ":SOUR:CURR 0.5;*RST;:SOUR:CURR?")
    assert toy.level[1] == 0.0


_HEADER = (("SOURce", False), ("CURRent", False), ("LEVel", True), ("IMMediate", True),
           ("AMPLitude", True))


def _spell(word: str, long: bool, upper: list[bool]) -> str:
    text = word if long else "".join(ch for ch in word if ch.isupper())
    return "".join(ch.upper() if u else ch.lower() for ch, u in zip(text, upper * 20, strict=False))


@given(
    forms=st.lists(st.booleans(), min_size=5, max_size=5),
    keep=st.lists(st.booleans(), min_size=5, max_size=5),
    case=st.lists(st.booleans(), min_size=1, max_size=8),
    colon=st.booleans(),
    value=st.floats(min_value=-1.05, max_value=1.05, allow_nan=False),
)
async def test_any_legal_spelling_sets_the_level(
    forms: list[bool], keep: list[bool], case: list[bool], colon: bool, value: float
) -> None:
    toy = Toy()
    words = [
        _spell(w, long, case)
        for (w, optional), long, k in zip(_HEADER, forms, keep, strict=True)
        if k or not optional
    ]
    header = (":" if colon else "") + ":".join(words)
    await toy.execute_line(f"{header} {value!r}")
    assert toy.level[1] == value
    assert not toy.errors


def test_format_number_of_nan_is_the_scpi_sentinel() -> None:
    toy = Toy()
    assert toy.format_number(math.nan) == "9.910000E+37"
