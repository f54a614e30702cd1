# twinrig edge board: the Gen-2 MOSFET gate, driven in closed loop.
#
# The gate capacitor C charges through R from the charge pin (towards the rail) and
# discharges through R into the discharge pin. Pulses come from a hardware one-shot
# (PioPulser: an RP2040 PIO state machine at 1 MHz; RmtPulser: the ESP32 RMT at 1 us
# per tick), so a pulse is a whole number of microseconds exactly, whatever the
# interpreter does meanwhile. The gate is read back on an ADC channel after every pulse.
#
# The shortest pulse (1 us) moves the gate by slope(V) * 1 us, slope being the gate's
# dV/dt while charging (or discharging) at its present voltage V: about 1.4 mV at 3 V
# with R C = 2.2 ms and a 6 V rail. A learn asks far less (tens of uV), so the driver
# keeps a target: a learn adds its change to the target, and the driver pulses only when
# the distance from the measured gate to the target is at least one pulse's worth; what
# is left is carried to the next learn. The state a board reports is the gate voltage
# it measured, never the target.
#
# The slope is a per-board calibration (GateCalibration, protocol 2.1's "Actuator
# calibration", kept in gate_cal.json on the board's flash): five gate voltages each
# way and the slope measured there, interpolated linearly, and the gate's leak.
# GateDriver.calibrate measures it (calibrate_actuator over the bus).
#
# The leak. Why it never accumulates into the learned value: the learned value is the
# board's target (tr_board2.Board2.target, the rule's input and output), never the
# read-back; every move (set, step) reads the gate back first and pulses from what it
# read towards the target, so whatever the leak took since the last move is restored
# by the next one and the gate is back at the target within one pulse's worth after
# every learn. Between learns the gate would still drift by leak * interval: the
# stored leak is used there (GateDriver.hold, from the main loop's idle passes): once
# it may have moved the gate by half of one pulse's worth since the last read-back,
# the driver reads the gate back and restores it, so the gate stays within about one
# pulse's worth of the target however long the bus is idle. step() also keeps a live
# estimate of the leak from the drift between moves a second or more apart.

import json

try:
    import os
except ImportError:  # pragma: no cover
    import uos as os

CAL_POINTS_UV = (1000000, 2000000, 3000000, 4000000, 5000000)
CAL_POINTS = 5              # per direction (protocol 2.1's layout)
CAL_PULSE_US = 100          # the calibration's pulse width (the reference design's)
GATE_LEAK_HOLD_MS = 1000    # the shortest hold over which the leak is measured
LEAK_READS = 16             # read-backs averaged at each end of the hold
CAL_READS = 4               # read-backs averaged around each calibration pulse
LEAK_MIN_US = 1000000
_I32_MIN = -0x80000000
_I32_MAX = 0x7FFFFFFF
HOLD_MAX_US = 1 << 28       # hold() reads back at least this often (ticks_diff's range)
_M22 = 1 << 22
_M28 = 1 << 28
_M29 = 1 << 29
_REM = [0]                  # _mul_div's remainder


def _mul_div(a, b, c):
    """floor(a * b / c) for 0 <= a, b < 2^29 and 0 < c < 2^28, exactly, with every value
    below 2^30 (a small int on every port: no long int, nothing allocated): b reduced
    modulo c, then a taken k bits at a time from the top (Horner's rule: the partial
    remainder times 2^k plus a digit times b mod c, below 2^30 with k = 7 for c <= 2^22,
    k = 1 above). The remainder (a * b mod c) is left in _REM[0]. -1 outside that range
    (the caller then uses the plain expression)."""
    if a >= _M29 or b >= _M29 or c <= 0 or c >= _M28:
        return -1
    q = b // c
    r = b - q * c
    if q and a > _M29 // q:
        return -1
    k = 7 if c <= _M22 else 1
    mask = (1 << k) - 1
    qq = 0
    rr = 0
    sh = 28
    while sh >= 0:
        t = (rr << k) + ((a >> sh) & mask) * r
        d = t // c
        qq = (qq << k) + d
        rr = t - d * c
        sh -= k
    _REM[0] = rr
    return a * q + qq


def _prod_div(x, y, c):
    """floor(x * y / c) for c > 0 and any signs, exactly; small ints only where
    _mul_div can (the board's own ranges), else the plain big-int expression."""
    neg = (x < 0) != (y < 0)
    f = _mul_div(-x if x < 0 else x, -y if y < 0 else y, c)
    if f < 0:
        return x * y // c
    if neg:
        return -f - 1 if _REM[0] else -f
    return f


