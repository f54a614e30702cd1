# twinrig edge board: hardware abstraction.
#
# Two implementations of one interface:
#
#   MachineHAL(config)   the board's hardware through MicroPython's `machine` (ADC,
#                        SPI, Pin, UART, WDT; rp2 PIO or esp32 RMT pulses): the node
#                        ADC in tr_adc, the learn trigger in tr_trigger, the actuators
#                        in tr_digipot and tr_gate; imported lazily, so this module also
#                        loads on CPython and on ports without `machine`.
#   SimHAL(...)          a simulated board for tests and the host's emulator:
#                        settable node voltages, a virtual clock, a byte queue for
#                        the UART, a recorded actuator, an in-memory or file store.
#
# The interface the board application (tr_board.Board) and main.py use:
#
#   read_nodes_uv()            the four node voltages (a_F, b_F, a_C, b_C), int uV,
#                              raw (the board subtracts the stored offsets)
#   corrected_nodes_uv(offs)   the same with the offsets subtracted
#   read_nodes_into(buf)       the same into a caller's buffer of four (no allocation
#                              on the board's own path)
#   supply_uv(), temperature_mdegc()   the board's supply and temperature (telemetry)
#   set_state(state, previous, learn=False)
#                              drive the actuator to the state (digipot tap, or gate
#                              voltage in uV); previous is None at power-on; learn:
#                              a learn's change, state - previous (protocol 1: the
#                              state before; protocol 2: the target before), which a
#                              gate adds to its target with one pulse at most and
#                              carries what it cannot apply yet (GateDriver.step).
#                              Returns the state reached (a gate's measured voltage, a
#                              digipot's tap) or None (an ideal actuator)
#   load_calibration()         the four stored offsets (uV); zeros if none/corrupt
#   store_calibration(offs)    persist them; True on success, False on failure
#   uptime_ms(), restart_clock()   ms since the application's (re)start
#   ticks_us(), ticks_add(t, d), wait_until_us(t)
#                              microsecond timing for reply slots: ticks values, which
#                              wrap (MicroPython docs, time.ticks_add/ticks_diff); a
#                              reply's start is ticks_add(t, d), never t + d
#   uart_read()                received bytes (b"" if none)
#   uart_write(data)           send with the RS-485 driver enabled (DE high during
#                              the whole frame, low again after the last stop bit)
#   learn_edge()               the nodes' snapshot (four uV) of a learn-trigger pulse,
#                              or None
#   trigger_glitches()         (MachineHAL) edges the learn trigger refused, modulo
#                              2^30: an int attribute's read, for telemetry only
#   actuator_calibration()     protocol 2.1 ("Actuator calibration"): the gate's table
#                              in use as (source, fields): source 0 nominal (rc_us,
#                              rail_uv), 1 loaded from gate_cal.json or measured; fields
#                              the reply's 21 i32 (charge_gate_uv[5], charge_nv_per_us[5],
#                              discharge_gate_uv[5], discharge_nv_per_us[5],
#                              leak_uv_per_s). None: the actuator has none (wrong_kind)
#   calibrate_actuator()       measure the table (GateDriver.calibrate), the gate back
#                              at its target; store it (atomic) and use it: True; False
#                              when it could not be stored (the table before in use)
#   hold_actuator()            the main loop's idle pass: a gate restores what its leak
#                              took (GateDriver.hold); the gate read back, or None.
#                              None instead of a method where the actuator has no hold
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
    pulse (with the nodes' snapshot), advance_ms(ms) moves the virtual clock, wdt_feeds counts the feeds.
    """

    def __init__(self, node_uv=(0, 0, 0, 0), uptime_ms=None, calibration_uv=(0, 0, 0, 0),
                 storage_fails=False, calibration_path=None, rx_piece=64, real_time=False,
                 supply_uv=3300000, temperature_mdegc=25000):
        self.node_uv = node_uv
        self.supply = supply_uv
        self.temperature = temperature_mdegc
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
        self._ms = 0                # real time: ms since the start, from ticks_ms
        self._last_ms = _ticks_ms()
        self._t0_ms = 0
        self.rx = bytearray()
        self.rx_piece = rx_piece
        self.tx = []
        self.reads = []
        self.de = 0
        self.actuations = []
        self.actuator_state = None
        self.edges = []
        self.wdt_feeds = 0

    # clock
    def ticks_us(self):
        if self.real_time:
            return _ticks_us()
        return self.now_us

    def ticks_add(self, t, d):
        if self.real_time:
            return _ticks_add(t, d)
        return t + d            # the virtual clock does not wrap

    def wait_until_us(self, t):
        if self.real_time:
            d = _ticks_diff(t, _ticks_us())
            if d > 0:
                _sleep_us(d)
        elif t > self.now_us:
            self.now_us = t

    def advance_ms(self, ms):
        self.now_us += int(ms) * 1000

    def _millis(self):
        # real time: ms accumulated from ticks_ms differences (ticks wrap: MicroPython
        # docs, time.ticks_diff), so uptime does not wrap with the port's ticks period
        t = _ticks_ms()
        self._ms += _ticks_diff(t, self._last_ms)
        self._last_ms = t
        return self._ms

    def uptime_ms(self):
        if self.frozen_uptime_ms is not None:
            return self.frozen_uptime_ms & M32
        if self.real_time:
            return (self._millis() - self._t0_ms) & M32
        return ((self.now_us - self.t0_us) // 1000) & M32

    def restart_clock(self):
        self.t0_us = self.ticks_us()
        if self.real_time:
            self._t0_ms = self._millis()

    def idle(self):
        if self.real_time:
            self._millis()
            _sleep_ms(1)
        else:
            self.now_us += 1000

    # analog
    def read_nodes_uv(self):
        v = self.node_uv() if callable(self.node_uv) else self.node_uv
        return [int(v[0]), int(v[1]), int(v[2]), int(v[3])]

    def read_nodes_into(self, buf):
        v = self.node_uv() if callable(self.node_uv) else self.node_uv
        buf[0] = v[0]
        buf[1] = v[1]
        buf[2] = v[2]
        buf[3] = v[3]

    def supply_uv(self):
        return self.supply

    def temperature_mdegc(self):
        return self.temperature

    # actuator: ideal (reaches every state it is given, so the reply's state is the
    # request's: returns None)
    def set_state(self, state, previous, learn=False):
        if learn and state == previous:
            return None
        self.actuations.append((state, previous))
        self.actuator_state = state
        return None

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

    # learn trigger: a pulse's snapshot of the nodes, taken when it arrives
    def trigger(self):
        self.edges.append(self.read_nodes_uv())

    def learn_edge(self):
        if self.edges:
            return self.edges.pop(0)
        return None

    # watchdog
    def wdt_feed(self):
        self.wdt_feeds += 1


# ---------------------------------------------------------------- real hardware


class MachineHAL(_BaseHAL):
    """The board's hardware (MicroPython `machine`). ``config``: a tr_config.resolve()
    result (see tr_config.DEFAULT_CONFIG):

        port: "rp2" or "esp32" (ADC pins, attenuation, pulse timer);
        nodes: {"adc": "ads131m04", SPI pins, cs, drdy} or {"adc": "internal", "pins",
               "samples", "scale", "vref_uv", "atten"};
        actuator: {"type": "x9c" | "ad5245" | "gate", ...};
        learn: {"pin", "pull", "lockout_us"}; uart: {"id", "baudrate", "tx", "rx", "de"};
        wdt_ms: watchdog timeout (0: no watchdog); calibration_file, gate_cal_file.

    ``clock`` is the time module (ticks_us, ticks_ms, ticks_diff, sleep_us, sleep_ms);
    ``watchdog=False`` (safe mode) never starts the watchdog."""

    def __init__(self, config, clock=None, watchdog=True):
        import machine
        import tr_adc
        import tr_trigger
        self.machine = machine
        self.clock = clock if clock is not None else time
        Pin = machine.Pin
        self.config = config
        port = config.get("port")
        if port is None:
            import sys
            port = sys.platform
        self.port = port
        self.store = CalibrationFile(config.get("calibration_file", "calib.bin"))
        # node voltages
        n = config["nodes"]
        num, den = n.get("scale", (1, 1))
        if n["adc"] == "ads131m04":
            self.nodes = tr_adc.ADS131M04(machine, n["spi_id"], n["sck"], n["mosi"], n["miso"],
                                          n["cs"], n["drdy"], n.get("baudrate", 4000000),
                                          num, den)
        else:
            self.nodes = tr_adc.InternalADC(machine, port, n["pins"], num, den,
                                            n.get("vref_uv", 3300000), n.get("atten", "11db"),
                                            n.get("samples", 16), "nodes.pins")
        self._nodes_buf = [0, 0, 0, 0]
        # the watchdog's feed as one bound method, made once: handing self.wdt_feed to
        # the actuator on every move would make a bound-method object each time
        self._feed = self._feed_wdt
        self._eof = None
        # actuator
        self.actuator = self._actuator(machine, config["actuator"])
        self._hold = getattr(self.actuator, "hold", None)
        if self._hold is None:
            self.hold_actuator = None       # nothing for the main loop's idle pass
        # learn trigger: snapshot on the rising edge, learn on the falling edge
        lc = config["learn"]
        pull = lc.get("pull", "down")
        pull = Pin.PULL_DOWN if pull == "down" else Pin.PULL_UP if pull == "up" else None
        self.learn_pin = Pin(lc["pin"], Pin.IN, pull)
        c = self.clock
        self.trigger = tr_trigger.LearnTrigger(self.learn_pin, self.nodes,
                                               lc.get("lockout_us", 50), c.ticks_us,
                                               c.ticks_diff)
        self.trigger.irq(machine)
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
        self._flush = getattr(self.uart, "flush", None)
        self._txdone = getattr(self.uart, "txdone", None)
        self._char_us = (10 * 1000000) // self.baudrate + 1
        # clock: ms since the start in two small ints (below 2^30 and the count of
        # 2^30 ms epochs), so the idle pass's update never makes a long int
        self._ms = 0
        self._ms_hi = 0
        self._last_ticks = c.ticks_ms()
        self._t0 = 0
        # watchdog last, once everything above worked (never in safe mode)
        wdt_ms = config.get("wdt_ms", 2000)
        self.wdt = machine.WDT(timeout=wdt_ms) if (wdt_ms and watchdog) else None

    def _actuator(self, machine, act):
        import tr_digipot
        typ = act["type"]
        if typ == "x9c":
            return tr_digipot.X9CDigipot(machine, act["cs"], act["ud"], act["inc"],
                                         act.get("n_taps", 100))
        if typ == "ad5245":
            return tr_digipot.AD5245(machine, act["i2c_id"], act["sda"], act["scl"],
                                     act.get("addr", 44), act.get("n_taps", 256),
                                     act.get("freq", 400000))
        if typ == "gate":
            return GateActuator(machine, self.port, act, self.clock,
                                self.config.get("gate_cal_file", "gate_cal.json"))
        raise ValueError("actuator.type: unknown actuator %r" % (typ,))

    # clock: a ms counter that does not wrap with the port's ticks period
    def _tick_ms(self):
        c = self.clock
        t = c.ticks_ms()
        d = c.ticks_diff(t, self._last_ticks)
        self._last_ticks = t
        if d > 0x3FFFFFFF - self._ms:
            self._ms = d - (0x3FFFFFFF - self._ms) - 1
            self._ms_hi += 1
        else:
            self._ms += d

    def _millis(self):
        self._tick_ms()
        return (self._ms_hi << 30) + self._ms

    def uptime_ms(self):
        return (self._millis() - self._t0) & M32

    def restart_clock(self):
        self._t0 = self._millis()

    def ticks_us(self):
        return self.clock.ticks_us()

    def ticks_add(self, t, d):
        return self.clock.ticks_add(t, d)

    def wait_until_us(self, t):
        d = self.clock.ticks_diff(t, self.clock.ticks_us())
        if d > 0:
            self.clock.sleep_us(d)

    def idle(self):
        self._tick_ms()
        self.clock.sleep_ms(1)

    # analog
    def read_nodes_uv(self):
        b = self._nodes_buf
        self.nodes.read(b)
        return [b[0], b[1], b[2], b[3]]

    def read_nodes_into(self, buf):
        self.nodes.read(buf)

    def supply_uv(self):
        """VSYS in uV: rp2 ADC3 (GPIO29) through the Pico's 1:3 divider; 0 elsewhere."""
        if self.port != "rp2":
            return 0
        code = self.machine.ADC(29).read_u16()
        return code * 3 * 3300000 // 65535

    def temperature_mdegc(self):
        """The RP2040's sensor (ADC4): T = 27 - (V - 0.706 V) / 1.721 mV/degC, in
        milli-degrees Celsius (RP2040 datasheet 4.9.5); 0 elsewhere."""
        if self.port != "rp2":
            return 0
        v_uv = self.machine.ADC(4).read_u16() * 3300000 // 65535
        return 27000 - (v_uv - 706000) * 1000000 // 1721000

    # actuator: returns the state reached (measured on a gate)
    def set_state(self, state, previous, learn=False):
        return self.actuator.set(state, previous, self._feed, learn)

    def actuator_calibration(self):
        f = getattr(self.actuator, "calibration", None)
        return None if f is None else f()

    def calibrate_actuator(self):
        return self.actuator.calibrate(self._feed)

    def hold_actuator(self):
        return self._hold(self._feed)

    # bus
    def uart_read(self):
        n = self.uart.any()
        if not n:
            return b""
        return self.uart.read(n) or b""

    def uart_write(self, data):
        c = self.clock
        self.de.value(1)
        c.sleep_us(self._char_us // 10 + 1)   # driver enable settle
        self.uart.write(data)
        if self._flush is not None:
            self._flush()
        else:
            c.sleep_us(len(data) * self._char_us)
        if self._txdone is not None:
            t = c.ticks_us()
            while not self._txdone() and c.ticks_diff(c.ticks_us(), t) < 20000:
                pass
        c.sleep_us(self._char_us)   # the last stop bit leaves the shift register
        self.de.value(0)

    def start_eof_stamps(self):
        """Stamp the end of every burst the UART receives in its receive-timeout
        interrupt (rp2: UART.IRQ_RXIDLE, the RP2040's UART receive timeout, 32 bit
        periods after the last byte, datasheet 4.2.6) into a preallocated array, for
        protocol 2's reply times. True when the port has it (else the loop dates replies
        from its reads)."""
        U = self.machine.UART
        trig = getattr(U, "IRQ_RXIDLE", None)
        if self.port != "rp2" or trig is None or not hasattr(self.uart, "irq"):
            return False
        from array import array
        self._eof = array("i", (0, 0))     # ticks_us of the last interrupt, their count
        self._eof_seen = 0
        self._idle_us = -(-32 * 1000000 // self.baudrate)
        self._eof_wait_us = self._idle_us + 2 * self._char_us + 100
        self._eof_handler = self._on_rx_idle
        try:
            self.uart.irq(handler=self._eof_handler, trigger=trig, hard=True)
        except TypeError:
            self.uart.irq(handler=self._eof_handler, trigger=trig)
        return True

    def _on_rx_idle(self, uart):
        e = self._eof
        e[0] = self.clock.ticks_us()
        e[1] = (e[1] + 1) & 0x3FFFFFFF

    def last_byte_us(self, wait):
        """ticks_us of the last byte received, from the receive-timeout stamp; with
        ``wait`` (the bytes read end a frame) it waits for the stamp when the loop read
        them before the line went idle. None without a fresh stamp."""
        e = self._eof
        if e is None:
            return None
        c = self.clock
        if wait and e[1] == self._eof_seen:
            t0 = c.ticks_us()
            while e[1] == self._eof_seen and c.ticks_diff(c.ticks_us(), t0) < self._eof_wait_us:
                c.sleep_us(10)
        if e[1] == self._eof_seen:
            return None
        self._eof_seen = e[1]
        return c.ticks_add(e[0], -self._idle_us)

    def drop_echo(self):
        """Discard what the receiver heard while the board drove the bus (a transceiver
        whose receiver stays enabled hears the board's own reply; protocol 2 would take
        it for another board at its address)."""
        n = self.uart.any()
        if n:
            self.uart.read(n)

    # learn trigger
    def learn_edge(self):
        """The nodes' snapshot of the last complete learn pulse, or None."""
        return self.trigger.take(self.machine)

    def trigger_counts(self):
        """(learns, glitches) seen on the learn-trigger line (a new tuple: tests)."""
        return self.trigger.learns, self.trigger.glitches

    def trigger_glitches(self):
        """Edges the learn trigger refused (modulo 2^30), read when telemetry is asked
        for (tr_board2): an int, no allocation."""
        return self.trigger.glitches

    # watchdog
    def wdt_feed(self):
        if self.wdt is not None:
            self.wdt.feed()

    def _feed_wdt(self):
        self.wdt_feed()


class GateActuator:
    """The gate driver (tr_gate.GateDriver) on this board's pins: pulsers of the port
    (rp2: PIO state machines 0 and 1; esp32: RMT channels 0 and 1), the read-back ADC,
    the stored slope calibration (or the nominal one from rc_us and rail_uv)."""

    def __init__(self, machine, port, act, clock, cal_file):
        import tr_adc
        import tr_gate
        timer = act.get("timer") or ("rmt" if port == "esp32" else "pio")
        if timer == "pio":
            ch = tr_gate.PioPulser(machine, act["charge"], 0)
            dis = tr_gate.PioPulser(machine, act["discharge"], 1)
        elif timer == "rmt":
            ch = tr_gate.RmtPulser(machine, act["charge"], 0)
            dis = tr_gate.RmtPulser(machine, act["discharge"], 1)
        else:
            raise ValueError("actuator.timer: unknown pulse timer %r" % (timer,))
        num, den = act.get("readback_scale", (2, 1))
        rb = tr_adc.InternalADC(machine, port, [act["readback"]], num, den,
                                act.get("vref_uv", 3300000), act.get("atten", "11db"),
                                act.get("readback_samples", 256), "actuator.readback")
        self.rc_us = act.get("rc_us", 2200)
        self.cal_file = cal_file
        rail = act.get("rail_uv", 6000000)
        cal = tr_gate.GateCalibration.load(cal_file)
        self.source = 0 if cal is None else 1      # 0 nominal, 1 measured (2.1)
        if cal is None:
            cal = tr_gate.GateCalibration.from_rc(self.rc_us, rail)
        self.driver = tr_gate.GateDriver(ch, dis, rb, clock, cal, rail,
                                         min(act.get("max_pulse_us", 20000), ch.MAX_US),
                                         act.get("settle_us", 20),
                                         act.get("max_iterations", 8), 5 * self.rc_us)

    def set(self, state, previous, feed=None, learn=False):
        """Power-on: discharge and set. A learn (protocol 1 and 2): GateDriver.step, the
        change state - previous added to the driver's target with one approach at most
        (protocol 2 passes its target before as ``previous``, so the driver's target is
        the board's). set_state: GateDriver.set, max_iterations approaches at most."""
        d = self.driver
        if d.v_uv is None or previous is None:
            return d.power_on(state, self.rc_us, feed)
        if learn:
            return d.step(state - previous, feed)
        return d.set(state, feed)

    def calibration(self):
        """The table in use: (source, the reply's 21 fields)."""
        return self.source, self.driver.cal.fields()

    def calibrate(self, feed=None):
        """Measure the table on this board (GateDriver.calibrate, which goes back to the
        target) and store it in gate_cal_file: True, and it is in use (source 1); False
        when it could not be stored, and the table before is in use again."""
        d = self.driver
        before = d.cal
        cal = d.calibrate(feed=feed)
        if not cal.valid() or not cal.store(self.cal_file):
            d.use(before)
            return False
        self.source = 1
        return True

    def hold(self, feed=None):
        return self.driver.hold(feed)
