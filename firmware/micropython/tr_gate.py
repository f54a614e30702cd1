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
# it measured, never the target. The gate's leak pulls the measured gate away from the
# target between learns, so the next pulse restores it; the leak rate is measured.
#
# The slope is a per-board calibration (GateCalibration, kept in gate_cal.json on the
# board's flash): gate voltages and the slope measured there, interpolated linearly.

import json

try:
    import os
except ImportError:  # pragma: no cover
    import uos as os

CAL_POINTS_UV = (1000000, 2000000, 3000000, 4000000, 5000000)
LEAK_MIN_US = 1000000


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

    def start(self, us):
        self.rmt.write_pulses((us,), 1)


class GateCalibration:
    """The gate's slope in nV per us at gate voltages: ``charge`` and ``discharge``
    lists of [gate_uv, nv_per_us], increasing in gate_uv (two points at least); linear
    between the points and beyond the ends, never below 1 nV/us."""

    def __init__(self, charge, discharge):
        self.charge = [list(p) for p in charge]
        self.discharge = [list(p) for p in discharge]

    @classmethod
    def from_rc(cls, rc_us, rail_uv, points=CAL_POINTS_UV):
        """The nominal part values: dV/dt = (rail - V) / RC charging, V / RC discharging."""
        return cls([[v, (rail_uv - v) * 1000 // rc_us] for v in points],
                   [[v, v * 1000 // rc_us] for v in points])

    def slope_nv_per_us(self, v_uv, charging):
        pts = self.charge if charging else self.discharge
        i = 0
        while i < len(pts) - 2 and v_uv > pts[i + 1][0]:
            i += 1
        (v0, s0), (v1, s1) = pts[i], pts[i + 1]
        s = s0 + (s1 - s0) * (v_uv - v0) // (v1 - v0)
        return s if s > 0 else 1

    def to_json(self):
        return {"charge": self.charge, "discharge": self.discharge}

    def store(self, path):
        """Write ``path`` atomically (a temporary file renamed over it); True on success."""
        tmp = path + ".tmp"
        try:
            with open(tmp, "w") as f:
                f.write(json.dumps(self.to_json()))
            try:
                os.rename(tmp, path)
            except OSError:     # FAT will not rename over a file
                os.remove(path)
                os.rename(tmp, path)
        except OSError:
            return False
        return True

    @classmethod
    def load(cls, path):
        """The stored calibration, or None when missing or unreadable."""
        try:
            with open(path) as f:
                d = json.loads(f.read())
            cal = cls(d["charge"], d["discharge"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if len(cal.charge) < 2 or len(cal.discharge) < 2:
            return None
        return cal


class GateDriver:
    """Closed-loop gate driver.

    Args:
        charge, discharge: pulsers (``start(us)`` begins a pulse of ``us`` whole us).
        readback: an ADC with ``read_one(0)`` = the gate voltage in uV (averaged).
        clock: ticks_us(), ticks_diff(a, b), sleep_us(us) (the time module).
        cal: GateCalibration.
        rail_uv: the charge rail; max_pulse_us: longest single pulse (the watchdog is
        fed between pulses); settle_us: wait after a pulse before reading back;
        max_iterations: pulses per set() at most.

    ``v_uv`` is the last measured gate, ``target_uv`` where the rule wants it,
    ``carried_uv`` = target - measured after the last move (not applied), ``pulses`` and
    ``pulse_us_total`` count what was applied, ``leak_uv_per_s`` is the measured drift
    between moves (negative: leaking away)."""

    def __init__(self, charge, discharge, readback, clock, cal, rail_uv=6000000,
                 max_pulse_us=20000, settle_us=20, max_iterations=8):
        self.charge = charge
        self.discharge = discharge
        self.readback = readback
        self.clock = clock
        self.cal = cal
        self.rail_uv = rail_uv
        self.max_pulse_us = max_pulse_us
        self.settle_us = settle_us
        self.max_iterations = max_iterations
        self.v_uv = None
        self.t_us = 0
        self.target_uv = 0
        self.carried_uv = 0
        self.pulses = 0
        self.pulse_us_total = 0
        self.leak_uv_per_s = 0

    # -- measurement
    def measure(self):
        self.v_uv = self.readback.read_one(0)
        self.t_us = self.clock.ticks_us()
        return self.v_uv

    def resolution_uv(self, v_uv, charging):
        """How far the shortest pulse (1 us) moves the gate at ``v_uv``, in uV (rounded up)."""
        return (self.cal.slope_nv_per_us(v_uv, charging) + 999) // 1000

    # -- pulses
    def _pulse(self, charging, us, feed):
        p = self.charge if charging else self.discharge
        while us > 0:
            t = us if us < self.max_pulse_us else self.max_pulse_us
            p.start(t)
            self.clock.sleep_us(t + self.settle_us)
            self.pulses += 1
            self.pulse_us_total += t
            us -= t
            if feed is not None:
                feed()

    def _pulse_us(self, v, c):
        """The pulse towards v + c: c over the slope half-way (an underestimate for an
        RC node, so the loop approaches from one side); 0 below the resolution."""
        charging = c > 0
        m = c if charging else -c
        s = self.cal.slope_nv_per_us(v, charging)
        if m * 1000 < s:
            return 0
        s_mid = self.cal.slope_nv_per_us(v + c // 2, charging)
        return (m * 1000 + s_mid // 2) // s_mid

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
        """Drive to ``target_uv``: pulse, read back, repeat (max_iterations at most)
        until the rest is below one pulse. Returns the measured gate voltage."""
        self.target_uv = self._clip(target_uv)
        self.measure()
        for _ in range(self.max_iterations):
            if not self._approach(feed):
                break
        return self.v_uv

    def step(self, delta_uv, feed=None):
        """A learn's change: added to the target; one pulse when the distance reaches
        the resolution, else carried. Returns the measured gate voltage."""
        v_before = self.v_uv
        t_before = self.t_us
        self.measure()
        if v_before is not None:
            # over a second at least, so the read-back noise (some 100 uV) stays small
            dt = self.clock.ticks_diff(self.t_us, t_before)
            if dt >= LEAK_MIN_US:
                self.leak_uv_per_s = (self.v_uv - v_before) * 1000000 // dt
        self.target_uv = self._clip(self.target_uv + delta_uv)
        self._approach(feed)
        return self.v_uv

    def calibrate(self, points_uv=CAL_POINTS_UV, pulse_us=100, feed=None):
        """Measure the slope at each gate voltage: set there, one charge pulse, one
        discharge pulse, each read back. Returns the new GateCalibration (also used
        from now on)."""
        back = self.target_uv
        charge = []
        discharge = []
        for v in points_uv:
            self.set(v, feed)
            v0 = self.v_uv
            self._pulse(True, pulse_us, feed)
            v1 = self.measure()
            charge.append([(v0 + v1) // 2, (v1 - v0) * 1000 // pulse_us])
            self._pulse(False, pulse_us, feed)
            v2 = self.measure()
            discharge.append([(v1 + v2) // 2, (v1 - v2) * 1000 // pulse_us])
        charge.sort()
        discharge.sort()
        self.cal = GateCalibration(charge, discharge)
        self.set(back, feed)
        return self.cal