class PioPulser:
    """One pin's pulses from an RP2040 PIO state machine (MicroPython rp2.StateMachine;
    RP2040 datasheet §3.4 instruction set, §3.5.1 side-set, §3.5.5 clock dividers).
    The program waits on ``pull`` with the pin low, copies the count to X and loops on
    ``jmp x_dec`` with the pin side-set high, one cycle per pass: X + 1 cycles high. At
    1 MHz (125 MHz / 125, an exact divider) a pulse of n us is put(n - 1)."""

    FREQ_HZ = 1000000
    MAX_US = 1 << 32

    def __init__(self, machine, pin, sm_id):
        import rp2
        machine.Pin(pin, machine.Pin.OUT, value=0)
        self.sm = rp2.StateMachine(sm_id, _one_shot(rp2), freq=self.FREQ_HZ,
                                   sideset_base=machine.Pin(pin))
        self.sm.active(1)

    def start(self, us):
        self.sm.put(us - 1)


def _one_shot(rp2):
    @rp2.asm_pio(sideset_init=rp2.PIO.OUT_LOW)
    def one_shot():
        wrap_target()                       # noqa: F821 (names of rp2.asm_pio)
        pull(block).side(0)                 # noqa: F821
        mov(x, osr).side(0)                 # noqa: F821
        label("high")                       # noqa: F821
        jmp(x_dec, "high").side(1)          # noqa: F821
        nop().side(0)                       # noqa: F821
        wrap()                              # noqa: F821
    return one_shot


