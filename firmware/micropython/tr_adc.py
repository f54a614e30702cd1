# twinrig edge board: analog inputs (node voltages, gate read-back), per port.
#
#   InternalADC   the microcontroller's own ADC through machine.ADC: on rp2 the
#                 12-bit SAR ADC (read_u16), on esp32 ADC1 with its attenuation set
#                 and the eFuse-calibrated read_uv(). Far too coarse for the uV drops
#                 of a learning edge (RP2040: 806 uV per code at 3.3 V); kept for the
#                 gate read-back and for boards without an external ADC.
#   ADS131M04     TI ADS131M04 on SPI: four 24-bit delta-sigma channels sampled
#                 simultaneously (one conversion for all four), 143 nV per code.
#
# Both fill a caller's preallocated buffer (snapshot(buf), read(buf)) with integer
# microvolts, and scale without big integers (MicroPython's small ints are 31 bits:
# read_u16() * 3300000 would allocate one per sample).

# ADC pins a board may use. RP2040 has ADC inputs on GP26..GP29 (RP2040 datasheet
# §4.9 ADC); on the Pico GP29 measures VSYS/3 and GP24/GP25 are VBUS sense and the
# LED (Pico datasheet, pinout), so GP26..GP28 only. ESP32: ADC1 only (GPIO32..39; ESP32
# technical reference §29.3, SAR ADC), since ADC2 is taken by the Wi-Fi driver; GPIO37/38
# are not brought out on the DevKitC.
PORT_ADC_PINS = {"rp2": (26, 27, 28), "esp32": (32, 33, 34, 35, 36, 39)}

FRACTION_BITS = 14


class Scale:
    """code -> uV as ``code * q + (code * f) >> 14`` with ``full_uv = (q + f / 2^14) *
    counts``: products stay below 2^30 for 16-bit codes (error below 4 uV)."""

    def __init__(self, full_uv, counts):
        self.q = full_uv // counts
        self.f = ((full_uv % counts) << FRACTION_BITS) // counts

    def uv(self, code):
        return code * self.q + ((code * self.f) >> FRACTION_BITS)


def check_pins(port, pins, what):
    allowed = PORT_ADC_PINS.get(port)
    if allowed is None:
        raise ValueError("%s: no ADC pin table for port %r" % (what, port))
    for p in pins:
        if p not in allowed:
            raise ValueError("%s: pin %r is not a usable ADC pin on %s (use %s)"
                             % (what, p, port, ", ".join(str(a) for a in allowed)))


class InternalADC:
    """The port's own ADC on ``pins``; node voltage = pin voltage * num / den.

    rp2 (MicroPython machine.ADC docs, ADC.read_u16: 0..65535; RP2040 datasheet §4.9:
    12-bit, 500 kS/s, full scale = ADC_AVDD = ``vref_uv``). esp32 (machine.ADC docs,
    ADC.atten / ADC.read_uv; ESP32 technical reference §29.3): attenuation set (11 dB:
    about 0.15..2.45 V usable), read_uv() calibrated by the chip's eFuse values."""

    def __init__(self, machine, port, pins, num=1, den=1, vref_uv=3300000, atten="11db",
                 samples=1, what="nodes"):
        check_pins(port, pins, what)
        self.port = port
        self.num = num
        self.den = den
        self.samples = max(1, samples)
        ADC = machine.ADC
        Pin = machine.Pin
        self.adcs = []
        for p in pins:
            adc = ADC(Pin(p))
            if port == "esp32":
                adc.atten(getattr(ADC, "ATTN_" + atten.upper()))
            self.adcs.append(adc)
        self.n = len(self.adcs)
        self.scale = Scale(vref_uv * num // den, 65535)

    def sample(self, i):
        """One conversion of channel i in uV (no allocation)."""
        if self.port == "esp32":
            return self.adcs[i].read_uv() * self.num // self.den
        return self.scale.uv(self.adcs[i].read_u16())

    def snapshot(self, buf):
        """One conversion per channel, in channel order, into ``buf``."""
        for i in range(self.n):
            buf[i] = self.sample(i)

    def read_one(self, i):
        """Channel i averaged over ``samples`` conversions, uV."""
        n = self.samples
        if self.port == "esp32":
            s = 0
            for _ in range(n):
                s += self.adcs[i].read_uv()
            return (s // n) * self.num // self.den
        s = 0
        adc = self.adcs[i]
        for _ in range(n):
            s += adc.read_u16()
        code = s // n
        rem = s - code * n
        return self.scale.uv(code) + (rem * self.scale.q) // n

    def read(self, buf):
        for i in range(self.n):
            buf[i] = self.read_one(i)


class ADS131M04:
    """TI ADS131M04 (datasheet SBAS890): four delta-sigma ADCs converting simultaneously,
    SPI mode 1 (CPOL 0, CPHA 1), 24-bit words; each frame is the response word, the four
    channel words and a CRC word (18 bytes); a NULL command (0x000000) reads the latest
    conversion. Codes are two's complement, full scale +-1.2 V / gain, so one code is
    1.2 V / 2^23 = 9375/65536 uV at gain 1 (``num/den`` for an input divider).

    Latency: CLKIN 8.192 MHz, high-resolution mode, OSR 128 gives 32 kSPS, one
    conversion every 31.25 us; the sinc3 filter takes three data periods to settle after
    a step at the input (datasheet, Digital Filter), so a snapshot shows the nodes as they
    were 31..94 us earlier: the host holds the clamped state at least 100 us before the
    learn trigger's rising edge. DRDY (active low) marks a new conversion."""

    FRAME = 18

    def __init__(self, machine, spi_id, sck, mosi, miso, cs, drdy, baudrate=4000000,
                 num=1, den=1):
        Pin = machine.Pin
        self.spi = machine.SPI(spi_id, baudrate=baudrate, polarity=0, phase=1,
                               sck=Pin(sck), mosi=Pin(mosi), miso=Pin(miso))
        self.cs = Pin(cs, Pin.OUT, value=1)
        self.drdy = Pin(drdy, Pin.IN)
        self.num = num
        self.den = den
        self.n = 4
        self._tx = bytearray(self.FRAME)
        self._rx = bytearray(self.FRAME)

    @staticmethod
    def code_uv(b0, b1, b2):
        """A 24-bit two's complement code -> uV at gain 1, without big integers."""
        hi = (b0 << 8) | b1
        if hi & 0x8000:
            hi -= 0x10000
        return (hi * 9375 + ((b2 * 9375) >> 8)) >> 8

    def snapshot(self, buf):
        """The latest simultaneous conversion of all four channels into ``buf``."""
        self.cs.value(0)
        self.spi.write_readinto(self._tx, self._rx)
        self.cs.value(1)
        rx = self._rx
        for i in range(4):
            k = 3 + 3 * i
            buf[i] = self.code_uv(rx[k], rx[k + 1], rx[k + 2]) * self.num // self.den

    def read(self, buf):
        self.snapshot(buf)
