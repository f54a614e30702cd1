"""The closed-loop gate driver and the learn trigger of the MicroPython firmware
(firmware/micropython/tr_gate.py, tr_trigger.py) on MicroPython's WebAssembly port,
against the stand-in parts of wasm/fake_machine.py: a gate RC node that moves only with
the pulses the PIO state machines actually make (1 us steps), leaks, and is read back by
a 12-bit ADC with its noise.

A Gen-2 learn asks about 90 uV; the shortest pulse moves the gate about 1.3 mV at 3 V.
The board must carry such steps, report the gate it measured, and apply them once they
add up.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FW = ROOT / "firmware" / "micropython"
RUNNER = FW / "run_wasm.mjs"
WASM_PKG = FW / "node_modules" / "@micropython" / "micropython-webassembly-pyscript" / "micropython.mjs"
NODE = shutil.which("node")
HAVE_WASM = NODE is not None and WASM_PKG.exists()
READBACK_UV = 1_500     # a few read-back codes (1.6 mV of gate each, averaged)


@pytest.fixture(scope="module")
def hw(tmp_path_factory) -> dict:
    if not HAVE_WASM:
        pytest.skip("MicroPython WebAssembly port missing: npm ci --prefix firmware/micropython")
    res = subprocess.run([NODE, str(RUNNER), "--suites", "gate,trigger,ports"], capture_output=True,
                         text=True, timeout=600, cwd=tmp_path_factory.mktemp("hw"))
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr[-4000:]
    out = {}
    for line in res.stdout.splitlines():
        d = json.loads(line)
        out[d["suite"]] = d
    assert out["info"]["implementation"] == "micropython"
    return out


def test_a_sub_resolution_step_is_carried_and_not_reported(hw):
    g = hw["gate"]
    first = g["learns"][0]
    assert first["pulse_us"] == 0                     # nothing applied
    assert g["resolution_uv"] > 1_000                 # one 1 us pulse at 3 V
    # the gate did not move, and the board did not claim the 90 uV
    assert abs(first["true_uv"] - 3_000_000) < READBACK_UV
    assert abs(first["state"] - first["true_uv"]) < READBACK_UV
    assert first["carried_uv"] == first["target_uv"] - first["state"]


def test_the_first_learns_apply_nothing_until_they_add_up(hw):
    learns = hw["gate"]["learns"]
    res = hw["gate"]["resolution_uv"]
    targets = [x["target_uv"] for x in learns]
    assert all(b - a == 90 for a, b in zip(targets, targets[1:]))
    # no pulse while what was asked is well below one pulse's worth
    k = (res - 2 * READBACK_UV // 3) // 90
    assert all(x["pulse_us"] == 0 for x in learns[:max(k, 1)])
    # once they add up, single microsecond pulses apply them
    assert sum(x["pulse_us"] for x in learns) >= 1
    assert max(x["pulse_us"] for x in learns) <= 2


def test_carried_steps_are_applied_once_they_add_up(hw):
    learns = hw["gate"]["learns"]
    res = hw["gate"]["resolution_uv"]
    last = learns[-1]
    asked = last["target_uv"] - learns[0]["target_uv"] + 90
    moved = last["true_uv"] - learns[0]["true_uv"] + 90
    assert asked == 40 * 90
    # the gate followed the target within one pulse's worth and the read-back noise
    assert abs(last["true_uv"] - last["target_uv"]) < res + READBACK_UV
    assert abs(moved - asked) < res + READBACK_UV
    # what the board reported is what it measured of the gate, never the target
    for x in learns:
        assert abs(x["state"] - x["true_uv"]) < READBACK_UV


def test_the_learn_reply_carries_the_measured_state(hw):
    g = hw["gate"]
    reply = bytes.fromhex(g["learn_reply"])
    from instruments.bus import protocol as REF
    f = REF.decode_frame(reply)
    rep = REF.unpack_reply("learn", f.payload)
    assert rep["updated"] == 1
    assert rep["state"] == g["after_learn_reply"]["state"]
    assert abs(rep["state"] - g["after_learn_reply"]["true_uv"]) < READBACK_UV


def test_the_slope_calibration_is_measured_and_stored(hw):
    g = hw["gate"]
    assert g["calibration_stored"] is True
    assert g["calibration_reloaded"] == g["calibration"]
    # the fake part: R 1.05 kOhm, C 2.2 uF, rail 5.95 V (not the nominal 1 k, 6 V)
    tau_us = 1050 * 2.2
    for v, s in g["calibration"]["charge"]:
        want = (5_950_000 - v) / tau_us * 1000
        assert abs(s - want) / want < 0.05, (v, s, want)
    for v, s in g["calibration"]["discharge"]:
        want = v / tau_us * 1000
        assert abs(s - want) / want < 0.05, (v, s, want)


def test_the_leak_is_measured_and_compensated(hw):
    g = hw["gate"]
    drop = g["leak_true_drop_uv"]
    assert drop > 5_000                                   # 5 s of leak moved the gate
    a = g["after_leak"]
    assert abs(a["leak_uv_per_s"] + drop / 5) < 0.2 * drop / 5
    assert abs(a["true_uv"] - a["target_uv"]) < g["resolution_uv"] + READBACK_UV
    assert g["shoot_through"] == 0


def test_the_trigger_samples_at_the_rising_edge_and_locks_out_ringing(hw):
    t = hw["trigger"]
    # the nodes at the rising edge (24-bit codes, 143 nV each), not those changed after it
    want = [400000, 100000, 200000, 200000]
    assert all(abs(a - b) <= 1 for a, b in zip(t["snapshot"], want)), t["snapshot"]
    assert t["counts_after_pulse"] == [1, 2]                # one learn, two glitches
    assert t["state_after"] == 51                           # the rule ran on the snapshot


def test_the_trigger_handler_does_not_allocate(hw):
    t = hw["trigger"]
    assert t["handler_alloc_bytes"] == 0
    assert t["handler_heap_locked_ok"] is True
    assert t["counts_end"] == [3, 2]


def _state(reply_hex: str) -> int:
    from instruments.bus import protocol as REF
    return REF.unpack_reply("set_state", REF.decode_frame(bytes.fromhex(reply_hex)).payload)["state"]


def test_an_esp32_sets_its_adc_attenuation_and_refuses_adc2(hw):
    p = hw["ports"]
    assert p["atten"] == [3, 3, 3, 3]                     # ADC.ATTN_11DB on every node pin
    want = [400000, 100000, 200000, 200000]
    assert all(abs(a - b) <= 600 for a, b in zip(p["nodes_uv"], want)), p["nodes_uv"]
    assert "pin 4 is not a usable ADC pin on esp32" in p["adc2_refused"]
    assert p["handler_alloc_bytes"] == 0
    assert p["snapshot"] == p["nodes_uv"]


def test_a_digipot_write_not_acknowledged_is_not_reported_as_taken(hw):
    p = hw["ports"]
    assert [_state(r) for r in p["replies"]] == [70, 70, 70]   # 90 NACKed, 95 part absent
    assert p["wiper"] == 70 and p["failed_writes"] == 2


def test_an_esp32_gate_is_pulsed_by_the_rmt_and_reports_what_it_measured(hw):
    state, true_uv, rmt_items = hw["ports"]["esp32_gate"]
    assert rmt_items >= 2                       # the power-on discharge, then charges
    assert abs(true_uv - 2_000_000) < 3_000     # 1.2 mV of gate per ESP32 code at 11 dB, 1:2
    assert abs(state - true_uv) < 3_000
