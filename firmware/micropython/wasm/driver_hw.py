# Test driver, hardware suites: hal.MachineHAL and main.run on the stand-in `machine`
# (fake_machine.py, fake_rp2.py), inside MicroPython's WebAssembly port or CPython.
# Not part of the firmware.
#
#   machine_hal  digipot board (ADS131M04 nodes, X9C) and gate board over the bus
#   gate         the closed-loop gate driver: carried sub-resolution steps, leak
#   gate2        protocol 2.1's actuator calibration on a gate board over the bus, and a
#                leaking gate holding its learned value
#   trigger      the learn trigger: snapshot at the rising edge, lockout, no allocation

import struct
import sys

import hal
import main as fw_main
import tr_config
import tr_protocol as P
from drivers_common import emit, hx


def _fake():
    import fake_machine as fm
    import fake_esp32
    import fake_rp2
    sys.modules["machine"] = fm
    sys.modules["rp2"] = fake_rp2
    sys.modules["esp32"] = fake_esp32
    fm.reset()
    return fm


def _done():
    del sys.modules["machine"]
    del sys.modules["rp2"]
    del sys.modules["esp32"]


def _rm(*paths):
    import os
    for p in paths:
        try:
            os.remove(p)
        except OSError:
            pass


def _uart_writes(events, de_pin):
    de = 0
    out = []
    for e in events:
        if e[0] == "pin" and e[1] == de_pin:
            de = e[2]
        elif e[0] == "uart_write":
            out.append([hx(e[1]), de])
    return out, de


def _pulses(events, pin, level=0):
    n = 0
    for e in events:
        if e[0] == "pin" and e[1] == pin:
            if level == 1 and e[2] == 0:
                n += 1
            level = e[2]
    return n


def _nodes(fm, uv):
    for i in range(4):
        fm.ADS.set_uv(i, uv[i])


def suite_machine_hal(tmp):
    fm = _fake()
    out = {"suite": "machine_hal"}
    _nodes(fm, (600000, 500000, 550000, 500000))
    cal = tmp + "/mh_calib.bin"
    _rm(cal, cal + ".tmp")
    cfg = tr_config.resolve({"protocol": 1, "address": 9, "kind": "digipot", "initial_state": 30,
                             "port": "rp2", "calibration_file": cal})
    h = hal.MachineHAL(cfg, clock=fm.CLOCK)
    uid = fw_main.board_uid(cfg)
    b = fw_main.make_board(h, cfg, uid)
    out["uid_hex"] = hx(uid)
    out["nodes_uv"] = h.read_nodes_uv()
    act = cfg["actuator"]
    out["x9c_power_on_steps"] = _pulses(fm.EVENTS, act["inc"], 1)
    out["wdt_init"] = [list(e) for e in fm.EVENTS if e[0] == "wdt_init"]
    out["irq"] = [list(e) for e in fm.EVENTS if e[0] == "irq"]
    fm.EVENTS.clear()
    reqs = [P.encode_frame(9, 0, 1, P.CMD_SAMPLE_DROPS),
            P.encode_frame(9, 0, 2, P.CMD_CONFIGURE_RULE, struct.pack("<BIqq", 1, 65536, 0, 0)),
            P.encode_frame(255, 0, 3, P.CMD_READ_STATE),
            P.encode_frame(9, 0, 4, P.CMD_STORE_CALIBRATION, struct.pack("<iiii", 1, 2, 3, 4))]
    for r in reqs:
        fm.RX.extend(r)
    fw_main.run(b, h, max_loops=3)
    writes, de_after = _uart_writes(fm.EVENTS, cfg["uart"]["de"])
    out["writes"] = writes
    out["de_after"] = de_after
    out["wdt_feeds"] = len([e for e in fm.EVENTS if e[0] == "wdt_feed"])
    out["calibration_reloaded"] = hal.CalibrationFile(cal).load()
    # one learn pulse on the trigger line: tap rule, contrast > 0 -> up one tap
    fm.EVENTS.clear()
    fm.drive(cfg["learn"]["pin"], 1)
    fm.CLOCK.sleep_us(100)
    fm.drive(cfg["learn"]["pin"], 0)
    fw_main.run(b, h, max_loops=2)
    out["state_after_edge"] = b.state
    out["x9c_steps_after_edge"] = _pulses(fm.EVENTS, act["inc"], 1)
    ud = [e[2] for e in fm.EVENTS if e[0] == "pin" and e[1] == act["ud"]]
    out["x9c_ud_after_edge"] = ud[-1] if ud else None
    # a tap beyond the part's taps is not reported as reached
    cfg3 = tr_config.resolve({"protocol": 1, "address": 11, "kind": "digipot", "port": "rp2", "wdt_ms": 0,
                              "uid_hex": "0123456789abcdef", "calibration_file": cal,
                              "actuator": {"n_taps": 64}})
    h3 = hal.MachineHAL(cfg3, clock=fm.CLOCK)
    b3 = fw_main.make_board(h3, cfg3, fw_main.board_uid(cfg3))
    out["x9c_beyond_taps"] = b3.handle(P.encode_frame(11, 0, 1, P.CMD_SET_STATE,
                                                      struct.pack("<i", 80)))
    out["x9c_beyond_taps"] = hx(out["x9c_beyond_taps"])
    # --- MOSFET board: the gate through PIO one-shots, read back
    fm.reset()
    fm.GATE[0] = fm.GateNode(10, 11, 26)
    cal2 = tmp + "/mh_calib2.bin"
    gcal = tmp + "/mh_gate_cal.json"
    _rm(cal2, gcal)
    cfg2 = tr_config.resolve({"protocol": 1, "address": 10, "kind": "mosfet", "initial_state": 3000000,
                              "wdt_ms": 0, "port": "rp2", "uid_hex": "0123456789abcdef",
                              "calibration_file": cal2, "gate_cal_file": gcal})
    h2 = hal.MachineHAL(cfg2, clock=fm.CLOCK)
    b2 = fw_main.make_board(h2, cfg2, fw_main.board_uid(cfg2))
    out["gate_power_on"] = [b2.state, fm.GATE[0].at(fm.CLOCK.now)]
    fm.RX.extend(P.encode_frame(10, 0, 5, P.CMD_SET_STATE, struct.pack("<i", 2500000)))
    fw_main.run(b2, h2, max_loops=2)
    out["gate_writes"], _ = _uart_writes(fm.EVENTS, cfg2["uart"]["de"])
    out["gate_true_uv"] = fm.GATE[0].at(fm.CLOCK.now)
    out["gate_state"] = b2.state
    out["no_wdt"] = h2.wdt is None
    _done()
    emit(out)


