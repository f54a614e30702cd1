# A stand-in for MicroPython's `esp32` module (tests only): the RMT peripheral
# (MicroPython esp32.RMT docs; ESP32 technical reference §15): a tick of clock_div / 80 MHz,
# items of at most 32767 ticks; write_pulses((n,), 1) drives the pin high for n ticks
# from now, on fake_machine's clock and gate node.
#
# As strict as the real driver about a channel still transmitting: the RMT transmits one
# sequence at a time (TRM §15.2.5, a channel's transmission runs until its end marker),
# and MicroPython's write_pulses waits for the one in progress before it starts the next
# (esp32.RMT docs; the port waits for the driver's tx-done first), so a write while busy
# blocks the caller until that end, in fake time (recorded as "rmt_blocked"). wait_done()
# is True once the channel is idle; wait_done(timeout=ms) blocks up to that many ms for it.

import fake_machine as fm

APB_HZ = 80000000


class RMT:
    def __init__(self, channel, pin=None, clock_div=8, idle_level=False):
        if not 0 <= channel <= 7:
            raise ValueError("RMT channel 0..7")
        if not 1 <= clock_div <= 255:
            raise ValueError("clock_div 1..255")
        self.pin = pin.id
        self.tick_ns = clock_div * 1000000000 // APB_HZ
        self.busy_until_us = 0

    @fm.part
    def write_pulses(self, duration, data=True):
        if not isinstance(duration, (list, tuple)):
            raise TypeError("duration: a list or tuple")
        if not all(0 < d <= 32767 for d in duration):
            raise ValueError("RMT item duration 1..32767 ticks")
        if fm.CLOCK.now < self.busy_until_us:
            fm.EVENTS.append(("rmt_blocked", self.pin, fm.CLOCK.now, self.busy_until_us))
            fm.advance_to(self.busy_until_us)
        t = fm.CLOCK.now
        g = fm.GATE[0]
        level = 1 if data else 0
        for d in duration:
            end = t + d * self.tick_ns // 1000
            if g is not None and self.pin in g.levels:
                g.transition(t, self.pin, level)
                g.transition(end, self.pin, 0)
            fm.EVENTS.append(("rmt", self.pin, t, end))
            t = end
            level ^= 1
        self.busy_until_us = t

    def wait_done(self, timeout=0):
        now = fm.CLOCK.now
        if now < self.busy_until_us and timeout > 0:
            end = now + timeout * 1000
            fm.advance_to(end if end < self.busy_until_us else self.busy_until_us)
        return fm.CLOCK.now >= self.busy_until_us
