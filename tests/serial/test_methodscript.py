"""MethodSCRIPT codec against the manual's examples and round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from licycler.drivers import methodscript as ms


def test_manual_packet_example() -> None:
    # MethodSCRIPT manual: Pda7F85F3Fu;ba48D503Dp,10,288 -> E = -0.499905 V, I = -57.85 uA
    da, ba = ms.parse_packet("Pda7F85F3Fu;ba48D503Dp,10,288")
    assert da.type_code == "da"
    assert da.unit == "V"
    assert da.value == pytest.approx(-0.499905, abs=1e-12)
    assert ba.type_code == "ba"
    assert ba.unit == "A"
    assert ba.value == pytest.approx(-57.85e-6, abs=0.005e-6)
    assert ba.status == 0
    assert ba.current_range == 0x88
    assert da.status == 0
    assert da.current_range is None


def test_manual_value_examples() -> None:
    # manual: 0.01 is "800000Am" and -0.01 "7FFFFF6m"; offset 0x8000000 is zero
    assert ms.decode_value("800000Am") == pytest.approx(0.01)
    assert ms.decode_value("7FFFFF6m") == pytest.approx(-0.01)
    assert ms.decode_value("8000000 ") == 0.0
    assert ms.decode_value("800000Ai") == 10.0
    assert math.isnan(ms.decode_value("     nan"))


def test_encoder_picks_finest_prefix_like_the_instrument() -> None:
    assert ms.encode_value(-0.499905) == "7F85F3Fu"
    assert ms.encode_value(-57.847747e-6) == "48D503Dp"
    assert ms.encode_value(0.0) == "8000000 "
    assert ms.encode_value(math.nan) == ms.NAN_FIELD
    assert ms.encode_value(12, integer=True) == "800000Ci"


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_value_round_trip_within_resolution(value: float) -> None:
    decoded = ms.decode_value(ms.encode_value(value))
    # the finest prefix whose mantissa fits keeps >= 2**27/1000 counts: 0.5 count < 4e-6 relative
    assert abs(decoded - value) <= max(4e-6 * abs(value), 1e-18)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=-10, max_value=10, allow_nan=False),
            st.floats(min_value=-0.2, max_value=0.2, allow_nan=False),
            st.integers(0, 15),
            st.sampled_from([3, 6, 9, 12, 15, 18, 21, 24, 27]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_block_codec_agrees_with_line_parser(rows: list[tuple[float, float, int, int]]) -> None:
    e = np.array([r[0] for r in rows])
    i = np.array([r[1] for r in rows])
    status = np.array([r[2] for r in rows])
    rng = np.array([r[3] for r in rows])
    text = ms.encode_packets([ms.Column("ab", e, status), ms.Column("ba", i, np.zeros_like(status), rng)])
    lines = text.decode().splitlines()
    block = ms.decode_packets(lines)
    for k, line in enumerate(lines):
        ab, ba = ms.parse_packet(line)
        assert block.values[k, 0] == ab.value
        assert block.values[k, 1] == ba.value
        assert block.status[k, 0] == ab.status == status[k]
        assert block.current_range[k, 1] == ba.current_range == rng[k]
    np.testing.assert_allclose(block.column("ab"), e, rtol=4e-6, atol=1e-18)
    np.testing.assert_allclose(block.column("ba"), i, rtol=4e-6, atol=1e-18)


def test_block_with_nan_and_mixed_prefixes() -> None:
    lines = ["Peb80F4240u;ab     nan,12;ba80F4240n,10,215", "Peb81E8480u;ab82F4D60u,10;ba8989680p,10,215"]
    block = ms.decode_packets(lines)
    assert block.type_codes == ("eb", "ab", "ba")
    np.testing.assert_allclose(block.column("eb"), [1.0, 2.0])
    assert math.isnan(block.column("ab")[0])
    assert block.column("ab")[1] == pytest.approx(3.1)
    assert list(block.column_status("ab")) == [2, 0]
    np.testing.assert_allclose(block.column("ba"), [1e-3, 10e-6])
    assert list(block.column_range("ba")) == [0x15, 0x15]


def test_malformed_lines_raise_or_are_dropped() -> None:
    good = "Pda7F85F3Fu;ba48D503Dp,10,288"
    bad = ["Pda7F85G3Fu;ba48D503Dp,10,288", "Pda7F85F3Fx;ba48D503Dp,10,288", "xyz", "Pda7F85F3Fu"]
    for line in bad:
        with pytest.raises(ms.MethodScriptError):
            ms.decode_packets([good, line])
    block = ms.decode_packets([good, *bad, good], strict=False)
    assert len(block) == 2
    assert len(block.rejected) == 4
    assert block.column("da")[1] == pytest.approx(-0.499905)


def test_literals() -> None:
    cases = {0.0015: "1500u", -0.5: "-500m", 2.0: "2", 1e6: "1M", 0.1: "100m", 1.5: "1500m", 0.0: "0"}
    cases[57.85e-6] = "57850n"
    for value, text in cases.items():
        assert ms.format_literal(value) == text
        assert ms.parse_literal(text) == pytest.approx(value)
    assert ms.parse_literal("51i") == 51.0
    assert ms.parse_literal("0x1Fi") == 31.0
    with pytest.raises(ms.MethodScriptError):
        ms.parse_literal("1.5")
    with pytest.raises(ValueError, match="literal"):
        ms.format_literal(math.inf)


def test_errors() -> None:
    assert ms.parse_error("Z!0006") == ms.ScriptError(0x0006)
    assert ms.parse_error("e!4001: Line 3, Col 1") == ms.ScriptError(0x4001, 3, 1)
    err = ms.parse_error("!4205: Line 12")
    assert err is not None
    assert err.line == 12
    assert "out of range" in err.message
    assert ms.parse_error("Pda7F85F3Fu") is None


def test_current_range_codes() -> None:
    assert ms.current_range_code(1e-3) == 21
    assert ms.current_range_code(1.5e-3) == 24
    assert ms.current_range_code(1e-9) == 3
    with pytest.raises(ValueError, match="largest"):
        ms.current_range_code(0.2)


def test_constant_current_script_shape() -> None:
    lines = ms.ConstantCurrentScript(1e-3, 1.0, 3600.0, 1e-3, voltage_limit_v=4.2, max_bandwidth_hz=50.0).lines()
    assert lines[-2:] == ["on_finished:", "cell_off"]
    assert "set_pgstat_mode 6" in lines
    assert "set_range ba 1m" in lines
    assert "set_max_bandwidth 50" in lines
    assert lines.index("cell_on") < lines.index("meas_loop_cp p c 1m 1 3600") < lines.index("endloop")
    body = lines[lines.index("meas_loop_cp p c 1m 1 3600") : lines.index("endloop")]
    assert [ln.strip() for ln in body[1:6]] == ["timer_get t", "pck_start", "pck_add t", "pck_add p", "pck_add c"]
    assert "  if p > 4200m" in body
    assert "  if p < -4200m" in body
    assert body.count("    breakloop") == 2
    assert ms.open_circuit_script(0.5)[-2:] == ["on_finished:", "cell_off"]
    with pytest.raises(ValueError, match="outside"):
        ms.ConstantCurrentScript(2e-3, 1.0, 10.0, 1e-3)