GAIN_90UV = 281475      # c = 300,000^2 uV^2 -> round(c * gain / 2^48) = 90 uV


def _learn_pulse(fm, b, h, pin):
    fm.drive(pin, 1)
    fm.CLOCK.sleep_us(100)
    fm.drive(pin, 0)
    fw_main.run(b, h, max_loops=1)


def suite_gate(tmp):
    """A Gen-2 board at 3 V asked for 90 uV per learn (one 1 us pulse moves its gate
    about 1.3 mV): what the board reports, what the gate does, what is carried."""
    fm = _fake()
    node = fm.GateNode(10, 11, 26, leak_ohm=1e9)
    fm.GATE[0] = node
    cal, gcal = tmp + "/g_calib.bin", tmp + "/g_gate_cal.json"
    _rm(cal, gcal, gcal + ".tmp")
    cfg = tr_config.resolve({"protocol": 1, "address": 12, "kind": "mosfet", "initial_state": 3000000,
                             "wdt_ms": 0, "port": "rp2", "uid_hex": "0123456789abcdef",
                             "calibration_file": cal, "gate_cal_file": gcal})
    h = hal.MachineHAL(cfg, clock=fm.CLOCK)
    b = fw_main.make_board(h, cfg, fw_main.board_uid(cfg))
    drv = h.actuator.driver
    out = {"suite": "gate", "power_on_state": b.state, "power_on_true": node.at(fm.CLOCK.now)}
    # per-board calibration of the slope, stored on flash and used from now on
    out["calibration_stored"] = h.actuator.calibrate()
    out["calibration"] = drv.cal.to_json()
    out["calibration_reloaded"] = hal_load_cal(gcal)
    b.set_state(3000000)
    # the target where the closed loop left the gate (within one pulse of 3 V; no pulse
    # now, the distance being the read-back's noise): the learns start with nothing carried
    b.set_state(int(node.at(fm.CLOCK.now)))
    _nodes(fm, (400000, 100000, 200000, 200000))
    b.handle(P.encode_frame(12, 0, 1, P.CMD_CONFIGURE_RULE,
                            struct.pack("<BIqq", 3, 65536, GAIN_90UV, 0)))
    out["resolution_uv"] = drv.resolution_uv(drv.v_uv, True)
    learns = []
    for _ in range(40):
        p0 = drv.pulse_us_total
        _learn_pulse(fm, b, h, cfg["learn"]["pin"])
        learns.append({"state": b.state, "true_uv": node.at(fm.CLOCK.now),
                       "target_uv": drv.target_uv, "carried_uv": drv.carried_uv,
                       "pulse_us": drv.pulse_us_total - p0})
    out["learns"] = learns
    # the learn command's reply: the state measured
    rep = b.handle(P.encode_frame(12, 0, 2, P.CMD_LEARN))
    out["learn_reply"] = hx(rep)
    out["after_learn_reply"] = {"state": b.state, "true_uv": node.at(fm.CLOCK.now),
                                "target_uv": drv.target_uv}
    # leak: 5 s with nothing, then one learn restores the gate
    t_before = node.at(fm.CLOCK.now)
    fm.CLOCK.sleep_ms(5000)
    out["leak_true_drop_uv"] = t_before - node.at(fm.CLOCK.now)
    _learn_pulse(fm, b, h, cfg["learn"]["pin"])
    out["after_leak"] = {"state": b.state, "true_uv": node.at(fm.CLOCK.now),
                         "target_uv": drv.target_uv, "leak_uv_per_s": drv.leak_uv_per_s}
    out["shoot_through"] = len([e for e in fm.EVENTS if e[0] == "gate_shoot_through"])
    _done()
    emit(out)


