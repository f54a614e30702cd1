"""The SCPI layer's values <-> text, property-tested: numbers, lists, booleans and error
entries survive formatting and parsing exactly, the parser is no more lenient than an
instrument, and a setting's command carries its value or refuses it."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from instruments.visa.scpi import (
    Range,
    ScpiInstrument,
    Setting,
    format_bool,
    format_number,
    format_numbers,
    parse_bool,
    parse_error,
    parse_number,
    parse_numbers,
)


finite = st.floats(allow_nan=False, allow_infinity=False)
# SCPI <NRf>: what an instrument accepts as a number
SCPI_NRF = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@given(finite)
def test_a_number_survives_formatting_and_parsing_exactly(value):
    assert parse_number(format_number(value)) == value


@given(finite)
def test_a_formatted_number_is_scpi_numeric_data(value):
    assert SCPI_NRF.fullmatch(format_number(value))


@given(finite)
def test_instrument_style_replies_parse_to_their_value(value):
    for reply in (f"{value:+.8E}", f"{value:.6E}", f"{value:+.8E}\n"):
        assert parse_number(reply) == float(reply)


@given(st.text())
def test_the_parser_is_no_more_lenient_than_float(text):
    try:
        float(text)
    except ValueError:
        with pytest.raises(ValueError):
            parse_number(text)


@pytest.mark.parametrize("reply", ["nan", "inf", "-Infinity", "1_000", "", "1,0", "0x10", "+4.9E-01VDC"])
def test_the_parser_refuses_what_no_scpi_instrument_sends(reply):
    with pytest.raises(ValueError):
        parse_number(reply)


@given(st.lists(finite, min_size=1, max_size=120))
def test_a_list_survives_formatting_and_parsing_exactly(values):
    np.testing.assert_array_equal(parse_numbers(format_numbers(values)), values)


@given(st.booleans())
def test_a_boolean_survives_formatting_and_parsing(on):
    assert parse_bool(format_bool(on)) is on
    assert parse_bool(str(int(on))) is on


@given(st.integers(-32768, 32767), st.text(alphabet=st.characters(blacklist_characters='"\r\n'), max_size=40))
def test_an_error_entry_parses_to_its_code_and_message(code, message):
    assert parse_error(f'{code:+d},"{message}"') == (code, message)


class _Probe(ScpiInstrument):
    """A driver of one setting: the base's formatting and checking, without an instrument."""

    voltage_v = Setting(":SOUR:VOLT {value}", Range(-210, 210), "V")


@given(st.floats(-210, 210))
def test_a_setting_command_carries_its_value_exactly(value_v):
    command = _Probe.voltage_v.command_for(value_v)
    header, argument = command.split(" ", 1)
    assert header == ":SOUR:VOLT"
    assert parse_number(argument) == value_v


@given(st.floats(allow_nan=True).filter(lambda v: not -210 <= v <= 210))
def test_a_setting_refuses_every_value_outside_its_range(value_v):
    with pytest.raises(ValueError, match=r"_Probe.voltage_v: .* V is outside -210..210 V"):
        _Probe.voltage_v.command_for(value_v)
