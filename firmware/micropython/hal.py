# twinrig edge board: hardware abstraction.
#
# Two implementations of one interface:
#
#   MachineHAL(config)   the board's hardware through MicroPython's `machine` (ADC,
#                        Pin, UART, WDT); imported lazily, so this module also loads
#                        on CPython and on ports without `machine`.
#   SimHAL(...)          a simulated board for tests and the host's emulator:
#                        settable node voltages, a virtual clock, a byte queue for
#                        the UART, a recorded actuator, an in-memory or file store.
#
# The interface the board application (tr_board.Board) and main.py use:
#
#   read_nodes_uv()            the four node voltages (a_F, b_F, a_C, b_C), int uV,
#                              raw (the board subtracts the stored offsets)
#   corrected_nodes_uv(offs)   the same with the offsets subtracted
#   set_state(state, previous) drive the actuator to the state (digipot tap, or
#                              gate voltage in uV by a charge/discharge pulse);
#                              previous is None at power-on
#   load_calibration()         the four stored offsets (uV); zeros if none/corrupt
#   store_calibration(offs)    persist them; True on success, False on failure
#   uptime_ms(), restart_clock()   ms since the application's (re)start
#   ticks_us(), wait_until_us(t)   microsecond timing for reply slots
#   uart_read()                received bytes (b"" if none)
#   uart_write(data)           send with the RS-485 driver enabled (DE high during
#                              the whole frame, low again after the last stop bit)
#   learn_edge()               True once per edge seen on the learn-trigger pin
#   wdt_feed()                 feed the watchdog
#   idle()                     wait a little (the main loop's pace)

import struct

try:
    import time
    _ticks_ms = time.ticks_ms
    _ticks_us = time.ticks_us
    _ticks_diff = time.ticks_diff
    _ticks_add = time.ticks_add
    _sleep_us = time.sleep_us
    _sleep_ms = time.sleep_ms
except AttributeError:  # CPython
    import time

    def _ticks_ms():
        return int(time.monotonic() * 1000)

    def _ticks_us():
        return int(time.monotonic() * 1000000)

    def _ticks_diff(a, b):
        return a - b

    def _ticks_add(a, d):
        return a + d

    def _sleep_us(us):
        if us > 0:
            time.sleep(us / 1000000)

    def _sleep_ms(ms):
        if ms > 0:
            time.sleep(ms / 1000)

try:
    import os
except ImportError:  # pragma: no cover
    import uos as os

M32 = 0xFFFFFFFF
CAL_MAGIC = b"TRC1"
CAL_FORMAT = "<iiii"


def _crc16(data):
    # CRC-16/CCITT-FALSE, bitwise (only used for the small calibration record)
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


# ---------------------------------------------------------------- calibration store


class CalibrationFile:
    """Non-volatile calibration constants in a small file: magic b"TRC1", four i32
    offsets little-endian, CRC-16 big-endian. Written to ``path + ".tmp"`` and then
    renamed over ``path``, so a power cut leaves the old or the new record, never a
    torn one; a missing or corrupt file reads as zeros."""

    def __init__(self, path="calib.bin"):
        self.path = path

    def _read(self, path):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        if len(data) != 22 or data[:4] != CAL_MAGIC:
            return None
        body = data[:20]
        if _crc16(body) != ((data[20] << 8) | data[21]):
            return None
        return list(struct.unpack(CAL_FORMAT, body[4:]))

    def load(self):
        v = self._read(self.path)
        if v is None:  # a store interrupted between remove and rename (FAT)
            v = self._read(self.path + ".tmp")
        return v if v is not None else [0, 0, 0, 0]

    def store(self, offsets):
        body = CAL_MAGIC + struct.pack(CAL_FORMAT, *offsets)
        c = _crc16(body)
        record = body + bytes((c >> 8, c & 0xFF))
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(record)
            if self._read(tmp) != list(offsets):
                return False
            try:
                os.rename(tmp, self.path)   # atomic on littlefs
            except OSError:                 # FAT will not rename over a file
                os.remove(self.path)
                os.rename(tmp, self.path)
        except OSError:
            return False
        return self._read(self.path) == list(offsets)


class MemoryStore:
    """Calibration kept in RAM (the simulation's default); ``fails`` makes every
    store fail (the board then answers ``storage``)."""

    def __init__(self, offsets=(0, 0, 0, 0), fails=False):
        self.offsets = list(offsets)
        self.fails = fails

    def load(self):
        return list(self.offsets)

    def store(self, offsets):
        if self.fails:
            return False
        self.offsets = list(offsets)
        return True