def hal_load_cal(path):
    import tr_gate
    c = tr_gate.GateCalibration.load(path)
    return None if c is None else c.to_json()


def suite_trigger(tmp):
    """Snapshot at the rising edge, lockout against ringing, counters, no allocation in
    the interrupt handler (gc.mem_alloc unchanged, then the same under heap_lock)."""
    fm = _fake()
    cal = tmp + "/t_calib.bin"
    _rm(cal)
    cfg = tr_config.resolve({"protocol": 1, "address": 13, "kind": "digipot", "initial_state": 50,
                             "port": "rp2", "wdt_ms": 0, "uid_hex": "0123456789abcdef",
                             "calibration_file": cal, "learn": {"lockout_us": 50}})
    h = hal.MachineHAL(cfg, clock=fm.CLOCK)
    b = fw_main.make_board(h, cfg, fw_main.board_uid(cfg))
    b.handle(P.encode_frame(13, 0, 1, P.CMD_CONFIGURE_RULE, struct.pack("<BIqq", 1, 65536, 0, 0)))
    pin = cfg["learn"]["pin"]
    out = {"suite": "trigger"}
    a_nodes = (400000, 100000, 200000, 200000)    # free drop > clamped: tap up
    b_nodes = (200000, 200000, 400000, 100000)    # the opposite
    _nodes(fm, a_nodes)
    fm.drive(pin, 1)                # rising edge: snapshot of a_nodes
    _nodes(fm, b_nodes)             # the nodes change while the line is high
    fm.CLOCK.sleep_us(20)
    fm.drive(pin, 0)                # ringing: inside the lockout
    fm.CLOCK.sleep_us(10)
    fm.drive(pin, 1)                # ringing
    fm.CLOCK.sleep_us(200)
    fm.drive(pin, 0)                # the real falling edge
    out["counts_after_pulse"] = list(h.trigger_counts())
    out["snapshot"] = list(h.trigger.ready)
    fw_main.run(b, h, max_loops=1)
    out["state_after"] = b.state
    out["counts_after_take"] = list(h.trigger_counts())
    # allocation in the handler: one whole pulse with the fake's event log off
    alloc = None
    locked_ok = None
    try:
        import gc
        import micropython
        fm.RECORD[0] = False
        fm.CLOCK.sleep_us(1000)
        gc.collect()
        gc.disable()
        m0 = gc.mem_alloc()
        fm.drive(pin, 1)
        fm.CLOCK.now += 200
        fm.drive(pin, 0)
        alloc = gc.mem_alloc() - m0
        if alloc == 0:
            fm.CLOCK.now += 1000
            micropython.heap_lock()
            fm.drive(pin, 1)
            fm.CLOCK.now += 200
            fm.drive(pin, 0)
            micropython.heap_unlock()
            locked_ok = True
        gc.enable()
        fm.RECORD[0] = True
    except (ImportError, AttributeError):
        pass
    out["handler_alloc_bytes"] = alloc
    out["handler_heap_locked_ok"] = locked_ok
    out["counts_end"] = list(h.trigger_counts())
    _done()
    emit(out)


