"""Protocol 2's RP2040 image drives its MOSFET gate in closed loop (firmware/rp2040/src/gate.c).

The harness (firmware/rp2040/emu/harness.mjs) models the gate as what it is: a node of
C = 2.31 uF charged through R = 1 kOhm and a 15 Ohm switch from the PWM-filtered source
(0 or 6.6 V) while PIN_GATE is high, an exact exponential over each pulse in emulated time,
leaking to ground through R_leak, read back on ADC0 (GP26) through the board's 1:2 divider
with the RP2040 ADC's 12-bit quantisation and seeded Gaussian noise of 2.83 codes rms
(ENOB 8.7, RP2040 datasheet 4.9.3). The parts differ from the nominal table's 1 kOhm and
2.2 uF on purpose. Checked here, against the model's own voltage (``gate_state``):

* the state a board reports is the gate it reached, read back, after set_state and learns;
* a learn step below what the shortest pulse moves is carried as the residue, no pulse
  given and the state not changed, until the steps add up to a pulse's worth;
* calibrate_actuator (protocol 2.1) measures the model's true dV/dt at five gate voltages,
  charging and discharging, within 2 %, and its leak; the table is stored, used, and kept
  across a power cycle and a factory reset;
* a leaking gate held for seconds is restored by the board, so the learned value (the
  target) does not drift and the gate stays at it.

Skipped locally when node, rp2040js or arm-none-eabi-gcc is missing; fails when ``CI=true``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rp2040_emu import BOOT_V2_NS, EmuBoard, build_image, config_image
from test_rp2040_emu_v2 import ADDRESS, CONFIG_UID, FLASH_UID, GATE_CHARGING, Host

from instruments.bus.v2 import Error, GateCalibration, ReferenceBoard, Rule, quiet_ms
from instruments.bus.v2.constants import GATE_LEAK_HOLD_MS

MOSFET = 2
ALWAYS = 65536
RAIL_UV = 6_600_000
#: The read-back's error: the rounding to the 1 mV grid (0.5 mV) and 3 sigma of the noise
#: averaged over 256 conversions (2.83 codes x 1.611 mV / 16 = 0.28 mV rms).
READBACK_UV = 1_400
#: What is left below one shortest (1 us) pulse: at most the slope there (the model's
#: largest, at 1 V charging: 5.6 V / 2.345 ms = 2.39 mV/us).
SHORTEST_UV = 2_400
SETTINGS_SECTOR = 0x1FC000
V_UP = [300_000, 100_000, 280_000, 110_000]    # a learn on these raises the target
V_DOWN = [300_000, 100_000, 330_000, 100_000]  # and on these lowers it


@pytest.fixture(scope="module")
def image():
    return build_image("v2")


@pytest.fixture
def config_uf2(image, tmp_path):
    return config_image(tmp_path / "board5.uf2", ADDRESS, CONFIG_UID, "mosfet", 2_000_000)


def _boot(image: Path, config_uf2: Path, flash_image: Path | None = None, **gate) -> EmuBoard:
    args = ["--flash-uid", FLASH_UID.hex()] + (["--flash-image", str(flash_image)] if flash_image else [])
    b = EmuBoard(*args, image.with_suffix(".uf2"), config_uf2)
    if gate:
        b.call("gate", **gate)
    b.call("run", ns=BOOT_V2_NS)
    return b


@pytest.fixture
def board(image, config_uf2):
    b = _boot(image, config_uf2)
    yield b
    b.close()


def _gate_uv(board: EmuBoard) -> float:
    return board.call("gate_state")["v_uv"]


def _pulses(board: EmuBoard) -> list[dict]:
    """The gate pulses since the last look (their rising edges), each a whole number of
    microseconds to 0.1 us (a timer tick to the alarm's interrupt)."""
    got = board.call("events")
    assert got["violations"] == [] and got["warnings"] == []
    edges = [e for e in got["events"] if e["type"] == "gate"]
    for up, down in zip(edges[::2], edges[1::2]):
        assert (up["level"], down["level"]) == (1, 0)
        width_us = (down["atNs"] - up["atNs"]) / 1000
        assert round(width_us) >= 1 and abs(width_us - round(width_us)) <= 0.1, width_us
    return [e for e in edges if e["level"] == 1]


def _settle(host: Host, state: int) -> dict:
    """set_state, then the main loop's time to finish a move longer than a reply allows."""
    r = host.request(ADDRESS, "set_state", state=state)
    assert r["status"] == 0 and r["state"] + r["residue"] == state
    host.board.call("run", ns=30_000_000)
    return host.request(ADDRESS, "read_state")


def test_the_state_reported_is_the_gate_reached_after_set_state_and_learns(board):
    host = Host(board)
    r = host.request(ADDRESS, "read_state")  # the power-on move from 0 V to 2 V
    assert abs(r["state"] - _gate_uv(board)) <= READBACK_UV and abs(r["residue"]) <= SHORTEST_UV + READBACK_UV
    for target in (3_000_400, 1_000_000, 5_500_000, 4_123_456, 2_000_000):
        r = _settle(host, target)
        true_uv = _gate_uv(board)
        print(f"target {target} uV: state {r['state']}, residue {r['residue']}, gate {true_uv:.0f} uV")
        assert r["state"] % 1000 == 0 and r["state"] + r["residue"] == target
        assert abs(r["state"] - true_uv) <= READBACK_UV  # the state is the gate, read back
        assert abs(true_uv - target) <= SHORTEST_UV + READBACK_UV  # and the gate is at the target
    # learns: the rule's change to the target, the gate moved and read back
    host.request(ADDRESS, "configure_rule", rule=GATE_CHARGING, probability=ALWAYS, gain=250_000_000,
                 dead_band_uv2=0)
    board.call("nodes", uv=V_UP)
    for _ in range(4):
        r = host.request(ADDRESS, "learn")
        board.call("run", ns=1_000_000)
        true_uv = _gate_uv(board)
        assert r["updated"] == 1 and abs(r["state"] - true_uv) <= READBACK_UV
        s = host.request(ADDRESS, "read_state")
        assert s["state"] + s["residue"] == r["state"] + r["residue"]
    assert r["state"] > 2_030_000  # four steps of about 10 mV each
    _pulses(board)


def _learn_pulse(board: EmuBoard) -> tuple[int, list[dict]]:
    """A learn on the learn line (rising edge: the snapshot; falling edge 150 us later: the
    update); the falling edge's time and the gate pulses it gave."""
    _pulses(board)
    rise = board.now_ns + 100_000
    board.call("pin", edges=[[rise, 1], [rise + 150_000, 0]])
    board.call("run", ns=100_000 + 150_000 + 2_000_000)
    return rise + 150_000, _pulses(board)


def test_a_learn_step_below_the_shortest_pulse_is_carried_not_reported_applied(board):
    host = Host(board)
    r0 = _settle(host, 3_000_000)
    # a gain giving steps of about 400 uV, a fifth of what a 1 us pulse moves the gate at 3 V
    ref = ReferenceBoard(FLASH_UID, MOSFET, address=ADDRESS, initial_state=3_000_000, resolution=1000,
                         node_uv=V_UP)
    ref.rule, ref.probability, ref.gain, ref.dead_band_uv2 = Rule(GATE_CHARGING), ALWAYS, 2_500_000_000, 0
    ref.learn()
    gain = 2_500_000_000 * 400 // (ref.target - 3_000_000)
    host.request(ADDRESS, "configure_rule", rule=GATE_CHARGING, probability=ALWAYS, gain=gain, dead_band_uv2=0)
    # the first step goes against the residue left by the set_state, so it stays below a pulse
    nodes = V_DOWN if r0["residue"] > 0 else V_UP
    board.call("nodes", uv=nodes)
    state, target, steps = r0["state"], r0["state"] + r0["residue"], []
    for k in range(12):
        gate_before = _gate_uv(board)
        fall_ns, pulses = _learn_pulse(board)
        r = host.request(ADDRESS, "read_state")
        step = r["state"] + r["residue"] - target
        target += step
        steps.append(step)
        assert 300 <= abs(step) <= 500
        if not pulses:
            # carried: the state is not changed, the gate not moved, the step in the residue
            assert r["state"] == state and r["residue"] == target - state
            assert abs(_gate_uv(board) - gate_before) < 50
        else:
            # the steps added up to a pulse's worth: the gate moved, read back
            assert k >= 1 and len(pulses) <= 2
            assert abs(r["state"] - _gate_uv(board)) <= READBACK_UV
            assert abs(r["residue"]) <= SHORTEST_UV + READBACK_UV
            delay_us = (pulses[0]["atNs"] - fall_ns) / 1000
            print(f"steps {steps} carried, then a pulse {delay_us:.1f} us after the falling edge; "
                  f"state {state} -> {r['state']}, residue {r['residue']}")
            assert delay_us <= 50  # the update's budget (README: falling edge to the pulse)
            break
        state = r["state"]
        if k == 0:
            board.call("nodes", uv=V_UP if nodes is V_DOWN else V_DOWN)  # now towards a pulse
            nodes = None
    else:
        pytest.fail("twelve steps of 400 uV never added up to a pulse")


def _true_slope_nv_per_us(g: dict, v_uv: float, charging: bool) -> float:
    """The model's dV/dt at v (nV/us): (S - v) / (R C) - v / (R_leak C) while the switch is on."""
    c = g["c_uf"] * 1e-6
    on = ((RAIL_UV - v_uv) if charging else -v_uv) / (g["r_ohm"] * c)
    leak = -v_uv / (g["r_leak_ohm"] * c)
    return abs(on + leak) * 1e-3  # uV/s -> nV/us


def test_calibrate_actuator_measures_the_gates_slopes_and_leak_and_keeps_them(image, config_uf2, tmp_path):
    b = _boot(image, config_uf2, r_leak_ohm=2e9)  # a leakier gate: about -650 uV/s at 3 V
    try:
        host = Host(b)
        nominal = host.request(ADDRESS, "read_actuator_calibration")
        assert nominal.pop("status") == 0 and nominal.pop("source") == 0
        assert nominal == GateCalibration.from_rc(2200, RAIL_UV).fields()  # 1 kOhm, 2.2 uF, 6.6 V
        before = _settle(host, 2_500_000)
        b.call("events")
        got = host.request(ADDRESS, "calibrate_actuator")
        events = b.call("events")
        assert events["violations"] == []
        end = [e["atNs"] for e in events["events"] if e["type"] == "host_sent"][-1]
        rise = [e["riseNs"] for e in events["events"] if e["type"] == "de"][-1]
        flash = [(e["op"], e["addr"]) for e in events["events"] if e["type"] == "flash"]
        print(f"calibrate_actuator answered {(rise - end) / 1e6:.1f} ms after the end of frame "
              f"(quiet {quiet_ms('calibrate_actuator')} ms): {got}")
        assert rise - end <= quiet_ms("calibrate_actuator") * 1_000_000
        assert flash == [("erase", SETTINGS_SECTOR), ("program", SETTINGS_SECTOR)]
        assert got.pop("status") == 0 and got.pop("source") == 1
        table = GateCalibration.from_fields(got)  # the gate points increase (checked there)
        g = b.call("gate_state")
        for i, v in enumerate((1e6, 2e6, 3e6, 4e6, 5e6)):
            for charging, xs, ys in ((True, table.charge_gate_uv, table.charge_nv_per_us),
                                     (False, table.discharge_gate_uv, table.discharge_nv_per_us)):
                assert abs(xs[i] - v) < 250_000  # the mid-points of the change: 100 us pulses
                true = _true_slope_nv_per_us(g, xs[i], charging)
                assert abs(ys[i] - true) <= 0.02 * true, (i, charging, ys[i], true)
        leak = -GATE_LEAK_AT_UV / (g["r_leak_ohm"] * g["c_uf"] * 1e-6)  # uV/s at the hold's 3 V
        print(f"leak {table.leak_uv_per_s} uV/s (the model's {leak:.0f}); hold {GATE_LEAK_HOLD_MS} ms or more")
        assert abs(table.leak_uv_per_s - leak) <= 100  # 2 x 16384 conversions over 2 s: 25 uV/s rms
        # back at the target, the state and residue as before within the actuator's resolution
        after = host.request(ADDRESS, "read_state")
        assert after["state"] + after["residue"] == before["state"] + before["residue"]
        assert abs(after["state"] - _gate_uv(b)) <= READBACK_UV
        assert abs(after["state"] - before["state"]) <= SHORTEST_UV + READBACK_UV
        got_again = host.request(ADDRESS, "read_actuator_calibration")
        assert got_again == {"status": 0, "source": 1, **table.fields()}
        # the measured table is used: a move of 1 V lands within a pulse's worth at once
        _pulses(b)
        host.request(ADDRESS, "set_state", state=3_500_000)
        moved = _pulses(b)
        assert abs(_gate_uv(b) - 3_500_000) <= SHORTEST_UV + READBACK_UV and len(moved) <= 2
        # kept across a power cycle and a factory reset
        saved = tmp_path / "flash.bin"
        b.call("flash_save", path=str(saved))
    finally:
        b.close()
    again = _boot(image, config_uf2, flash_image=saved)
    try:
        host = Host(again)
        assert host.request(ADDRESS, "read_actuator_calibration") == {"status": 0, "source": 1, **table.fields()}
        assert host.request(ADDRESS, "reset", mode=1) == {"status": 0}
        again.call("run", ns=BOOT_V2_NS)
        assert host.request(ADDRESS, "read_actuator_calibration") == {"status": 0, "source": 1, **table.fields()}
        assert again.call("events")["violations"] == []
    finally:
        again.close()


GATE_LEAK_AT_UV = 3_000_000  # board.h: the leak's hold at mid-range


def test_a_leaking_gate_held_for_seconds_keeps_the_learned_value(image, config_uf2):
    b = _boot(image, config_uf2, r_leak_ohm=1e9)  # 1.3 mV/s at 3 V: 6.5 mV in 5 s unrestored
    try:
        host = Host(b)
        r = _settle(host, 3_000_000)
        _pulses(b)
        worst = 0.0
        for _ in range(50):  # 5 s, looked at every 100 ms
            b.call("run", ns=100_000_000)
            worst = max(worst, abs(_gate_uv(b) - 3_000_000))
        restores = _pulses(b)
        held = host.request(ADDRESS, "read_state")
        print(f"5 s held: {len(restores)} restoring pulses, the gate at most {worst:.0f} uV from the target; "
              f"state {held['state']}, residue {held['residue']}")
        assert held["state"] + held["residue"] == 3_000_000 == r["state"] + r["residue"]  # the learned value
        assert abs(held["state"] - _gate_uv(b)) <= READBACK_UV
        assert worst <= SHORTEST_UV + READBACK_UV + 130  # the drift between two looks
        assert restores and all(e["atNs"] for e in restores)  # the board gave back what leaked
    finally:
        b.close()


def test_a_learns_update_starts_its_pulse_within_50_us_even_during_the_idle_read_back(board):
    """The main loop reads the gate back every 100 ms while idle (256 conversions, 512 us);
    a learn whose falling edge comes during that read-back is not kept waiting: the
    read-back gives way. Each learn a step of about 10 mV, its edges put 200 us into a
    read-back the test sees begin (the ADC's conversions counted, ``gate_state``)."""
    host = Host(board)
    host.request(ADDRESS, "configure_rule", rule=GATE_CHARGING, probability=ALWAYS, gain=250_000_000,
                 dead_band_uv2=0)
    delays = []
    for k in range(4):
        board.call("nodes", uv=V_UP if k % 2 else V_DOWN)
        _pulses(board)
        seen = board.call("gate_state")["conversions"]
        for _ in range(2400):  # 120 ms in steps of 50 us: a check begins in it
            board.call("run", ns=50_000)
            if board.call("gate_state")["conversions"] != seen:
                break
        else:
            pytest.fail("no idle read-back in 120 ms")
        rise = board.now_ns + 10_000
        board.call("pin", edges=[[rise, 1], [rise + 150_000, 0]])
        board.call("run", ns=10_000 + 150_000 + 2_000_000)
        pulses = _pulses(board)
        assert pulses, k
        delays.append((pulses[0]["atNs"] - (rise + 150_000)) / 1000)
    print(f"falling edge inside the idle read-back to the gate pulse: {', '.join(f'{d:.1f}' for d in delays)} us")
    assert max(delays) <= 50


def test_calibrate_actuator_on_a_flash_that_fails_answers_storage_and_keeps_the_table(image, config_uf2):
    b = EmuBoard("--flash-uid", FLASH_UID.hex(), "--flash-protect", image.with_suffix(".uf2"), config_uf2)
    try:
        b.call("run", ns=BOOT_V2_NS)
        host = Host(b)
        before = host.request(ADDRESS, "read_state")
        assert host.request(ADDRESS, "calibrate_actuator") == {"status": Error.STORAGE}
        got = host.request(ADDRESS, "read_actuator_calibration")
        assert got == {"status": 0, "source": 0, **GateCalibration.from_rc(2200, RAIL_UV).fields()}
        after = host.request(ADDRESS, "read_state")  # back at the target
        assert after["state"] + after["residue"] == before["state"] + before["residue"]
        assert abs(after["state"] - _gate_uv(b)) <= READBACK_UV
    finally:
        b.close()


def test_firmware_2_0s_settings_record_is_still_read(image, config_uf2, tmp_path):
    """Firmware 2.0 stored the address and the offsets as one record ("TRS2", CRC-32 after
    24 bytes); 2.1's record adds the gate's table. A board updated from 2.0 keeps its
    address and offsets, its gate on the nominal table."""
    import struct

    from instruments.bus.v2 import crc32

    b = _boot(image, config_uf2)
    saved = tmp_path / "flash.bin"
    b.call("flash_save", path=str(saved))
    b.close()
    body = struct.pack("<IB3x4i", 0x32535254, 33, -1200, 300, 0, 45)
    flash = bytearray(saved.read_bytes())
    flash[SETTINGS_SECTOR:SETTINGS_SECTOR + 4096] = b"\xff" * 4096
    flash[SETTINGS_SECTOR:SETTINGS_SECTOR + 28] = body + struct.pack("<I", crc32(body))
    saved.write_bytes(bytes(flash))
    again = _boot(image, config_uf2, flash_image=saved)
    try:
        host = Host(again)
        assert host.request(33, "identify")["address"] == 33
        assert host.request(33, "read_calibration") == {
            "status": 0, "offset_free_a_uv": -1200, "offset_free_b_uv": 300, "offset_clamped_a_uv": 0,
            "offset_clamped_b_uv": 45}
        assert host.request(33, "read_actuator_calibration")["source"] == 0
    finally:
        again.close()
