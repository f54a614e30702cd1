# A stand-in for MicroPython's `machine` (and `rp2`) on a Raspberry Pi Pico carrier,
# for tests only: lets hal.MachineHAL run on the WebAssembly port and under CPython.
# Pins, the UART and the watchdog record what the HAL does in EVENTS. The parts behave
# as the real ones do, with their limits:
#
#   CLOCK       virtual microseconds (ticks_us/ticks_ms/ticks_diff/sleep_us/sleep_ms)
#   ADC         RP2040 SAR ADC (RP2040 datasheet §4.9): 12 bits of 3.3 V, read_u16()
#               = code << 4 | code >> 8 (MicroPython rp2 port), 2 us per conversion,
#               white noise of 2.8 codes rms (ENOB 8.7); GP26..GP29 only; no read_uv
#   ADS         TI ADS131M04 on SPI: 24-bit codes of the four node voltages, one
#               simultaneous conversion, 18-byte frames
#   GATE        the MOSFET gate node: C charged through R from the charge pin, into the
#               discharge pin, leaking through R_leak; read back through a 1:2 divider
#   rp2         PIO state machines executing the one-shot program cycle by cycle at
#               their clock (fake_rp2)
# No read path allocates (the learn trigger's interrupt handler runs them heap-locked).

import math

try:
    import micropython
except ImportError:     # CPython
    micropython = None

EVENTS = []
# True while a test runs the firmware under micropython.heap_lock: the parts' own work
# (the gate's simulation in floats, the event log, the PIO's execution) is not the
# firmware's, so each part's entry point below runs with the heap unlocked and locks it
# again on the way back (the firmware's code around it stays locked)
HEAP_LOCKED = [False]


def part(f):
    """A part's entry point (self and at most two arguments: no *args tuple)."""
    def call(self, a=None, b=None):
        if not HEAP_LOCKED[0]:
            return f(self, a, b)
        micropython.heap_unlock()
        try:
            return f(self, a, b)
        finally:
            micropython.heap_lock()
    return call


RECORD = [True]     # False: nothing logged (while a test measures allocation)
PINS = {}
UNIQUE_ID = b"\x10\x20\x30\x40\x50\x60"
RX = bytearray()
ADC_PINS = (26, 27, 28, 29)
VREF_UV = 3300000


# MicroPython's ticks (time module docs, ticks_ms/ticks_us/ticks_diff/ticks_add): the
# counters wrap at an implementation-defined period, 2^30 on the rp2 and esp32 ports
# (MICROPY_PY_TIME_TICKS_PERIOD); ticks_diff and ticks_add take only ticks values
# (what ticks_*() or ticks_add returned). The stand-in refuses anything else, which on
# a board is a value the firmware formed by direct arithmetic (and on a 32-bit port a
# heap-allocated long int once it is 2^30 or more).
TICKS_PERIOD = 1 << 30
TICKS_MAX = TICKS_PERIOD - 1
TICKS_HALF = TICKS_PERIOD // 2


def _ticks(v):
    if not 0 <= v <= TICKS_MAX:
        raise ValueError("not a ticks value: %r" % (v,))
    return v