def suite_ports(tmp):
    """An ESP32 board on its own ADC1 (attenuation set before reading), and an AD5245
    digipot whose unacknowledged writes are not reported as taken."""
    fm = _fake()
    fm.PORT[0] = "esp32"
    cal = tmp + "/p_calib.bin"
    _rm(cal)
    out = {"suite": "ports"}
    for pin, uv in ((36, 400000), (39, 100000), (34, 200000), (35, 200000)):
        fm.ADC_UV[pin] = uv
    cfg = tr_config.resolve({"protocol": 1, "address": 14, "kind": "digipot", "port": "esp32", "wdt_ms": 0,
                             "uid_hex": "0123456789abcdef", "calibration_file": cal,
                             "nodes": {"adc": "internal", "pins": [36, 39, 34, 35],
                                       "samples": 4, "atten": "11db"},
                             "actuator": {"type": "ad5245"}})
    h = hal.MachineHAL(cfg, clock=fm.CLOCK)
    out["atten"] = [a.att for a in h.nodes.adcs]
    out["nodes_uv"] = h.read_nodes_uv()
    try:
        tr_config.resolve({"port": "esp32"})
        bad = hal.MachineHAL(tr_config.resolve({"port": "esp32", "wdt_ms": 0, "calibration_file": cal,
                                                "nodes": {"adc": "internal",
                                                          "pins": [36, 39, 34, 4]}}), clock=fm.CLOCK)
        out["adc2_refused"] = None
    except ValueError as exc:
        out["adc2_refused"] = str(exc)
    b = fw_main.make_board(h, cfg, fw_main.board_uid(cfg))
    out["power_on"] = [b.state, fm.AD5245.wiper]
    replies = []
    replies.append(hx(b.handle(P.encode_frame(14, 0, 1, P.CMD_SET_STATE, struct.pack("<i", 70)))))
    fm.AD5245.nack = 1
    replies.append(hx(b.handle(P.encode_frame(14, 0, 2, P.CMD_SET_STATE, struct.pack("<i", 90)))))
    fm.AD5245.absent = True
    replies.append(hx(b.handle(P.encode_frame(14, 0, 3, P.CMD_SET_STATE, struct.pack("<i", 95)))))
    out["replies"] = replies
    out["wiper"] = fm.AD5245.wiper
    out["failed_writes"] = h.actuator.failed_writes
    # the ESP32 ADC path of the trigger: no allocation in the handler either
    alloc = None
    try:
        import gc
        fm.RECORD[0] = False
        gc.collect()
        gc.disable()
        m0 = gc.mem_alloc()
        fm.drive(cfg["learn"]["pin"], 1)
        fm.CLOCK.now += 200
        fm.drive(cfg["learn"]["pin"], 0)
        alloc = gc.mem_alloc() - m0
        gc.enable()
        fm.RECORD[0] = True
    except (ImportError, AttributeError):
        pass
    out["handler_alloc_bytes"] = alloc
    out["snapshot"] = list(h.trigger.ready)
    # an ESP32 gate board: RMT pulses, read back on ADC1 at 11 dB through 1:2
    fm.GATE[0] = fm.GateNode(25, 26, 32)
    gcal = tmp + "/p_gate_cal.json"
    _rm(gcal)
    cfg = tr_config.resolve({"protocol": 1, "address": 15, "kind": "mosfet", "port": "esp32", "wdt_ms": 0,
                             "initial_state": 2000000, "uid_hex": "0123456789abcdef",
                             "calibration_file": cal, "gate_cal_file": gcal,
                             "nodes": {"adc": "internal", "pins": [36, 39, 34, 35]},
                             "actuator": {"charge": 25, "discharge": 26, "readback": 32,
                                          "readback_samples": 16}})
    h = hal.MachineHAL(cfg, clock=fm.CLOCK)
    b = fw_main.make_board(h, cfg, fw_main.board_uid(cfg))
    out["esp32_gate"] = [b.state, fm.GATE[0].at(fm.CLOCK.now),
                         len([e for e in fm.EVENTS if e[0] == "rmt"])]
    _done()
    emit(out)


def _req2(b, seq, cmd, payload=b"", dst=5):
    """One protocol-2 request to board ``b``: its reply's wire bytes (hex) or None."""
    import tr_protocol2 as P2
    r = b.handle(P2.encode_frame(dst, 0, seq, cmd, payload))
    return None if r is None else hx(r)