# ---------------------------------------------------------------- shared behaviour


class _BaseHAL:
    store = None

    def corrected_nodes_uv(self, offsets):
        v = self.read_nodes_uv()
        return [v[0] - offsets[0], v[1] - offsets[1], v[2] - offsets[2], v[3] - offsets[3]]

    def load_calibration(self):
        return self.store.load()

    def store_calibration(self, offsets):
        try:
            return bool(self.store.store(offsets))
        except Exception:
            return False


# ---------------------------------------------------------------- simulation


class SimHAL(_BaseHAL):
    """Simulated hardware.

    Args:
        node_uv: the four node voltages (a_F, b_F, a_C, b_C) in uV, or a callable
            returning them (called on every reading).
        uptime_ms: when given, uptime_ms() always returns it (a frozen clock, as in
            the golden vectors); else uptime runs on the virtual clock from the last
            restart_clock().
        calibration_uv: offsets already in the store at power-on.
        storage_fails: every store_calibration fails.
        calibration_path: keep the offsets in a CalibrationFile at this path
            instead of in RAM.
        real_time: the clock follows the interpreter's monotonic clock (for the
            host's emulator) instead of the virtual one.

    Test hooks: inject(data) queues UART bytes (read back in pieces of at most
    ``rx_piece`` bytes; reads holds (time_us, bytes) per read), tx holds (time_us, bytes, de_during_write) per write,
    actuations holds (state, previous) per actuator move, trigger() latches a learn
    edge, advance_ms(ms) moves the virtual clock, wdt_feeds counts the feeds.
    """

    def __init__(self, node_uv=(0, 0, 0, 0), uptime_ms=None, calibration_uv=(0, 0, 0, 0),
                 storage_fails=False, calibration_path=None, rx_piece=64, real_time=False):
        self.node_uv = node_uv
        self.frozen_uptime_ms = uptime_ms
        if calibration_path is not None:
            self.store = CalibrationFile(calibration_path)
            if storage_fails:
                self.store.path = "/nonexistent-dir/calib.bin"
        else:
            self.store = MemoryStore(calibration_uv, storage_fails)
        self.real_time = real_time
        self.now_us = 0
        self.t0_us = self.ticks_us()
        self.rx = bytearray()
        self.rx_piece = rx_piece
        self.tx = []
        self.reads = []
        self.de = 0
        self.actuations = []
        self.actuator_state = None
        self.edges = 0
        self.wdt_feeds = 0

    # clock
    def ticks_us(self):
        if self.real_time:
            return _ticks_us()
        return self.now_us

    def wait_until_us(self, t):
        if self.real_time:
            d = t - _ticks_us()
            if d > 0:
                _sleep_us(d)
        elif t > self.now_us:
            self.now_us = t

    def advance_ms(self, ms):
        self.now_us += int(ms) * 1000

    def uptime_ms(self):
        if self.frozen_uptime_ms is not None:
            return self.frozen_uptime_ms & M32
        return ((self.ticks_us() - self.t0_us) // 1000) & M32

    def restart_clock(self):
        self.t0_us = self.ticks_us()

    def idle(self):
        if self.real_time:
            _sleep_ms(1)
        else:
            self.now_us += 1000

    # analog
    def read_nodes_uv(self):
        v = self.node_uv() if callable(self.node_uv) else self.node_uv
        return [int(v[0]), int(v[1]), int(v[2]), int(v[3])]

    # actuator
    def set_state(self, state, previous):
        self.actuations.append((state, previous))
        self.actuator_state = state

    # bus
    def inject(self, data):
        self.rx.extend(data)

    def uart_read(self):
        if not self.rx:
            return b""
        n = self.rx_piece
        data = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        self.reads.append((self.now_us, data))
        return data

    def uart_write(self, data):
        self.de = 1
        self.tx.append((self.now_us, bytes(data), self.de))
        self.now_us += (len(data) * 10 * 1000000) // 115200 + 1
        self.de = 0

    # learn trigger
    def trigger(self):
        self.edges += 1

    def learn_edge(self):
        if self.edges:
            self.edges -= 1
            return True
        return False

    # watchdog
    def wdt_feed(self):
        self.wdt_feeds += 1


# ---------------------------------------------------------------- real hardware


class X9CDigipot:
    """X9C10x-style digital potentiometer (100 taps, up/down interface): CS active
    low, U/D selects the direction, a falling edge of INC while CS is low moves the
    wiper one tap. At power-on the wiper is driven to tap 0 (n_taps steps down, the
    chip stops at its end) and then up to the state. CS is raised while INC is low,
    so the wiper position is not written to the chip's own non-volatile memory (the
    board owns the state)."""

    def __init__(self, machine, cs, ud, inc, n_taps=100):
        Pin = machine.Pin
        self.cs = Pin(cs, Pin.OUT, value=1)
        self.ud = Pin(ud, Pin.OUT, value=0)
        self.inc = Pin(inc, Pin.OUT, value=1)
        self.n_taps = n_taps
        self.tap = None

    def _steps(self, up, n):
        # INC is high on entry; each falling edge of INC with CS low is one step.
        # After the last step INC stays low while CS rises (no store), then rises.
        if n <= 0:
            return
        self.ud.value(1 if up else 0)
        _sleep_us(3)
        self.cs.value(0)
        _sleep_us(1)
        for i in range(n):
            self.inc.value(0)
            _sleep_us(2)
            if i < n - 1:
                self.inc.value(1)
                _sleep_us(2)
        self.cs.value(1)
        _sleep_us(1)
        self.inc.value(1)

    def set(self, tap, previous, feed=None):
        if self.tap is None or previous is None:
            self._steps(False, self.n_taps)
            self.tap = 0
        d = tap - self.tap
        if d:
            self._steps(d > 0, abs(d))
        self.tap = tap


class GateCharger:
    """Gen-2 MOSFET gate: the gate capacitor C charges through R from the charge
    pin (towards ``rail_uv``) or discharges through R into the discharge pin
    (towards 0). A move from v0 to v1 is one pulse of RC * ln((Vr - v0)/(Vr - v1))
    (charging) or RC * ln(v0 / v1) (discharging), cut into pulses of at most
    ``max_pulse_us`` with the watchdog fed in between. At power-on the gate is
    discharged for 5 RC, then charged to the state. ``rc_us`` = R * C in us
    (1 kOhm * 2.2 uF = 2200 us)."""

    def __init__(self, machine, charge, discharge, rc_us=2200, rail_uv=6000000,
                 max_pulse_us=20000):
        Pin = machine.Pin
        self.charge = Pin(charge, Pin.OUT, value=0)
        self.discharge = Pin(discharge, Pin.OUT, value=0)
        self.rc_us = rc_us
        self.rail_uv = rail_uv
        self.max_pulse_us = max_pulse_us
        self.v_uv = None

    def _pulse(self, pin, us, feed):
        while us > 0:
            t = us if us < self.max_pulse_us else self.max_pulse_us
            pin.value(1)
            _sleep_us(t)
            pin.value(0)
            us -= t
            if feed is not None:
                feed()

    def set(self, v1, previous, feed=None):
        import math
        if self.v_uv is None or previous is None:
            self._pulse(self.discharge, 5 * self.rc_us, feed)
            self.v_uv = 0
        v0 = self.v_uv
        vr = self.rail_uv
        v1 = min(max(v1, 1), vr - 1)
        if v1 > v0:
            us = int(self.rc_us * math.log((vr - v0) / (vr - v1)))
            self._pulse(self.charge, us, feed)
        elif v1 < v0:
            us = int(self.rc_us * math.log(max(v0, 1) / v1))
            self._pulse(self.discharge, us, feed)
        self.v_uv = v1


class MachineHAL(_BaseHAL):
    """The board's hardware (MicroPython `machine`). ``config`` (a dict, see
    main.DEFAULT_CONFIG):

        adc: four ADC pins (a_F, b_F, a_C, b_C); adc_samples: readings averaged;
        adc_scale: (num, den) applied to the pin voltage (input dividers);
        actuator: {"type": "x9c", "cs", "ud", "inc", "n_taps"} or
                  {"type": "gate", "charge", "discharge", "rc_us", "rail_uv"};
        learn_pin: the learn-trigger input (rising edge); learn_pull: "down"/"up"/None;
        uart: {"id", "baudrate", "tx", "rx", "de"} (de: driver-enable output);
        wdt_ms: watchdog timeout (0: no watchdog);
        calibration_file: path of the calibration record.
    """

    def __init__(self, config):
        import machine
        self.machine = machine
        Pin = machine.Pin
        self.config = config
        self.store = CalibrationFile(config.get("calibration_file", "calib.bin"))
        # ADC
        self.adcs = [machine.ADC(Pin(p)) for p in config["adc"]]
        self.adc_samples = max(1, config.get("adc_samples", 16))
        num, den = config.get("adc_scale", (1, 1))
        self.adc_num = num
        self.adc_den = den
        self.adc_vref_uv = config.get("adc_vref_uv", 3300000)
        self._has_uv = hasattr(self.adcs[0], "read_uv")
        # actuator
        act = config["actuator"]
        if act["type"] == "x9c":
            self.actuator = X9CDigipot(machine, act["cs"], act["ud"], act["inc"],
                                       act.get("n_taps", 100))
        else:
            self.actuator = GateCharger(machine, act["charge"], act["discharge"],
                                        act.get("rc_us", 2200), act.get("rail_uv", 6000000),
                                        act.get("max_pulse_us", 20000))
        # learn trigger
        pull = config.get("learn_pull", "down")
        pull = Pin.PULL_DOWN if pull == "down" else Pin.PULL_UP if pull == "up" else None
        self.learn_pin = Pin(config["learn_pin"], Pin.IN, pull)
        self._edges = 0
        self._last_level = self.learn_pin.value()
        self._irq = False
        try:
            self.learn_pin.irq(trigger=Pin.IRQ_RISING, handler=self._on_edge)
            self._irq = True
        except Exception:
            pass  # polled in learn_edge()
        # RS-485
        u = config["uart"]
        self.baudrate = u.get("baudrate", 115200)
        self.de = Pin(u["de"], Pin.OUT, value=0)
        try:
            self.uart = machine.UART(u["id"], baudrate=self.baudrate, tx=Pin(u["tx"]),
                                     rx=Pin(u["rx"]), timeout=0, rxbuf=512)
        except (TypeError, ValueError):  # ports without some of these keywords
            self.uart = machine.UART(u["id"], baudrate=self.baudrate, tx=Pin(u["tx"]),
                                     rx=Pin(u["rx"]))
        self._char_us = (10 * 1000000) // self.baudrate + 1
        # clock
        self._ms = 0
        self._last_ticks = _ticks_ms()
        self._t0 = 0
        # watchdog last, once everything above worked
        wdt_ms = config.get("wdt_ms", 2000)
        self.wdt = machine.WDT(timeout=wdt_ms) if wdt_ms else None

    # clock: a ms counter that does not wrap with the port's ticks period
    def _millis(self):
        t = _ticks_ms()
        self._ms += _ticks_diff(t, self._last_ticks)
        self._last_ticks = t
        return self._ms

    def uptime_ms(self):
        return (self._millis() - self._t0) & M32

    def restart_clock(self):
        self._t0 = self._millis()

    def ticks_us(self):
        return _ticks_us()

    def wait_until_us(self, t):
        d = _ticks_diff(t, _ticks_us())
        if d > 0:
            _sleep_us(d)

    def idle(self):
        self._millis()
        _sleep_ms(1)

    # analog
    def _read_uv(self, adc):
        n = self.adc_samples
        s = 0
        if self._has_uv:
            for _ in range(n):
                s += adc.read_uv()
        else:
            for _ in range(n):
                s += adc.read_u16() * self.adc_vref_uv // 65535
        return (s // n) * self.adc_num // self.adc_den

    def read_nodes_uv(self):
        return [self._read_uv(a) for a in self.adcs]

    # actuator
    def set_state(self, state, previous):
        self.actuator.set(state, previous, self.wdt_feed)

    # bus
    def uart_read(self):
        n = self.uart.any()
        if not n:
            return b""
        return self.uart.read(n) or b""

    def uart_write(self, data):
        self.de.value(1)
        _sleep_us(self._char_us // 10 + 1)   # driver enable settle
        self.uart.write(data)
        if hasattr(self.uart, "flush"):
            self.uart.flush()
        else:
            _sleep_us(len(data) * self._char_us)
        if hasattr(self.uart, "txdone"):
            t = _ticks_us()
            while not self.uart.txdone() and _ticks_diff(_ticks_us(), t) < 20000:
                pass
        _sleep_us(self._char_us)   # the last stop bit leaves the shift register
        self.de.value(0)

    # learn trigger
    def _on_edge(self, pin):
        self._edges += 1

    def learn_edge(self):
        if not self._irq:
            level = self.learn_pin.value()
            if level and not self._last_level:
                self._edges += 1
            self._last_level = level
        if self._edges:
            irq_state = self.machine.disable_irq()
            self._edges -= 1
            self.machine.enable_irq(irq_state)
            return True
        return False

    # watchdog
    def wdt_feed(self):
        if self.wdt is not None:
            self.wdt.feed()
