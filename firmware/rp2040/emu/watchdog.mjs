// The RP2040 watchdog (datasheet 4.7) in place of rp2040js's (which counts at a fixed rate,
// ignores TICK.CYCLES and resets nothing), as strict as the boot loader relies on it:
//
// - TICK (4.7.2, 0x2c): the watchdog's tick is clk_ref divided by CYCLES (ENABLE bit 9,
//   CYCLES bits 8:0; reset ENABLE 1, CYCLES 0, which gives no tick here); the rate is taken
//   from clk_ref as each register access finds it (the loader's ROSC at 6.5 MHz in
//   rp2040js, then the image's crystal). The TIMER's own 1 us tick stays rp2040js's.
// - CTRL (0x00): ENABLE (bit 30) runs the counter; TRIGGER (bit 31) resets the chip at once
//   with REASON FORCE; TIME (23:0) reads the counter; the PAUSE bits are kept (no debugger).
// - LOAD (0x04): sets the counter (24 bits); it counts down by 2 a tick (erratum RP2040-E1),
//   so LOAD = 2 x the ticks to the reset. At 0 the chip is reset with REASON TIMER.
// - REASON (0x08): TIMER (bit 0) or FORCE (bit 1) of the last reset, 0 after a power-on.
// - SCRATCH0..7 (0x0c..0x28): kept through the watchdog's resets; 0 after a power-on.
// - What a reset resets is PSM WDSEL's choice (2.13.5): a reset with PROC0 (bit 15) not
//   selected restarts nothing, a violation here (the firmware expects a restart). The
//   watchdog itself is not reset by its own reset: REASON, SCRATCH and TICK stay; the model
//   stops its counter then (the loader turns it off first either way).
// The harness performs the reset (harness.mjs): the chip afresh, the flash kept.
const CTRL_TRIGGER = 1 << 31, CTRL_ENABLE = 1 << 30, CTRL_PAUSE = 7 << 24;
const TICK_ENABLE = 1 << 9, PSM_PROC0 = 1 << 15;

export class Watchdog {
  constructor(clock, { violation, event, refHz, psmWdsel, reset }) {
    this.clock = clock; this.violation = violation; this.event = event;
    this.refHz = refHz; this.psmWdsel = psmWdsel; this.reset = reset;
    this.name = 'WATCHDOG';
    this.ctrl = CTRL_PAUSE; // CTRL's reset value: ENABLE 0, the PAUSE bits set
    this.reason = 0;
    this.scratch = new Uint32Array(8);
    this.tick = TICK_ENABLE; // CYCLES 0
    this.count = 0; // LOAD units, as of countNs
    this.countNs = clock.nanos;
    this.tickNs = Infinity;
    this.alarm = clock.createAlarm(() => this.expired());
  }

  get enabled() { return (this.ctrl & CTRL_ENABLE) !== 0; }

  // The counter brought to now at the rate it has run at, then the rate as clk_ref is now.
  sync() {
    const now = this.clock.nanos;
    if (this.enabled && Number.isFinite(this.tickNs)) {
      this.count = Math.max(0, this.count - (2 * (now - this.countNs)) / this.tickNs);
    }
    this.countNs = now;
    const cycles = this.tick & 0x1ff, ref = this.refHz();
    this.tickNs = this.tick & TICK_ENABLE && cycles && ref ? (cycles * 1e9) / ref : Infinity;
  }

  schedule() {
    if (this.enabled && Number.isFinite(this.tickNs)) this.alarm.schedule((this.count / 2) * this.tickNs);
    else this.alarm.cancel();
  }

  expired() {
    this.count = 0;
    this.countNs = this.clock.nanos;
    this.fire(1, 'timer');
  }

  fire(reason, kind) {
    const wdsel = this.psmWdsel();
    this.reason = reason;
    this.event({ type: 'watchdog_reset', cause: kind, atNs: this.clock.nanos });
    if (!(wdsel & PSM_PROC0)) {
      this.violation(`watchdog ${kind} with PSM WDSEL ${wdsel.toString(16)}: processor 0 not selected, nothing restarts (2.13.5)`);
      return;
    }
    this.ctrl &= ~CTRL_ENABLE;
    this.alarm.cancel();
    this.reset(kind);
  }

  readUint32(offset) {
    switch (offset) {
      case 0x00: this.sync(); return ((this.ctrl & ~0xffffff) | (Math.ceil(this.count) & 0xffffff)) >>> 0;
      case 0x04: return 0; // write-only
      case 0x08: return this.reason;
      case 0x2c: return this.tick | (this.tick & TICK_ENABLE && this.tick & 0x1ff ? 1 << 10 : 0); // RUNNING
    }
    if (offset >= 0x0c && offset <= 0x28) return this.scratch[(offset - 0x0c) >> 2];
    this.violation(`WATCHDOG register ${offset.toString(16)} is not modelled`);
    return 0;
  }

  writeUint32(offset, value) {
    value >>>= 0;
    this.sync();
    switch (offset) {
      case 0x00:
        this.ctrl = value & (CTRL_ENABLE | CTRL_PAUSE);
        if (value & CTRL_TRIGGER) { this.fire(2, 'trigger'); return; }
        break;
      case 0x04: this.count = value & 0xffffff; break;
      case 0x08: this.violation('WATCHDOG REASON written (read-only)'); return;
      case 0x2c: this.tick = value & (TICK_ENABLE | 0x1ff); this.sync(); break;
      default:
        if (offset >= 0x0c && offset <= 0x28) { this.scratch[(offset - 0x0c) >> 2] = value; return; }
        this.violation(`WATCHDOG register ${offset.toString(16)} is not modelled`);
        return;
    }
    this.schedule();
  }

  writeUint32Atomic(offset, value, type) {
    const cur = offset === 0x04 ? 0 : this.readUint32(offset) & ~(offset === 0 ? 0xffffff : 0);
    this.writeUint32(offset, type === 1 ? cur ^ value : type === 2 ? cur | value : type === 3 ? cur & ~value : value);
  }
}