def _board2(fm, cfg, tmp):
    import tr_store2
    root = tmp + "/g2_flash/"
    try:
        import os
        os.mkdir(root[:-1])
    except OSError:
        pass
    flash = tr_store2.Flash(root)
    tr_store2.AddressStore(flash).store(5)
    h = hal.MachineHAL(cfg, clock=fm.CLOCK)
    feeds = []
    h.wdt_feed = lambda: feeds.append(fm.CLOCK.now)     # the watchdog's feeds, dated
    return h, fw_main.make_board(h, cfg, fw_main.board_uid(cfg), flash), feeds


def suite_gate2(tmp):
    """Protocol 2.1 on a gate board (MachineHAL on the stand-in rp2, an RC gate that
    leaks): calibrate_actuator over the bus measures the table, stores it, uses it; a
    power cycle reads it back (source 1); a leaking gate holds its learned value across
    learns and across idle time (the main loop's hold); a board whose gate_cal.json
    cannot be written answers storage and keeps its nominal table."""
    fm = _fake()
    node = fm.GateNode(10, 11, 26, leak_ohm=1e8)
    fm.GATE[0] = node
    gcal, cal = tmp + "/g2_gate_cal.json", tmp + "/g2_calib.bin"
    _rm(gcal, gcal + ".tmp", cal)
    cfg = tr_config.resolve({"protocol": 2, "kind": "mosfet", "initial_state": 3000000,
                             "port": "rp2", "uid_hex": "0123456789abcdef",
                             "calibration_file": cal, "gate_cal_file": gcal})
    h, b, feeds = _board2(fm, cfg, tmp)
    drv = h.actuator.driver
    out = {"suite": "gate2", "tau_us": node.tau_us, "tau_leak_us": node.tau_leak_us,
           "rail_uv": node.rail_uv}
    out["nominal"] = _req2(b, 1, 21)
    out["refused_broadcast"] = _req2(b, 2, 21, dst=255)
    out["before"] = _req2(b, 3, 2)
    out["true_before"] = node.at(fm.CLOCK.now)
    t0 = fm.CLOCK.now
    del feeds[:]
    out["calibrated"] = _req2(b, 4, 20)
    out["calibrate_us"] = fm.CLOCK.now - t0
    out["feeds_us"] = [t - t0 for t in feeds]
    out["after"] = _req2(b, 5, 2)
    out["true_after"] = node.at(fm.CLOCK.now)
    out["read"] = _req2(b, 6, 21)
    out["in_use"] = list(drv.cal.fields())
    out["resolution_uv"] = drv.resolution_uv(drv.v_uv, True)
    out["stored"] = hal_load_cal(gcal)
    # a power cycle: a new HAL and board from the same files
    h, b, feeds = _board2(fm, cfg, tmp)
    drv = h.actuator.driver
    out["restarted"] = _req2(b, 7, 21)
    out["restarted_in_use"] = list(drv.cal.fields())
    # learns 2 s apart on the leaking gate (+90 uV each: the continuous rule, c = (300 mV)^2)
    _nodes(fm, (400000, 100000, 200000, 200000))
    out["configure"] = _req2(b, 8, 4, struct.pack("<BIqq", 3, 65536, GAIN_90UV, 0))
    t_start = b.target
    learns = []
    for i in range(10):
        fm.CLOCK.sleep_ms(2000)
        before = node.at(fm.CLOCK.now)
        rep = _req2(b, 9 + i, 6)
        learns.append({"reply": rep, "target": b.target, "true_before": before,
                       "true_after": node.at(fm.CLOCK.now)})
    out["learns"] = learns
    out["target_start"] = t_start
    # idle for 3 s in the main loop (1 ms per idle pass): the hold restores the gate
    idle = []
    for _ in range(30):
        fw_main.run(b, h, max_loops=100)
        idle.append([fm.CLOCK.now, node.at(fm.CLOCK.now), b.target, b.state])
    out["idle"] = idle
    # a board whose gate_cal.json cannot be written
    fm = _fake()
    fm.GATE[0] = fm.GateNode(10, 11, 26, leak_ohm=1e8)
    cfg = tr_config.resolve({"protocol": 2, "kind": "mosfet", "initial_state": 3000000,
                             "port": "rp2", "uid_hex": "0123456789abcdef",
                             "calibration_file": cal,
                             "gate_cal_file": "/nonexistent-dir/gate_cal.json"})
    h, b, feeds = _board2(fm, cfg, tmp)
    out["failing_before"] = _req2(b, 1, 21)
    out["failing_calibrate"] = _req2(b, 2, 20)
    out["failing_after"] = _req2(b, 3, 21)
    out["failing_in_use"] = list(h.actuator.driver.cal.fields())
    out["failing_leak"] = h.actuator.driver.leak_uv_per_s
    _done()
    emit(out)


