# twinrig edge board: the learn trigger.
#
# The host holds the clamped state, raises the learn line, and lowers it again. On the
# rising edge every board takes one snapshot of its four nodes (in the interrupt
# handler, into a preallocated buffer: the drops of all boards belong to the same
# instant); on the falling edge the snapshot is handed to the main loop, which runs the
# rule on it. An edge closer than ``lockout_us`` to the last accepted edge is ringing
# on the line: counted as a glitch and ignored. Nothing in the handler allocates (a
# hard interrupt on rp2 may not: MicroPython docs, "Writing interrupt handlers").
#
#   trig = LearnTrigger(pin, adc, lockout_us, ticks_us, ticks_diff)
#   nodes = trig.take()        # the snapshot of one complete pulse, or None
#   trig.learns, trig.glitches # telemetry counters (modulo 2^30)

try:
    from array import array
except ImportError:  # pragma: no cover
    from uarray import array

COUNTER_MASK = 0x3FFFFFFF   # small ints on every port


class LearnTrigger:
    """Edges of ``pin`` (a machine.Pin input) with a lockout; ``adc.snapshot(buf)``
    fills four ints. ``irq()`` attaches the handler (Pin.irq with both edges, hard
    where the port has it); ``edge(level, t_us)`` is the handler's body."""

    def __init__(self, pin, adc, lockout_us, ticks_us, ticks_diff):
        self.pin = pin
        self.adc = adc
        self.lockout_us = lockout_us
        self._ticks_us = ticks_us
        self._ticks_diff = ticks_diff
        self.sampled = array("i", (0, 0, 0, 0))    # taken at the rising edge
        self.ready = array("i", (0, 0, 0, 0))      # handed over at the falling edge
        self.taken = [0, 0, 0, 0]                  # what take() returns (reused)
        self.high = False
        self.pending = 0            # complete pulses not yet taken (only the last is kept)
        self.learns = 0             # complete pulses (rising then falling edge)
        self.glitches = 0           # edges inside the lockout
        self.t_last = ticks_us()
        self.has_last = False

    def irq(self, machine):
        Pin = machine.Pin
        trig = Pin.IRQ_RISING | Pin.IRQ_FALLING
        try:
            self.pin.irq(handler=self._handler, trigger=trig, hard=True)
        except TypeError:  # ports whose Pin.irq has no ``hard``
            self.pin.irq(handler=self._handler, trigger=trig)

    def _handler(self, pin):
        self.edge(pin.value(), self._ticks_us())

    def edge(self, level, t_us):
        if self.has_last and self._ticks_diff(t_us, self.t_last) < self.lockout_us:
            self.glitches = (self.glitches + 1) & COUNTER_MASK
            return
        if level and not self.high:
            self.adc.snapshot(self.sampled)
            self.high = True
        elif not level and self.high:
            s = self.sampled
            r = self.ready
            r[0] = s[0]
            r[1] = s[1]
            r[2] = s[2]
            r[3] = s[3]
            self.high = False
            self.pending += 1
            self.learns = (self.learns + 1) & COUNTER_MASK
        else:
            # a level the line already had (an edge lost to the lockout): not a pulse
            self.glitches = (self.glitches + 1) & COUNTER_MASK
            return
        self.t_last = t_us
        self.has_last = True

    def take(self, machine=None):
        """The snapshot of the last complete pulse (a list of four uV, the same list
        every time: valid until the next take, nothing allocated), or None. Pulses
        that arrived faster than the main loop took them are counted in ``learns``
        but run the rule once."""
        if not self.pending:
            return None
        state = machine.disable_irq() if machine is not None else None
        v = self.taken
        r = self.ready
        v[0] = r[0]
        v[1] = r[1]
        v[2] = r[2]
        v[3] = r[3]
        self.pending = 0
        if machine is not None:
            machine.enable_irq(state)
        return v
