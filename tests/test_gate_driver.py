"""The closed-loop gate driver and the learn trigger of the MicroPython firmware
(firmware/micropython/tr_gate.py, tr_trigger.py) on MicroPython's WebAssembly port,
against the stand-in parts of wasm/fake_machine.py: a gate RC node that moves only with
the pulses the PIO state machines actually make (1 us steps), leaks, and is read back by
a 12-bit ADC with its noise.

A Gen-2 learn asks about 90 uV; the shortest pulse moves the gate about 1.3 mV at 3 V.
The board must carry such steps, report the gate it measured, and apply them once they
add up.

Protocol 2.1 (PROTOCOL.md "Actuator calibration") on the same simulated gate, over the bus
(wasm/driver_hw.py suite_gate2): calibrate_actuator measures the gate's slopes and leak,
stores and uses them, a power cycle reads them back; a leaking gate holds its learned value.

As strict as the hardware (suites wrap, hotloop, rmt, gate_paths): the ticks wrap (the
stand-in clock refuses values that are not ticks, as time.ticks_diff/ticks_add define
them), protocol 2's main-loop pass on MachineHAL allocates nothing on an idle pass nor on
a learn's real path under micropython.heap_lock, a learn takes the one-pulse step and every
approach is bounded, and the ESP32 RMT takes one transmission at a time.
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
    res = subprocess.run([NODE, str(RUNNER), "--suites", "gate,trigger,ports,gate2,wrap,hotloop,rmt,gate_paths"], capture_output=True,
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


# ---------------------------------------------------------------- protocol 2.1, over the bus

RESOLUTION = 1000           # protocol 2's gate resolution (main.make_board's default)
WDT_MS = 2000               # tr_config's default watchdog timeout


def _reply(hex_: str | None) -> dict:
    from instruments.bus import v2 as V2
    assert hex_ is not None
    f = V2.decode_any(bytes.fromhex(hex_))
    return V2.unpack_reply(V2.COMMANDS_BY_CODE[f.cmd & 0x7F].name, f.payload)


def _table(rep: dict) -> list[int]:
    return (rep["charge_gate_uv"] + rep["charge_nv_per_us"] + rep["discharge_gate_uv"]
            + rep["discharge_nv_per_us"] + [rep["leak_uv_per_s"]])


def _nominal() -> list[int]:
    from instruments.bus import v2 as V2
    return _table(V2.GateCalibration.from_rc(2200, 6_000_000).fields())   # tr_config's rc_us, rail_uv


def test_calibrate_actuator_measures_the_gates_true_slopes_and_leak(hw):
    """Over the bus: nominal (source 0) from rc_us and rail_uv until calibrate_actuator, which
    answers source 1 with five slopes each way within 3 % of the simulated RC gate's true dV/dt
    at those voltages (R 1.05 kOhm, C 2.2 uF, rail 5.95 V, its leak through 220 MOhm) and the
    leak within 5 % of the gate's true drift where it held; read_actuator_calibration then gives
    the same table, the one the driver uses and the one in gate_cal.json."""
    g = hw["gate2"]
    nominal = _reply(g["nominal"])
    assert (nominal["status"], nominal["source"]) == (0, 0) and _table(nominal) == _nominal()
    assert g["refused_broadcast"] is None
    cal = _reply(g["calibrated"])
    assert (cal["status"], cal["source"]) == (0, 1)
    tau, tau_leak, rail = g["tau_us"], g["tau_leak_us"], g["rail_uv"]
    xs = cal["charge_gate_uv"]
    assert len(xs) == 5 and all(a < b for a, b in zip(xs, xs[1:]))
    for v, s in zip(xs, cal["charge_nv_per_us"]):
        want = ((rail - v) / tau - v / tau_leak) * 1000
        assert abs(s - want) / want < 0.03, (v, s, want)
    xs = cal["discharge_gate_uv"]
    assert len(xs) == 5 and all(a < b for a, b in zip(xs, xs[1:]))
    for v, s in zip(xs, cal["discharge_nv_per_us"]):
        want = (v / tau + v / tau_leak) * 1000
        assert abs(s - want) / want < 0.03, (v, s, want)
    want_leak = -g["true_before"] / tau_leak * 1e6         # held at its target, about 3 V
    assert want_leak < -10_000
    assert abs(cal["leak_uv_per_s"] - want_leak) < 0.05 * -want_leak, (cal["leak_uv_per_s"], want_leak)
    read = _reply(g["read"])
    assert read == cal
    assert g["in_use"] == _table(cal)
    s = g["stored"]
    assert [p[0] for p in s["charge"]] + [p[1] for p in s["charge"]] == _table(cal)[:10]
    assert [p[0] for p in s["discharge"]] + [p[1] for p in s["discharge"]] == _table(cal)[10:20]
    assert s["leak_uv_per_s"] == cal["leak_uv_per_s"]


def test_calibrate_actuator_goes_back_to_the_target_within_its_time_feeding_the_watchdog(hw):
    """The state is what it was within the resolution (PROTOCOL.md), the measurement takes
    the leak's hold of 1 s or more and no more than ACTUATOR_CAL_MAX_MS (3 s), and the
    watchdog is fed all along (never 200 ms without, its timeout being 2 s)."""
    g = hw["gate2"]
    before, after = _reply(g["before"]), _reply(g["after"])
    assert abs(after["state"] - before["state"]) <= RESOLUTION + READBACK_UV
    assert abs(g["true_after"] - 3_000_000) < g["resolution_uv"] + READBACK_UV
    assert abs(after["state"] - g["true_after"]) < READBACK_UV
    assert 1_000_000 <= g["calibrate_us"] <= 3_000_000
    t = [0] + g["feeds_us"] + [g["calibrate_us"]]
    assert len(g["feeds_us"]) >= 10
    assert max(b - a for a, b in zip(t, t[1:])) < 200_000 < WDT_MS * 1000


def test_the_measured_table_is_kept_across_a_power_cycle(hw):
    """A new board on the same flash loads gate_cal.json: source 1, the same table, in use."""
    g = hw["gate2"]
    cal, again = _reply(g["calibrated"]), _reply(g["restarted"])
    assert (again["status"], again["source"]) == (0, 1)
    assert _table(again) == _table(cal) and g["restarted_in_use"] == _table(cal)


def test_a_leaking_gate_holds_its_learned_value_across_learns(hw):
    """Learns 2 s apart on a gate whose leak takes some 27 mV (about twenty pulses' worth)
    between them: the learned value (the target) moves by exactly the rule's 90 uV per learn,
    never by the leak; after every learn the gate is back at it within one pulse's worth, and
    the state replied is the gate read back."""
    g = hw["gate2"]
    assert _reply(g["configure"])["status"] == 0
    res = g["resolution_uv"]
    t = g["target_start"]
    for i, x in enumerate(g["learns"]):
        rep = _reply(x["reply"])
        assert rep["updated"] == 1 and x["target"] == t + 90 * (i + 1)
        assert x["true_before"] < x["target"] - 90 - 15 * res      # the leak took it away
        assert abs(x["true_after"] - x["target"]) < res + READBACK_UV
        assert abs(rep["state"] - x["true_after"]) < READBACK_UV
        assert rep["residue"] == x["target"] - rep["state"]


def test_the_idle_main_loop_restores_what_the_leak_takes(hw):
    """3 s of idle main-loop passes (the leak would take about 40 mV): the driver's hold, from
    the stored leak, keeps the gate within one pulse's worth of the learned value all along,
    and the board's state is the gate it read back."""
    g = hw["gate2"]
    res = g["resolution_uv"]
    idle = g["idle"]
    span_s = (idle[-1][0] - idle[0][0]) / 1e6
    assert span_s > 2.5
    leak = _reply(g["calibrated"])["leak_uv_per_s"]
    assert -leak * span_s > 20 * res
    for now, true_uv, target, state in idle:
        assert target == g["learns"][-1]["target"]
        assert abs(true_uv - target) < res + READBACK_UV, (now, true_uv, target)
        assert abs(state - true_uv) < READBACK_UV


def test_a_board_that_cannot_store_its_table_answers_storage_and_keeps_the_nominal_one(hw):
    g = hw["gate2"]
    assert _reply(g["failing_calibrate"]) == {"status": 11}          # storage
    before, after = _reply(g["failing_before"]), _reply(g["failing_after"])
    assert before == after and after["source"] == 0 and _table(after) == _nominal()
    assert g["failing_in_use"] == _nominal() and g["failing_leak"] == 0


# ---------------------------------------------------------------- as strict as the hardware


def test_replies_and_the_trigger_keep_time_across_the_ticks_wrap(hw):
    """The port's ticks_us wraps at 2^30 (MicroPython docs, time.ticks_add/ticks_diff): a
    slotted protocol-1 reply, protocol-2 replies dated from the receive interrupt's stamp
    and a learn pulse, each across the wrap; SimHAL's real-time clock waits and keeps
    uptime across it. Direct arithmetic on ticks makes values that are not ticks (the
    stand-in refuses them; on a board a long int, and a wrong wait after the wrap)."""
    from instruments.bus import v2 as REF2
    w = hw["wrap"]
    settle = w["char_us"] // 10 + 1
    assert w["p1"]["sent"] == 1, w["p1"]
    assert len(w["p1"]["writes"]) == 1
    assert 18_000 <= w["p1"]["writes"][0][1] < 18_000 + 100      # slot 9: 9 x 2 ms
    assert w["trigger"] == [1, 0]                                 # a learn, no glitch
    starts = {1: 348, 2: REF2.reply_start_us("identify", 5, 115200)}
    for seq, sent, writes in w["p2"]:
        assert sent == 1 and len(writes) == 1, (seq, sent, writes)
        assert writes[0][1] == starts[seq] + settle, (seq, writes)
    assert w["sim_wait_us"] == 5000
    assert w["sim_uptime_ms"] == w["sim_elapsed_ms"] == 15


@pytest.mark.parametrize("port", ["rp2", "esp32"])
def test_the_protocol_2_loop_allocates_nothing_on_idle_and_learn_passes(hw, port):
    """micropython.heap_lock around protocol 2's pass on MachineHAL (the parts' own
    simulation excepted), a leaking gate board on rp2 (PIO pulses, ADS131M04 nodes) and on
    esp32 (RMT pulses, ADC1 nodes): 400 idle passes (the hold restores the gate), 300 more
    across the ms counter's 2^30 epoch, then 30 learn passes on the real path (interrupt
    snapshot, take, rule, one-pulse step, read-backs): no MemoryError."""
    assert hw["hotloop"]["interpreter"] == "micropython"
    r = hw["hotloop"][port]
    assert r["idle"] is None, r["idle"]
    assert r["idle_pulses"] >= 1                  # the idle passes did restore the gate
    assert r["idle_epoch"] is None, r["idle_epoch"]
    assert r["learn"] is None, r["learn"]
    assert r["learns"] == 31
    assert r["learn_pulses"] >= 10                # the learns moved the gate, pulse by pulse
    # 1800 uV a learn (the esp32's 12-bit node readings: the contrast within 1 %)
    assert abs(r["target_moved_uv"] - 31 * 1800) <= (0 if port == "rp2" else 31 * 18)
    assert r["carried_uv"] == r["residue"]
    assert abs(r["true_uv"] - r["target"]) < abs(r["residue"]) + 3 * READBACK_UV
    assert r["shoot_through"] == 0


def test_a_protocol_2_learn_takes_the_one_pulse_step_and_approaches_are_bounded(hw):
    g = hw["gate_paths"]
    assert g["learn_calls"] == [0, 5]             # GateDriver.step, never set(), per learn
    assert g["learn_target_moved"][0] == 0        # the driver's target is the board's
    assert g["learn_target_moved"][1] == 5 * 1800
    assert g["set_state_calls"] == [1, 0]
    a = g["absurd"]
    assert a["pulses"] <= g["max_iterations"] * -(-5 * g["rc_us"] // a["max_pulse_us"])
    assert a["pulse_us"] <= g["max_iterations"] * 5 * g["rc_us"]


def test_the_rmt_pulser_waits_for_its_channel_and_allocates_nothing(hw):
    """ESP32 RMT: one transmission at a time (write_pulses blocks while one runs): the
    pulser waits for the channel (wait_done, bounded) so it never blocks inside
    write_pulses; a channel that stays busy is an error; no tuple per pulse."""
    r = hw["rmt"]
    assert r["back_to_back"] == [["rmt", 0, 5000], ["rmt", 5000, 5100]]
    assert "busy" in r["stuck"]
    assert r["locked"] is None, r["locked"]