def _try(f):
    """f()'s value, or the exception's repr (the loop's own handler would print it)."""
    try:
        return f()
    except Exception as exc:    # noqa: BLE001 (reported to the test)
        return repr(exc)


def suite_wrap(tmp):
    """The port's ticks wrap (fake_machine.Clock.wrap_in: ticks_us and ticks_ms 2^30
    apart from the wrap, refusing values that are not ticks): a protocol-1 broadcast
    answered in its slot across the wrap, protocol-2 replies dated from the receive
    interrupt's stamp across it, a learn pulse across it, and SimHAL's real-time clock
    (on the same ticks) waiting and keeping uptime across it."""
    fm = _fake()
    out = {"suite": "wrap"}
    cal = tmp + "/w_calib.bin"
    _rm(cal)
    cfg = tr_config.resolve({"protocol": 1, "address": 9, "kind": "digipot", "initial_state": 30,
                             "port": "rp2", "wdt_ms": 0, "uid_hex": "0123456789abcdef",
                             "calibration_file": cal})
    h = hal.MachineHAL(cfg, clock=fm.CLOCK)
    b = fw_main.make_board(h, cfg, fw_main.board_uid(cfg))
    fm.CLOCK.wrap_in(5000)              # inside slot 9 (18 ms)
    fm.EVENTS.clear()
    t0 = fm.CLOCK.now
    fm.RX.extend(P.encode_frame(255, 0, 1, P.CMD_READ_STATE))
    err = _try(lambda: fw_main.step(b, h))
    out["p1"] = {"sent": err, "writes": [[hx(e[1]), e[2] - t0] for e in fm.EVENTS
                                         if e[0] == "uart_write"]}
    # a learn pulse whose edges are on both sides of the wrap: one learn, no glitch
    pin = cfg["learn"]["pin"]
    c0 = list(h.trigger_counts())
    fm.CLOCK.wrap_in(50)
    fm.drive(pin, 1)
    fm.CLOCK.sleep_us(100)
    fm.drive(pin, 0)
    c1 = list(h.trigger_counts())
    out["trigger"] = [c1[0] - c0[0], c1[1] - c0[1]]
    # protocol 2 on rp2: the stamp 300 us before the wrap, the reply's start after it
    import tr_protocol2 as P2
    cfg2 = tr_config.resolve({"protocol": 2, "kind": "digipot", "initial_state": 30,
                              "port": "rp2", "wdt_ms": 0, "uid_hex": "0123456789abcdef",
                              "calibration_file": cal})
    h2, b2, _ = _board2(fm, cfg2, tmp)
    rows = []
    for seq, dst, cmd in ((1, 5, 2), (2, 255, 1)):
        req = P2.encode_frame(dst, 0, seq, cmd, b"")
        end = fm.CLOCK.now + 10000
        fm.advance_to(end - 200)
        fm.CLOCK.wrap_in(500)
        fm.EVENTS.clear()
        fm.receive(h2.uart, b"\x00" + req, end)
        fm.advance_to(end + 40)
        err = _try(lambda: fw_main.step(b2, h2))
        rows.append([seq, err, [[hx(e[1]), e[2] - end] for e in fm.EVENTS if e[0] == "uart_write"]])
    out["p2"] = rows
    out["char_us"] = h2._char_us
    # SimHAL in real time, on these ticks
    names = ("_ticks_us", "_ticks_ms", "_ticks_diff", "_ticks_add", "_sleep_us", "_sleep_ms")
    saved = [getattr(hal, n) for n in names]
    c = fm.CLOCK
    for n, f in zip(names, (c.ticks_us, c.ticks_ms, c.ticks_diff, c.ticks_add, c.sleep_us,
                            c.sleep_ms)):
        setattr(hal, n, f)
    try:
        sim = hal.SimHAL(real_time=True)
        c.wrap_in(3000)
        sim.restart_clock()
        t0 = c.now
        t = _try(lambda: sim.ticks_add(sim.ticks_us(), 5000))
        out["sim_wait_us"] = _try(lambda: sim.wait_until_us(t) or c.now - t0)
        c.sleep_ms(10)
        out["sim_uptime_ms"] = _try(sim.uptime_ms)
        out["sim_elapsed_ms"] = (c.now - t0) // 1000
    finally:
        for n, f in zip(names, saved):
            setattr(hal, n, f)
    _done()
    emit(out)