class Clock:
    """Virtual time ``now`` in us from the fake's start (never wraps: the parts' own
    time); ``ticks_us()``/``ticks_ms()`` are the port's counters, ``offset_us`` and
    ``offset_ms`` ahead of it, wrapping at TICKS_PERIOD."""

    def __init__(self):
        self.now = 0
        self.offset_us = 0
        self.offset_ms = 0

    def ticks_us(self):
        return (self.now + self.offset_us) & TICKS_MAX

    def ticks_ms(self):
        return (self.now // 1000 + self.offset_ms) & TICKS_MAX

    def ticks_diff(self, a, b):
        return ((_ticks(a) - _ticks(b) + TICKS_HALF) & TICKS_MAX) - TICKS_HALF

    def ticks_add(self, a, d):
        if not -TICKS_HALF <= d < TICKS_HALF:
            raise OverflowError("ticks interval")
        return (_ticks(a) + d) & TICKS_MAX

    def wrap_in(self, us):
        """Put both counters ``us`` (and us // 1000 ms) before their wrap."""
        self.offset_us = (TICKS_PERIOD - us - self.now) & TICKS_MAX
        self.offset_ms = (TICKS_PERIOD - us // 1000 - self.now // 1000) & TICKS_MAX

    def sleep_us(self, us):
        if us > 0:
            _advance(self.now + us)

    def sleep_ms(self, ms):
        if ms > 0:
            _advance(self.now + ms * 1000)


CLOCK = Clock()

# the UART's receive-timeout interrupt: (due time us, uart) pending, fired when the
# clock passes it, with the clock at the due time (the handler's ticks_us)
IDLE_DUE = []


def _advance(t):
    while IDLE_DUE and IDLE_DUE[0][0] <= t:
        due, u = IDLE_DUE.pop(0)
        if due > CLOCK.now:
            CLOCK.now = due
        if u.irq_handler is not None and u.irq_trigger & UART.IRQ_RXIDLE:
            u.irq_handler(u)
    if t > CLOCK.now:
        CLOCK.now = t


def receive(uart, data, end_us):
    """Bytes on the UART's receive line, the last one's stop bit at ``end_us``: readable
    from then on; the receive timeout fires 32 bit periods later (RP2040 datasheet
    4.2.6: the RX FIFO not empty and no data for 32 bit periods)."""
    RX.extend(data)
    IDLE_DUE.append((end_us + -(-32 * 1000000 // uart.baudrate), uart))
    IDLE_DUE.sort(key=lambda x: x[0])
    _advance(CLOCK.now)


def advance_to(t):
    """Let the clock run to ``t`` (interrupts due by then fire)."""
    _advance(t)


class Noise:
    """Small-int generator (15-bit LCG) and a triangular-ish sum of three uniforms."""

    def __init__(self, seed=1):
        self.s = seed & 0x7FFF

    def u(self):
        self.s = (self.s * 1103 + 12345) & 0x7FFF
        return self.s

    def tri(self, a):
        """Sum of three uniforms in [-a, a]: rms a."""
        w = 2 * a + 1
        return (self.u() % w) + (self.u() % w) + (self.u() % w) - 3 * a


NOISE = Noise()
ADC_NOISE_16THS = 45     # 2.8 codes rms, in 1/16 code
ADC_16THS = {}           # pin -> pin voltage in 1/16 codes (precomputed: no big ints when read)
ADC_UV = {}
# True: the UART's receiver hears the board's own transmissions (an RS-485 transceiver
# whose receiver stays enabled while it drives)
ECHO = [False]


def set_adc_uv(pin, uv):
    ADC_UV[pin] = uv
    ADC_16THS[pin] = uv * 4096 * 16 // VREF_UV


class GateNode:
    """R from the charge pin (to ``rail_uv``) or into the discharge pin (to 0) onto C;
    R_leak to ground always. Voltage in uV (float), integrated from pin transitions."""

    def __init__(self, charge, discharge, readback, r_ohm=1050.0, c_f=2.2e-6,
                 rail_uv=5950000.0, leak_ohm=1e9, v_uv=0.0, divider=2):
        self.charge = charge
        self.discharge = discharge
        self.readback = readback
        self.tau_us = r_ohm * c_f * 1e6
        self.tau_leak_us = leak_ohm * c_f * 1e6
        self.rail_uv = rail_uv
        self.v = v_uv
        self.t = CLOCK.now
        self.levels = {charge: 0, discharge: 0}
        self.trans = []          # (t_us, pin, level), future ones from the PIO
        self.divider = divider
        self.high_us = {charge: 0, discharge: 0}

    def transition(self, t, pin, level):
        self.trans.append((t, pin, level))
        self.trans.sort()

    def _run(self, dt):
        if dt <= 0:
            return
        c = self.levels[self.charge]
        d = self.levels[self.discharge]
        if c and d:
            EVENTS.append(("gate_shoot_through",))
        if c:
            self.high_us[self.charge] += dt
            self.v = self.rail_uv + (self.v - self.rail_uv) * math.exp(-dt / self.tau_us)
        elif d:
            self.high_us[self.discharge] += dt
            self.v = self.v * math.exp(-dt / self.tau_us)
        else:
            self.v = self.v * math.exp(-dt / self.tau_leak_us)

    def at(self, t):
        while self.trans and self.trans[0][0] <= t:
            tt, pin, level = self.trans.pop(0)
            self._run(tt - self.t)
            self.t = tt
            self.levels[pin] = level
        self._run(t - self.t)
        self.t = t
        return self.v


GATE = [None]


def reset():
    global RX
    EVENTS.clear()
    ADC_UV.clear()
    ADC_16THS.clear()
    PINS.clear()
    RX = bytearray()
    GATE[0] = None
    ECHO[0] = False
    HEAP_LOCKED[0] = False
    IDLE_DUE.clear()
    UARTS.clear()
    ADS.codes = [0, 0, 0, 0]
    ADS.noise_codes = 0
    CLOCK.now = 0
    CLOCK.offset_us = 0
    CLOCK.offset_ms = 0
    PORT[0] = "rp2"
    AD5245.__init__()


def unique_id():
    return UNIQUE_ID


def disable_irq():
    return 1


def enable_irq(state):
    pass


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=None, pull=None, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        old = PINS.get(id)
        self.level = old.level if old is not None and value is None else (
            1 if (value is None and pull == Pin.PULL_UP) else (value or 0))
        self.handler = None
        self.trigger = 0
        PINS[id] = self
        if mode == Pin.OUT and value is not None:
            EVENTS.append(("pin", id, value))
            self._notify()

    def _notify(self):
        g = GATE[0]
        if g is not None and self.id in g.levels:
            g.at(CLOCK.now)
            g.levels[self.id] = self.level

    @part
    def value(self, v=None, _=None):
        if v is None:
            return self.level
        self.level = 1 if v else 0
        if RECORD[0]:
            EVENTS.append(("pin", self.id, self.level))
            self._notify()

    def irq(self, handler=None, trigger=None, hard=False):
        self.handler = handler
        self.trigger = trigger
        EVENTS.append(("irq", self.id, trigger))


def drive(pin_id, level):
    """The outside world moves an input pin: its handler runs on a matching edge."""
    p = PINS[pin_id]
    if level == p.level:
        return
    p.level = level
    edge = Pin.IRQ_RISING if level else Pin.IRQ_FALLING
    if p.handler is not None and p.trigger & edge:
        p.handler(p)


PORT = ["rp2"]       # the port this machine stands for: "rp2" or "esp32"
ESP32_ADC1_PINS = (32, 33, 34, 35, 36, 37, 38, 39)
# ESP32 attenuation -> the largest input read (uV): ESP32 technical reference §29.3 and
# the ESP-IDF ADC guide (0 dB 950 mV, 2.5 dB 1250 mV, 6 dB 1750 mV, 11 dB 2450 mV)
ESP32_ATTEN_MAX_UV = {0: 950000, 1: 1250000, 2: 1750000, 3: 2450000}


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        self.pin = pin.id if isinstance(pin, Pin) else pin
        if PORT[0] == "esp32":
            if self.pin not in ESP32_ADC1_PINS:
                raise ValueError("invalid pin")   # ADC2 is the Wi-Fi driver's
            self.att = 0 if atten is None else atten   # power-on default: 0 dB
        elif self.pin not in ADC_PINS and self.pin != 4:
            raise ValueError("invalid pin")   # RP2040: GP26..GP29, channel 4 the sensor

    def atten(self, a):
        if PORT[0] != "esp32":
            raise AttributeError("atten")     # rp2's ADC has no attenuator
        if a not in ESP32_ATTEN_MAX_UV:
            raise ValueError("invalid attenuation")
        self.att = a

    @part
    def read_uv(self, _=None, __=None):
        if PORT[0] != "esp32":
            raise AttributeError("read_uv")   # not on rp2 (MicroPython machine.ADC docs)
        CLOCK.now += 10
        g = GATE[0]
        if g is not None and self.pin == g.readback:
            uv = int(g.at(CLOCK.now) / g.divider)
        else:
            uv = ADC_UV.get(self.pin, 0)
        top = ESP32_ATTEN_MAX_UV[self.att]
        uv = top if uv > top else uv
        step = top // 4096
        return (uv // step) * step          # 12 bits of the attenuated range

    @part
    def read_u16(self, _=None, __=None):
        if PORT[0] == "esp32":
            return self.read_uv() * 16 // (ESP32_ATTEN_MAX_UV[self.att] // 4096)
        CLOCK.now += 2
        g = GATE[0]
        if g is not None and self.pin == g.readback:
            s = int(g.at(CLOCK.now) / g.divider * 65536 / VREF_UV)
        else:
            s = ADC_16THS.get(self.pin, 0)
        s += NOISE.tri(ADC_NOISE_16THS)
        code = s >> 4
        code = 0 if code < 0 else 4095 if code > 4095 else code
        return (code << 4) | (code >> 8)


class ADS131M04Part:
    """The four channels' codes (1.2 V / 2^23 per code), set in uV."""

    def __init__(self):
        self.codes = [0, 0, 0, 0]
        self.noise_codes = 0
        self.frames = 0

    def set_uv(self, ch, uv):
        self.codes[ch] = uv * 65536 // 9375


ADS = ADS131M04Part()


class SPI:
    def __init__(self, id, baudrate=1000000, polarity=0, phase=0, sck=None, mosi=None,
                 miso=None):
        if (polarity, phase) != (0, 1):
            raise ValueError("ADS131M04 needs SPI mode 1")
        self.id = id
        EVENTS.append(("spi_init", id, baudrate))

    def write_readinto(self, tx, rx):
        ADS.frames += 1
        rx[0] = 0x05
        rx[1] = 0x00
        rx[2] = 0x00
        for i in range(4):
            c = ADS.codes[i]
            if ADS.noise_codes:
                c += NOISE.tri(ADS.noise_codes)
            c &= 0xFFFFFF
            k = 3 + 3 * i
            rx[k] = c >> 16
            rx[k + 1] = (c >> 8) & 0xFF
            rx[k + 2] = c & 0xFF
        for k in range(15, 18):
            rx[k] = 0


class AD5245Part:
    """The I2C digipot: 0x2C, instruction byte then the wiper; ``nack`` makes the next
    writes' data byte unacknowledged (the part then keeps its wiper); ``absent`` makes
    the address unacknowledged (OSError ENODEV, as machine.I2C raises)."""

    def __init__(self):
        self.addr = 44
        self.wiper = 128          # power-on midscale
        self.nack = 0
        self.absent = False


AD5245 = AD5245Part()


class I2C:
    def __init__(self, id, sda=None, scl=None, freq=400000):
        if freq > 400000:
            raise ValueError("AD5245: 400 kHz at most")
        self.id = id

    def writeto(self, addr, buf, stop=True):
        if AD5245.absent or addr != AD5245.addr:
            raise OSError(19)     # ENODEV
        if AD5245.nack:
            AD5245.nack -= 1
            return 1              # the instruction byte acknowledged, the data not
        if len(buf) == 2 and buf[0] == 0x00:
            AD5245.wiper = buf[1]
        return len(buf)

    def readfrom_into(self, addr, buf, stop=True):
        if AD5245.absent or addr != AD5245.addr:
            raise OSError(19)
        buf[0] = AD5245.wiper


UARTS = []


class UART:
    IRQ_RXIDLE = 4

    def __init__(self, id, baudrate=9600, tx=None, rx=None, timeout=0, rxbuf=256):
        self.id = id
        self.baudrate = baudrate
        self.irq_handler = None
        self.irq_trigger = 0
        UARTS.append(self)
        EVENTS.append(("uart_init", id, baudrate))

    def irq(self, handler=None, trigger=0, hard=False):
        self.irq_handler = handler
        self.irq_trigger = trigger
        EVENTS.append(("uart_irq", trigger, hard))

    def any(self):
        return len(RX)

    def read(self, n=-1):
        global RX
        if n < 0:
            n = len(RX)
        data = bytes(RX[:n])
        RX = RX[n:]
        return data or None

    def write(self, data):
        EVENTS.append(("uart_write", bytes(data), CLOCK.now))
        if ECHO[0]:
            RX.extend(data)
        return len(data)

    def flush(self):
        EVENTS.append(("uart_flush",))

    def txdone(self):
        return True


class WDT:
    def __init__(self, id=0, timeout=5000):
        EVENTS.append(("wdt_init", timeout))

    @part
    def feed(self, _=None, __=None):
        EVENTS.append(("wdt_feed",))