class RmtPulser:
    """One pin's pulses from the ESP32 RMT peripheral (MicroPython esp32.RMT;
    ESP32 technical reference §15, Remote Control Peripheral): clock_div 80 on the
    80 MHz APB clock gives 1 us per tick, a pulse is one high item of n ticks (at most
    32767, the item's 15-bit duration)."""

    MAX_US = 32767

    def __init__(self, machine, pin, channel):
        import esp32
        self.rmt = esp32.RMT(channel, pin=machine.Pin(pin), clock_div=80, idle_level=False)
        self.items = [0]            # the one item's duration, reused (no tuple per pulse)

    def start(self, us):
        """Start a pulse of ``us`` ticks. The channel must be idle: MicroPython's
        esp32.RMT.write_pulses waits for a transmission still running (the ESP32 RMT
        takes a new one only once the last has ended, TRM §15.2), so the previous pulse
        is waited for here, bounded (wait_done(timeout=ms): True once the channel is
        idle), and a channel still busy after it is an error, not a pulse lost."""
        r = self.rmt
        if not r.wait_done(timeout=self.MAX_US // 1000 + 2):
            raise OSError("RMT channel busy")
        self.items[0] = us
        r.write_pulses(self.items, 1)


class GateCalibration:
    """The gate's actuator calibration (PROTOCOL.md "Actuator calibration", protocol
    2.1; instruments/bus/v2/actuator.py GateCalibration): ``charge`` and ``discharge``
    lists of [gate_uv, nv_per_us], exactly five points each (the protocol's layout),
    increasing in gate_uv; the slope is linear between the points and beyond the ends
    (floored division), never below 1 nV/us. ``leak_uv_per_s``: the gate's drift with
    no pulse (negative: it discharges by itself)."""

    def __init__(self, charge, discharge, leak_uv_per_s=0):
        self.charge = [[int(p[0]), int(p[1])] for p in charge]
        self.discharge = [[int(p[0]), int(p[1])] for p in discharge]
        self.leak_uv_per_s = int(leak_uv_per_s)

    @classmethod
    def from_rc(cls, rc_us, rail_uv, points=CAL_POINTS_UV, leak_uv_per_s=0):
        """The nominal part values: dV/dt = (rail - V) / RC charging, V / RC discharging."""
        return cls([[v, (rail_uv - v) * 1000 // rc_us] for v in points],
                   [[v, v * 1000 // rc_us] for v in points], leak_uv_per_s)

    def valid(self):
        """Five points each way, gate voltages strictly increasing, every value an i32."""
        for pts in (self.charge, self.discharge):
            if len(pts) != CAL_POINTS:
                return False
            for i in range(CAL_POINTS):
                if not (_I32_MIN <= pts[i][0] <= _I32_MAX and _I32_MIN <= pts[i][1] <= _I32_MAX):
                    return False
                if i and pts[i][0] <= pts[i - 1][0]:
                    return False
        return _I32_MIN <= self.leak_uv_per_s <= _I32_MAX

    def slope_nv_per_us(self, v_uv, charging):
        pts = self.charge if charging else self.discharge
        i = 0
        n = len(pts) - 2
        while i < n and v_uv > pts[i + 1][0]:
            i += 1
        p = pts[i]
        q = pts[i + 1]
        v0 = p[0]
        s0 = p[1]
        # floored, exactly; small ints on the board's ranges (the learn path allocates
        # nothing: tests/test_gate_driver.py's heap-locked learns)
        s = s0 + _prod_div(q[1] - s0, v_uv - v0, q[0] - v0)
        return s if s > 0 else 1

    def fields(self):
        """The reply's fields after ``source``: charge_gate_uv[5], charge_nv_per_us[5],
        discharge_gate_uv[5], discharge_nv_per_us[5], leak_uv_per_s."""
        out = [p[0] for p in self.charge] + [p[1] for p in self.charge]
        out += [p[0] for p in self.discharge] + [p[1] for p in self.discharge]
        out.append(self.leak_uv_per_s)
        return tuple(out)

    @classmethod
    def from_fields(cls, f):
        return cls([[f[i], f[5 + i]] for i in range(5)],
                   [[f[10 + i], f[15 + i]] for i in range(5)], f[20])

    def to_json(self):
        return {"charge": self.charge, "discharge": self.discharge,
                "leak_uv_per_s": self.leak_uv_per_s}

    def dumps(self):
        return json.dumps(self.to_json())

    @classmethod
    def loads(cls, text):
        """The calibration a record holds, or None when it is not a valid table (a
        record of an older firmware without the leak reads as leak 0)."""
        try:
            d = json.loads(text)
            cal = cls(d["charge"], d["discharge"], d.get("leak_uv_per_s", 0))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return None
        return cal if cal.valid() else None

    def store(self, path):
        """Write ``path`` atomically (a temporary file renamed over it) and read it
        back; True on success."""
        tmp = path + ".tmp"
        text = self.dumps()
        try:
            with open(tmp, "w") as f:
                f.write(text)
            try:
                os.rename(tmp, path)
            except OSError:     # FAT will not rename over a file
                os.remove(path)
                os.rename(tmp, path)
            with open(path) as f:
                return f.read() == text
        except OSError:
            return False

    @classmethod
    def load(cls, path):
        """The stored calibration, or None when missing or unreadable (then the one a
        store cut short between remove and rename left in ``path + ".tmp"``)."""
        for p in (path, path + ".tmp"):
            try:
                with open(p) as f:
                    cal = cls.loads(f.read())
            except OSError:
                cal = None
            if cal is not None:
                return cal
        return None


class GateDriver:
    """Closed-loop gate driver.

    Args:
        charge, discharge: pulsers (``start(us)`` begins a pulse of ``us`` whole us).
        readback: an ADC with ``read_one(0)`` = the gate voltage in uV (averaged).
        clock: ticks_us(), ticks_diff(a, b), sleep_us(us) (the time module).
        cal: GateCalibration.
        rail_uv: the charge rail; max_pulse_us: longest single pulse (the watchdog is
        fed between pulses); settle_us: wait after a pulse before reading back;
        max_iterations: approaches per set() at most; max_approach_us: one approach's
        pulse at most (None: unbounded; GateActuator gives 5 RC).

    ``v_uv`` is the last measured gate, ``target_uv`` where the rule wants it,
    ``carried_uv`` = target - measured after the last move (not applied), ``pulses`` and
    ``pulse_us_total`` count what was applied, ``leak_uv_per_s`` is the gate's drift
    with no pulse (negative: leaking away): the calibration's, then step()'s estimate
    from moves a second or more apart; hold() uses it."""

    def __init__(self, charge, discharge, readback, clock, cal, rail_uv=6000000,
                 max_pulse_us=20000, settle_us=20, max_iterations=8, max_approach_us=None):
        self.charge = charge
        self.discharge = discharge
        self.readback = readback
        self.clock = clock
        self.cal = cal
        self.rail_uv = rail_uv
        self.max_pulse_us = max_pulse_us
        self.settle_us = settle_us
        self.max_iterations = max_iterations
        # one approach's pulse at most (GateActuator: 5 RC, from any voltage to the rail
        # or to 0): an absurd table (a slope of 1 nV/us) cannot ask for hours of pulse
        self.max_approach_us = max_approach_us
        self._hold_v = None         # hold(): the read-back and leak its wait is for
        self._hold_leak = 0
        self._hold_us = 0
        self.v_uv = None
        self.t_us = 0
        self.target_uv = 0
        self.carried_uv = 0
        self.pulses = 0
        self.pulse_us_total = 0
        self.leak_uv_per_s = cal.leak_uv_per_s

    # -- measurement
    def measure(self):
        self.v_uv = self.readback.read_one(0)
        self.t_us = self.clock.ticks_us()
        return self.v_uv

    def resolution_uv(self, v_uv, charging):
        """How far the shortest pulse (1 us) moves the gate at ``v_uv``, in uV (rounded up)."""
        return (self.cal.slope_nv_per_us(v_uv, charging) + 999) // 1000

    def _hold_after_us(self, v, leak):
        """How long the leak takes to move the gate half of one pulse's worth from ``v``:
        ceil(resolution * 500000 / |leak|) us, at most HOLD_MAX_US (ticks_diff measures
        below half the ticks period: MicroPython docs, time.ticks_diff)."""
        m = -leak if leak < 0 else leak
        r = self.resolution_uv(v, leak < 0)
        t = _mul_div(r, 500000, m)
        if t < 0:
            t = -(-r * 500000 // m)
        elif _REM[0]:
            t += 1
        return HOLD_MAX_US if t > HOLD_MAX_US else t

    # -- pulses
    def _pulse(self, charging, us, feed):
        p = self.charge if charging else self.discharge
        while us > 0:
            t = us if us < self.max_pulse_us else self.max_pulse_us
            p.start(t)
            self.clock.sleep_us(t + self.settle_us)
            self.pulses = (self.pulses + 1) & 0x3FFFFFFF           # small ints
            self.pulse_us_total = (self.pulse_us_total + t) & 0x3FFFFFFF
            us -= t
            if feed is not None:
                feed()

    def _pulse_us(self, v, c):
        """The pulse towards v + c: c over the slope half-way (an underestimate for an
        RC node, so the loop approaches from one side); 0 below the resolution."""
        charging = c > 0
        m = c if charging else -c
        s = self.cal.slope_nv_per_us(v, charging)
        if m < (s + 999) // 1000:           # m * 1000 < s, in small ints
            return 0
        s_mid = self.cal.slope_nv_per_us(v + c // 2, charging)
        us = _mul_div(m, 1000, s_mid)       # round(m * 1000 / s_mid), halves up
        if us < 0:
            us = (m * 1000 + s_mid // 2) // s_mid
        else:
            us += (_REM[0] + s_mid // 2) // s_mid
        top = self.max_approach_us
        return top if top is not None and us > top else us

    def _approach(self, feed):
        c = self.target_uv - self.v_uv
        us = self._pulse_us(self.v_uv, c)
        if us:
            self._pulse(c > 0, us, feed)
            self.measure()
        self.carried_uv = self.target_uv - self.v_uv
        return us

    def _clip(self, v):
        return 0 if v < 0 else self.rail_uv - 1 if v >= self.rail_uv else v

    # -- moves
    def power_on(self, target_uv, rc_us, feed=None):
        """Discharge for 5 RC (the gate at 0 whatever it held), then set(target)."""
        self._pulse(False, 5 * rc_us, feed)
        return self.set(target_uv, feed)

    def set(self, target_uv, feed=None):
        """Drive to ``target_uv`` (set_state, power-on, calibration): pulse, read back,
        repeat until the rest is below one pulse, max_iterations approaches at most, each
        pulse at most max_approach_us (split into max_pulse_us pieces, the watchdog fed
        between). Returns the measured gate voltage. A learn takes step() instead."""
        self.target_uv = self._clip(target_uv)
        self.measure()
        for _ in range(self.max_iterations):
            if not self._approach(feed):
                break
        return self.v_uv

    def step(self, delta_uv, feed=None):
        """A learn's change (protocols 1 and 2): added to the target; one approach (one
        pulse, at most max_approach_us) when the distance reaches the resolution, else
        carried; the rest is carried too (the next learn or hold() goes on from the
        gate read back). Returns the measured gate voltage."""
        v_before = self.v_uv
        t_before = self.t_us
        self.measure()
        if v_before is not None:
            # over a second at least, so the read-back noise (some 100 uV) stays small
            dt = self.clock.ticks_diff(self.t_us, t_before)
            if dt >= LEAK_MIN_US:
                self.leak_uv_per_s = _prod_div(self.v_uv - v_before, 1000000, dt)
        self.target_uv = self._clip(self.target_uv + delta_uv)
        self._approach(feed)
        return self.v_uv

    # -- protocol 2.1's actuator calibration (PROTOCOL.md "Actuator calibration")
    def use(self, cal):
        """Time the pulses from ``cal`` from now on, and take its leak."""
        self.cal = cal
        self.leak_uv_per_s = cal.leak_uv_per_s

    def _read_avg(self, n):
        s = 0
        for _ in range(n):
            s += self.readback.read_one(0)
        self.v_uv = s // n
        self.t_us = self.clock.ticks_us()
        return self.v_uv

    def measure_leak(self, hold_ms=GATE_LEAK_HOLD_MS, feed=None):
        """The gate's drift with no pulse (uV/s): LEAK_READS read-backs averaged at each
        end of a hold of ``hold_ms`` or more between their mid-points, the watchdog fed
        while waiting."""
        c = self.clock
        t0 = c.ticks_us()
        a = self._read_avg(LEAK_READS)
        ta = c.ticks_diff(c.ticks_us(), t0) // 2
        hold_us = hold_ms * 1000
        while True:
            left = hold_us + ta - c.ticks_diff(c.ticks_us(), t0)
            if left <= 0:
                break
            c.sleep_us(left if left < 100000 else 100000)
            if feed is not None:
                feed()
        t1 = c.ticks_us()
        b = self._read_avg(LEAK_READS)
        tb = c.ticks_diff(t1, t0) + c.ticks_diff(c.ticks_us(), t1) // 2
        return (b - a) * 1000000 // (tb - ta)

    def calibrate(self, points_uv=CAL_POINTS_UV, pulse_us=CAL_PULSE_US,
                  hold_ms=GATE_LEAK_HOLD_MS, feed=None):
        """Measure the table: at each gate voltage set there, one charge pulse and one
        discharge pulse of ``pulse_us``, each read back (CAL_READS averaged), the change
        over the width the slope at the mid-point of the change; then, back at the
        target, the leak over a hold (measure_leak); then back at the target again.
        Returns the new GateCalibration, used from now on (the caller stores it, and
        puts the one before back with use() when that fails)."""
        back = self.target_uv
        charge = []
        discharge = []
        for v in points_uv:
            self.set(v, feed)
            v0 = self._read_avg(CAL_READS)
            self._pulse(True, pulse_us, feed)
            v1 = self._read_avg(CAL_READS)
            charge.append([(v0 + v1) // 2, (v1 - v0) * 1000 // pulse_us])
            self._pulse(False, pulse_us, feed)
            v2 = self._read_avg(CAL_READS)
            discharge.append([(v1 + v2) // 2, (v1 - v2) * 1000 // pulse_us])
        self.set(back, feed)
        leak = self.measure_leak(hold_ms, feed)
        cal = GateCalibration(_increasing(charge), _increasing(discharge), leak)
        self.use(cal)
        self.set(back, feed)
        return cal

    def hold(self, feed=None):
        """Between moves (the main loop's idle passes): the stored leak's use. Once the
        leak may have moved the gate by half of one pulse's worth since it was last read
        back, read it back and restore the target (set), so the gate, the network's
        weight, stays at the learned value between learns too, not only after the next
        one. Returns the measured gate when it read it, else None (no leak: never)."""
        leak = self.leak_uv_per_s
        v = self.v_uv
        if v is None or leak == 0:
            return None
        if v != self._hold_v or leak != self._hold_leak:
            self._hold_us = self._hold_after_us(v, leak)    # once per read-back
            self._hold_v = v
            self._hold_leak = leak
        if self.clock.ticks_diff(self.clock.ticks_us(), self.t_us) < self._hold_us:
            return None
        # what the leak took is about half a pulse: one approach (the step path), not
        # set()'s iterations
        self.measure()
        self._approach(feed)
        return self.v_uv


def _increasing(pts):
    """``pts`` sorted by gate voltage and made strictly increasing (a gate that cannot
    reach a point, e.g. a rail below it, gives two mid-points alike), every value an i32."""
    pts.sort()
    for i in range(len(pts)):
        p = pts[i]
        if i and p[0] <= pts[i - 1][0]:
            p[0] = pts[i - 1][0] + 1
        for k in (0, 1):
            p[k] = _I32_MIN if p[k] < _I32_MIN else _I32_MAX if p[k] > _I32_MAX else p[k]
    return pts