def _locked(f, n):
    """f() n times under micropython.heap_lock (fake_machine's parts unlocked inside):
    None, or the first exception's name (MemoryError: the firmware allocated)."""
    import gc
    import micropython
    import fake_machine as fm
    gc.collect()
    err = None
    fm.HEAP_LOCKED[0] = True
    micropython.heap_lock()
    try:
        for _ in range(n):
            f()
    except Exception as exc:    # noqa: BLE001
        err = exc
    micropython.heap_unlock()
    fm.HEAP_LOCKED[0] = False
    return None if err is None else type(err).__name__ + ": " + str(err)


def suite_hotloop(tmp):
    """MicroPython only: protocol 2's main-loop pass on MachineHAL (a leaking gate board
    on the stand-in rp2, PIO pulses, and on the stand-in esp32, RMT pulses) under
    micropython.heap_lock, the parts' own work (the simulated gate, PIO, RMT and ADC)
    excepted: idle passes (the HAL's methods resolved once, the hold's wait in small
    ints, the glitch counter not read per pass), and learn passes on the real path: the
    trigger's interrupt (snapshot), take(), the rule, GateActuator's one-pulse step with
    the read-backs. Without micropython: the interpreter's name."""
    try:
        import micropython      # noqa: F401
    except ImportError:
        emit({"suite": "hotloop", "interpreter": "cpython"})
        return
    out = {"suite": "hotloop", "interpreter": "micropython"}
    for port in ("rp2", "esp32"):
        out[port] = _hotloop(tmp, port)
    _done()
    emit(out)


def _hotloop(tmp, port):
    fm = _fake()
    fm.PORT[0] = port
    gcal, cal = tmp + "/hl_gate_cal.json", tmp + "/hl_calib.bin"
    _rm(gcal, gcal + ".tmp", cal)
    c = {"protocol": 2, "kind": "mosfet", "initial_state": 3000000, "port": port,
         "wdt_ms": 0, "uid_hex": "0123456789abcdef", "calibration_file": cal,
         "gate_cal_file": gcal}
    if port == "esp32":
        node = fm.GateNode(25, 26, 32, leak_ohm=1e8)
        c["nodes"] = {"adc": "internal", "pins": [36, 39, 34, 35], "samples": 4}
        c["actuator"] = {"charge": 25, "discharge": 26, "readback": 32,
                         "readback_samples": 16}
        for pin, uv in ((36, 400000), (39, 100000), (34, 200000), (35, 200000)):
            fm.set_adc_uv(pin, uv)
    else:
        node = fm.GateNode(10, 11, 26, leak_ohm=1e8)
        _nodes(fm, (400000, 100000, 200000, 200000))
    fm.GATE[0] = node
    cfg = tr_config.resolve(c)
    h, b, _ = _board2(fm, cfg, tmp)
    del h.wdt_feed              # the HAL's own feed, not _board2's counting one
    drv = h.actuator.driver
    drv.leak_uv_per_s = -13000
    _req2(b, 1, 4, struct.pack("<BIqq", 3, 65536, GAIN_90UV * 20, 0))
    mk = getattr(fw_main, "stepper", None)     # (a firmware without it: step each pass)
    one = mk(b, h) if mk is not None else (lambda: fw_main.step(b, h))
    idle = h.idle
    pin = cfg["learn"]["pin"]
    out = {}

    def idle_pass():
        if not one():
            idle()
    for _ in range(3):
        idle_pass()
    p0 = drv.pulses
    out["idle"] = _locked(idle_pass, 400)
    out["idle_pulses"] = drv.pulses - p0      # the hold restored the gate meanwhile
    h._ms = 0x3FFFFFFF - 100    # the ms counter's epoch passes during the passes
    out["idle_epoch"] = _locked(idle_pass, 300)

    def learn_pass():
        fm.drive(pin, 1)
        fm.CLOCK.now += 200
        fm.drive(pin, 0)
        one()
    t0 = b.target
    l0 = b.learns
    p0 = drv.pulses
    learn_pass()                # once unlocked (first-use work)
    out["learn"] = _locked(learn_pass, 30)
    out["learns"] = b.learns - l0
    out["target_moved_uv"] = b.target - t0
    out["learn_pulses"] = drv.pulses - p0
    out["carried_uv"] = drv.carried_uv
    out["residue"] = b.residue
    out["true_uv"] = node.at(fm.CLOCK.now)
    out["target"] = b.target
    out["shoot_through"] = len([e for e in fm.EVENTS if e[0] == "gate_shoot_through"])
    return out


