# twinrig edge board: digital-potentiometer actuators.
#
# Both report the tap they reached, which is the state the board then reports: a tap
# beyond the part's range is not reached, and a write the part did not acknowledge
# leaves the tap it had.
#
#   X9CDigipot   X9C10x, up/down interface (no acknowledge: the wiper is counted, and
#                stops at its ends)
#   AD5245       Analog Devices AD5245, I2C, 256 taps: each write acknowledged and the
#                wiper read back

try:
    import time
    _sleep_us = time.sleep_us
except AttributeError:  # CPython
    def _sleep_us(us):
        pass


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

    def set(self, tap, previous, feed=None, learn=False):
        """Move to ``tap``; returns the tap reached (the wiper stops at 0 and n_taps - 1)."""
        if self.tap is None or previous is None:
            self._steps(False, self.n_taps)
            self.tap = 0
        tap = 0 if tap < 0 else self.n_taps - 1 if tap >= self.n_taps else tap
        d = tap - self.tap
        if d:
            self._steps(d > 0, abs(d))
        self.tap = tap
        return tap


class AD5245:
    """AD5245 (Analog Devices datasheet, "I2C Interface"): write = address, instruction
    byte 0x00, data byte (the wiper, 0..255); read = address with R/W set, one data byte
    (the wiper). MicroPython's I2C.writeto returns the number of bytes acknowledged and
    raises OSError when the address is not (machine.I2C docs): a write counts as taken
    only when both bytes were acknowledged and the wiper reads back as written."""

    def __init__(self, machine, i2c_id, sda, scl, addr=44, n_taps=256, freq=400000):
        Pin = machine.Pin
        self.i2c = machine.I2C(i2c_id, sda=Pin(sda), scl=Pin(scl), freq=freq)
        self.addr = addr
        self.n_taps = n_taps
        self.tap = n_taps // 2          # the part's power-on preset: midscale
        self.failed_writes = 0
        self._buf = bytearray(2)
        self._rd = bytearray(1)

    def _write(self, tap):
        self._buf[0] = 0x00
        self._buf[1] = tap
        try:
            if self.i2c.writeto(self.addr, self._buf) != 2:
                return False
            self.i2c.readfrom_into(self.addr, self._rd)
        except OSError:
            return False
        return self._rd[0] == tap

    def set(self, tap, previous, feed=None, learn=False):
        """Move to ``tap``; returns the tap the part holds (the previous one when the
        write failed or ``tap`` is beyond the part's taps)."""
        if 0 <= tap < self.n_taps and self._write(tap):
            self.tap = tap
        else:
            self.failed_writes += 1
        return self.tap
