"""Board-definition files (hostctl/boarddef.py, firmware/boards/*.toml) and the firmware's
own configuration merge (firmware/micropython/tr_config.py): a partial definition keeps
the defaults' sibling keys, an unknown actuator is refused by name, a bad field is named
with its value, and the config.json written is what the board itself resolves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from hostctl import boarddef as B

BOARDS = Path(__file__).resolve().parents[1] / "firmware" / "boards"

keys = st.sampled_from(["a", "b", "c", "d"])
leaves = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none())
trees = st.recursive(leaves, lambda kids: st.dictionaries(keys, kids, max_size=4), max_leaves=12)
dict_trees = st.dictionaries(keys, trees, max_size=4)


def _paths(d: dict, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _paths(v, prefix + (k,))
        else:
            yield prefix + (k,), v


def _get(d, path):
    for k in path:
        d = d[k]
    return d


def _overridden(over: dict, path: tuple) -> bool:
    """Whether ``over`` names ``path`` or one of its ancestors."""
    d = over
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return False
        d = d[k]
        if not isinstance(d, dict):
            return True
    return True


@given(dict_trees, dict_trees)
def test_deep_merge_keeps_every_sibling_the_override_does_not_name(base, over):
    merged = B.deep_merge(base, over)
    for path, v in _paths(over):
        got = _get(merged, path)
        assert got == v or (v == {} and isinstance(got, dict))
    for path, v in _paths(base):
        if not _overridden(over, path):
            assert _get(merged, path) == v


@given(dict_trees, dict_trees)
def test_deep_merge_changes_neither_argument(base, over):
    b0, o0 = json.dumps(base, sort_keys=True), json.dumps(over, sort_keys=True)
    B.deep_merge(base, over)
    assert (json.dumps(base, sort_keys=True), json.dumps(over, sort_keys=True)) == (b0, o0)


def test_a_partial_uart_keeps_its_pins():
    cfg = B.resolve({"port": "rp2", "uart": {"baudrate": 57600}})
    assert cfg["uart"] == {**B.DEFAULT_CONFIG["uart"], "baudrate": 57600}


def test_the_firmware_merge_keeps_siblings_too():
    cfg = B._CFG.resolve({"uart": {"de": 3}, "actuator": {"n_taps": 64}})
    assert cfg["uart"]["tx"] == B.DEFAULT_CONFIG["uart"]["tx"] and cfg["uart"]["de"] == 3
    assert cfg["actuator"] == {**B.ACTUATOR_DEFAULTS["x9c"], "n_taps": 64}


def test_an_unknown_actuator_is_refused_by_name():
    with pytest.raises(B.BoardDefError, match=r"x\.toml: actuator\.type: unknown actuator 'mcp4131'"):
        B.resolve({"port": "rp2", "actuator": {"type": "mcp4131"}}, "x.toml")
    with pytest.raises(B._CFG.ConfigError, match=r"actuator\.type: unknown actuator 'mcp4131'"):
        B._CFG.resolve({"actuator": {"type": "mcp4131"}})


@pytest.mark.parametrize("user, field, value", [
    ({"uart": {"baudrate": "fast"}}, "uart.baudrate", "'fast'"),
    ({"address": 300}, "address", "300"),
    ({"actuator": {"cs": -1}}, "actuator.cs", "-1"),
    ({"learn": {"pull": "sideways"}}, "learn.pull", "'sideways'"),
    ({"nodes": {"adc": "internal", "pins": [26, 27, 28, 29]}}, "nodes.pins", "29"),
    ({"kind": "mosfet", "actuator": {"readback": 29}}, "actuator.readback", "29"),
    ({"wifi": True}, "wifi", "True"),
])
def test_a_bad_field_is_named_with_its_value(user, field, value):
    with pytest.raises(B.BoardDefError) as e:
        B.resolve({"port": "rp2", **user}, "board.toml")
    msg = str(e.value)
    assert msg.startswith(f"board.toml: {field}: ") and msg.endswith(f"(value {value})"), msg


def test_a_file_that_is_not_toml_is_named(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("address = = 3\n")
    with pytest.raises(B.BoardDefError, match="bad.toml: not TOML"):
        B.load_board(p)


@pytest.mark.parametrize("name", ["pico.toml", "esp32_devkitc.toml"])
def test_the_shipped_boards_load_and_the_firmware_reads_their_config_json(name):
    cfg = B.load_board(BOARDS / name)
    text = B.config_json(cfg)
    assert B._CFG.resolve(json.loads(text)) == cfg


def test_the_pico_never_uses_its_system_adc_pins():
    cfg = B.load_board(BOARDS / "pico.toml")
    used = set(cfg["nodes"]["pins"]) | {cfg["actuator"]["readback"]}
    assert not used & {24, 25, 29}


def test_safe_mode_skips_the_watchdog():
    class _Pin:
        IN, PULL_UP = 0, 1

        def __init__(self, pin, mode, pull):
            self.pin = pin

        def value(self):
            return 0 if self.pin == 14 else 1

    class _Machine:
        Pin = _Pin

    assert B._CFG.safe_mode({"safe_mode": True})
    assert B._CFG.safe_mode({"safe_mode_pin": 14}, _Machine)
    assert not B._CFG.safe_mode({"safe_mode_pin": 13}, _Machine)


def test_safe_mode_follows_the_flag_file_deploy_writes(tmp_path):
    flag = tmp_path / "SAFE_MODE"
    assert not B._CFG.safe_mode({"safe_mode_pin": None}, flag=str(flag))
    flag.write_bytes(b"")
    assert B._CFG.safe_mode({"safe_mode_pin": None}, flag=str(flag))


@pytest.mark.parametrize("user, message", [
    ({"learn": {"pin": 2}}, "uart.de: GPIO2 is already learn.pin (value 2)"),
    ({"safe_mode_pin": 18}, "safe_mode_pin: GPIO18 is already nodes.sck (value 18)"),
    ({"kind": "mosfet", "actuator": {"discharge": 10}},
     "actuator.discharge: GPIO10 is already actuator.charge (value 10)"),
    ({"safe_mode_pin": 25}, "safe_mode_pin: GPIO25 is the LED on rp2 (value 25)"),
    ({"uart": {"de": 23}}, "uart.de: GPIO23 is the SMPS power-save line on rp2 (value 23)"),
    ({"learn": {"pin": 30}}, "learn.pin: GPIO30 is not a GPIO of the RP2040 on rp2 (value 30)"),
])
def test_a_pin_given_two_roles_or_the_boards_own_is_refused(user, message):
    with pytest.raises(B.BoardDefError) as e:
        B.resolve({"port": "rp2", **user}, "board.toml")
    assert str(e.value) == f"board.toml: {message}"


def test_an_esp32_output_on_an_input_only_pin_or_the_flash_is_refused():
    base = {"port": "esp32", "kind": "digipot", "uart": {"tx": 17, "rx": 16, "de": 4},
            "nodes": {"adc": "internal", "pins": [36, 39, 34, 35]},
            "actuator": {"type": "x9c", "cs": 25, "ud": 26, "inc": 27}}
    B.resolve(base, "esp.toml")
    with pytest.raises(B.BoardDefError, match=r"^esp\.toml: actuator\.cs: GPIO10 is the SPI flash"):
        B.resolve({**base, "actuator": {"type": "x9c"}}, "esp.toml")   # the rp2 defaults
    with pytest.raises(B.BoardDefError, match=r"^esp\.toml: actuator\.cs: GPIO34 is input-only"):
        B.resolve({**base, "actuator": {"type": "x9c", "cs": 34}}, "esp.toml")
    with pytest.raises(B.BoardDefError, match=r"^esp\.toml: learn\.pin: GPIO6 is the SPI flash"):
        B.resolve({**base, "learn": {"pin": 6}}, "esp.toml")


def _c_image_pins() -> dict[str, int]:
    import re
    text = (BOARDS.parent / "rp2040" / "src" / "board.h").read_text()
    return {m[1]: int(m[2]) for m in re.finditer(r"#define (PIN_\w+) (\d+)u", text)}


def test_the_pico_definition_and_the_c_image_share_one_carrier_pin_map():
    # one Pico carrier runs either firmware: the bus, the node ADC, the learn trigger and the
    # gate's read-back are on the same pins, and no MicroPython role sits on a pin the C image drives
    c = _c_image_pins()
    cfg = B.load_board(BOARDS / "pico.toml")
    n, u = cfg["nodes"], cfg["uart"]
    assert (u["tx"], u["rx"], u["de"]) == (c["PIN_UART_TX"], c["PIN_UART_RX"], c["PIN_RS485_DE"])
    assert (n["miso"], n["cs"], n["sck"], n["mosi"], n["drdy"]) == (
        c["PIN_ADC_MISO"], c["PIN_ADC_CS"], c["PIN_ADC_SCLK"], c["PIN_ADC_MOSI"], c["PIN_ADC_DRDY"])
    assert cfg["learn"]["pin"] == c["PIN_LEARN"]
    assert cfg["actuator"]["readback"] == c["PIN_GATE_SENSE"]  # one gate read-back divider on GP26
    roles = B.BoardConfig.model_validate(cfg).pin_roles()
    shared = {c[k] for k in ("PIN_UART_TX", "PIN_UART_RX", "PIN_RS485_DE", "PIN_ADC_MISO",
                             "PIN_ADC_CS", "PIN_ADC_SCLK", "PIN_ADC_MOSI", "PIN_ADC_DRDY",
                             "PIN_LEARN", "PIN_GATE_SENSE")}
    others = {pin for _, pin, _ in roles} - shared
    assert not others & set(c.values()), others & set(c.values())
    assert B.DEFAULT_CONFIG["learn"]["pin"] == c["PIN_LEARN"]


def test_a_definition_may_name_its_protocol_and_actuator_resolution():
    cfg = B.resolve({"port": "rp2", "protocol": 1, "resolution": 1000}, "board.toml")
    assert (cfg["protocol"], cfg["resolution"]) == (1, 1000)
    assert B._CFG.resolve(json.loads(B.config_json(cfg))) == cfg
    with pytest.raises(B.BoardDefError, match=r"^board\.toml: protocol: .*\(value 3\)$"):
        B.resolve({"port": "rp2", "protocol": 3}, "board.toml")
    with pytest.raises(B.BoardDefError, match=r"^board\.toml: resolution: .*\(value 0\)$"):
        B.resolve({"port": "rp2", "resolution": 0}, "board.toml")