def suite_rmt(tmp):
    """The ESP32 gate's RmtPulser against the strict RMT: two pulses back to back on one
    channel (the second is started only once the first has ended, without blocking in
    write_pulses), a pulse while the channel stays busy (an error, not a lost pulse),
    and (MicroPython) a pulse under heap_lock."""
    fm = _fake()
    fm.PORT[0] = "esp32"
    import tr_gate
    p = tr_gate.RmtPulser(fm, 25, 0)
    fm.EVENTS.clear()
    t0 = fm.CLOCK.now
    p.start(5000)
    p.start(100)
    ev = [[e[0], e[2] - t0, e[3] - t0] for e in fm.EVENTS if e[0] in ("rmt", "rmt_blocked")]
    out = {"suite": "rmt", "back_to_back": ev}
    fm.CLOCK.sleep_us(1000)
    p.rmt.busy_until_us = fm.CLOCK.now + 10000000      # a channel that never ends
    out["stuck"] = _try(lambda: p.start(100))
    p.rmt.busy_until_us = 0
    try:
        import micropython      # noqa: F401
        out["locked"] = _locked(lambda: p.start(100), 5)
    except ImportError:
        out["locked"] = "cpython"
    _done()
    emit(out)


def suite_gate_paths(tmp):
    """Which of GateDriver's moves protocol 2 takes on a gate board (MachineHAL, rp2):
    a learn the one-approach step (as protocol 1), set_state the closed loop's set; and
    a set_state with a table whose slope is 1 nV/us (an approach would ask for 10^9 us
    per volt): each approach's pulse bounded (5 RC), the iterations bounded."""
    import tr_gate
    fm = _fake()
    fm.GATE[0] = fm.GateNode(10, 11, 26, leak_ohm=1e9)
    gcal, cal = tmp + "/gp_gate_cal.json", tmp + "/gp_calib.bin"
    _rm(gcal, gcal + ".tmp", cal)
    cfg = tr_config.resolve({"protocol": 2, "kind": "mosfet", "initial_state": 3000000,
                             "port": "rp2", "wdt_ms": 0, "uid_hex": "0123456789abcdef",
                             "calibration_file": cal, "gate_cal_file": gcal})
    h, b, _ = _board2(fm, cfg, tmp)
    drv = h.actuator.driver
    calls = {"set": 0, "step": 0}
    d_set = drv.set
    d_step = drv.step

    def c_set(t, feed=None):
        calls["set"] += 1
        return d_set(t, feed)

    def c_step(d, feed=None):
        calls["step"] += 1
        return d_step(d, feed)
    drv.set = c_set
    drv.step = c_step
    out = {"suite": "gate_paths", "rc_us": h.actuator.rc_us,
           "max_iterations": drv.max_iterations}
    _nodes(fm, (400000, 100000, 200000, 200000))
    _req2(b, 1, 4, struct.pack("<BIqq", 3, 65536, GAIN_90UV * 20, 0))
    t0 = b.target
    for i in range(5):
        _req2(b, 2 + i, 6)
    out["learn_calls"] = [calls["set"], calls["step"]]
    out["learn_target_moved"] = b.target - drv.target_uv, b.target - t0
    calls["set"] = calls["step"] = 0
    _req2(b, 10, 3, struct.pack("<i", 3500000))
    out["set_state_calls"] = [calls["set"], calls["step"]]
    pts = tr_gate.CAL_POINTS_UV
    drv.use(tr_gate.GateCalibration([[v, 1] for v in pts], [[v, 1] for v in pts], 0))
    p0 = drv.pulse_us_total
    n0 = drv.pulses
    t0 = fm.CLOCK.now
    _req2(b, 11, 3, struct.pack("<i", 2500000))
    out["absurd"] = {"pulse_us": drv.pulse_us_total - p0, "pulses": drv.pulses - n0,
                     "took_us": fm.CLOCK.now - t0, "max_pulse_us": drv.max_pulse_us}
    _done()
    emit(out)


SUITES = {"ports": suite_ports, "machine_hal": suite_machine_hal, "gate": suite_gate, "trigger": suite_trigger,
          "gate2": suite_gate2, "wrap": suite_wrap, "hotloop": suite_hotloop, "rmt": suite_rmt,
          "gate_paths": suite_gate_paths}
