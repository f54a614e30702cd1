// TI ADS131M04 (datasheet SBAS890) on an RP2040 SPI: 24-bit, four channels sampled together
// by one modulator clock and one sinc3 filter. Modelled as strictly as the firmware uses it:
// - CLKIN 8.192 MHz, f_MOD = CLKIN / 2 (8.3.5); OSR from the CLOCK register (8.6, 03h), so
//   t_DATA = OSR / f_MOD; DRDY falls at every conversion and rises when a frame starts
//   (8.5.1.3), or pulses high before the next conversion if the last one was not read.
// - The sinc3 filter (8.3.7): each conversion is the sinc3-weighted mean of the input over
//   the 3 * OSR modulator periods before it, computed from the inputs the test supplies as a
//   function of emulated time; a restart (SYNC/RESET pulse, 8.4.3, or a CLOCK write) gives the
//   first DRDY three conversion periods later, with data made wholly after the restart.
// - SYNC/RESET (6.6): low for 1..2047 t_CLKIN synchronises (the filter restarts when it
//   rises), 2048 t_CLKIN or more resets the device; shorter than 1 t_CLKIN is a violation.
// - Frames (8.5.1.7): CS low, then six 24-bit words in SPI mode 1 (CPOL 0, CPHA 1), SCLK at
//   most 25 MHz (6.6, t_c(SC) >= 40 ns). Output: the response to the previous frame's command,
//   channels 0..3 (two's complement, 1.2 V full scale at gain 1), CRC-CCITT (seed FFFFh) over
//   them (8.3.12). Input: command word, one register data word for WREG. Commands: NULL,
//   RESET, RREG and WREG of one register (8.5.1.10). Anything else, or a frame that is not
//   whole (18 bytes), is reported as a violation: the model is stricter than the part there.
// - Channel phase registers PHASEn (8.3.10) shift a channel's sampling by whole t_MOD.
const T_CLKIN_NS = 1e9 / 8.192e6;
const T_MOD_NS = 2 * T_CLKIN_NS;
const OSRS = [128, 256, 512, 1024, 2048, 4096, 8192, 16256];
const REG_ID = 0x00, REG_STATUS = 0x01, REG_CLOCK = 0x03;
const RESET_REGS = { 0x00: 0x2400, 0x01: 0x0500, 0x02: 0x0510, 0x03: 0x0f0e, 0x04: 0x0000,
  0x06: 0x0600, 0x09: 0x0000, 0x0e: 0x0000, 0x13: 0x0000, 0x18: 0x0000 };
const FULL_SCALE_UV = 1.2e6;

export function crcCcitt(bytes) {
  let crc = 0xffff;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

function sinc3Weights(osr) {
  // three boxcars of osr taps convolved: 3 * osr - 2 taps
  let w = new Float64Array(osr).fill(1);
  for (let k = 0; k < 2; k++) {
    const out = new Float64Array(w.length + osr - 1);
    for (let i = 0; i < w.length; i++) for (let j = 0; j < osr; j++) out[i + j] += w[i];
    w = out;
  }
  const sum = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / sum);
}

export class ADS131M04 {
  constructor(mcu, spi, pins, { violation, event }) {
    this.mcu = mcu; this.spi = spi; this.pins = pins; this.clock = mcu.clock;
    this.violation = violation; this.event = event;
    this.inputs = [[0, [0, 0, 0, 0], [0, 0, 0, 0]]]; // [timeNs, uV x4, uV/ns x4], sorted
    this.weights = new Map();
    this.drdyAlarm = this.clock.createAlarm(() => this.convert());
    this.reset(0);
    spi.onTransmit = (value) => this.transfer(value);
    mcu.gpio[pins.cs].addListener(() => this.csChanged());
    mcu.gpio[pins.sync].addListener(() => this.syncChanged());
    this.csLow = false; this.syncLowNs = null;
    mcu.gpio[pins.drdy].setInputValue(true);
  }

  reset(nowNs) {
    this.regs = { ...RESET_REGS };
    this.response = 0xff24; // the first frame after a reset answers FF24h (8.4.1)
    this.restart(nowNs);
  }

  get osr() { return OSRS[(this.regs[REG_CLOCK] >> 2) & 7]; }
  get periodNs() { return this.osr * T_MOD_NS; }

  restart(nowNs) {
    this.epochNs = nowNs; this.index = 0; this.latest = null;
    if (this.halted) return; // no CLKIN: no conversion, no DRDY (8.3.1)
    this.drdyAlarm.schedule(Math.max(0, nowNs + 3 * this.periodNs - this.clock.nanos));
  }

  // CLKIN lost (a fault: the oscillator or its trace) or back: the modulator stops, DRDY
  // stays where it is and no frame holds new data; back, conversions restart as after a sync.
  setClock(running, nowNs) {
    this.halted = !running;
    if (this.halted) this.drdyAlarm.cancel();
    else this.restart(nowNs);
  }

  // From atNs on, channel ch is uv[ch] + slope[ch] * (t - atNs): steps and ramps.
  setInputs(uv, atNs, slope = [0, 0, 0, 0]) {
    const list = this.inputs.filter(([t]) => t < atNs);
    list.push([atNs, uv.map(Number), slope.map(Number)]);
    this.inputs = list;
  }

  inputAt(tNs, ch) {
    let seg = this.inputs[0];
    for (const s of this.inputs) { if (s[0] <= tNs) seg = s; else break; }
    return seg[1][ch] + seg[2][ch] * (tNs - seg[0]);
  }

  convert() {
    const drdy = this.mcu.gpio[this.pins.drdy];
    const endNs = this.epochNs + (3 + this.index) * this.periodNs;
    this.index += 1;
    this.latest = { index: this.index, endNs, osr: this.osr };
    if (!drdy.inputValue) drdy.setInputValue(true); // unread: DRDY pulses high
    drdy.setInputValue(false);
    this.drdyAlarm.schedule(Math.max(0, endNs + this.periodNs - this.clock.nanos));
  }

  // The conversion's four channels: sinc3 mean over the 3*OSR t_MOD before its end.
  sample(conv) {
    if (!this.weights.has(conv.osr)) this.weights.set(conv.osr, sinc3Weights(conv.osr));
    const w = this.weights.get(conv.osr);
    const codes = [], uv = [], instantNs = [];
    for (let ch = 0; ch < 4; ch++) {
      const phase = this.regs[0x09 + 5 * ch] ?? 0;
      const shift = ((phase & 0xffc0) << 16 >> 22) * T_MOD_NS; // PHASEn[15:6], signed
      let acc = 0;
      for (let k = 0; k < w.length; k++) acc += w[k] * this.inputAt(conv.endNs + shift - (k + 0.5) * T_MOD_NS, ch);
      const code = Math.max(-(2 ** 23), Math.min(2 ** 23 - 1, Math.round(acc * 2 ** 23 / FULL_SCALE_UV)));
      codes.push(code); uv.push(acc);
      instantNs.push(conv.endNs + shift - (w.length / 2) * T_MOD_NS);
    }
    return { codes, uv, instantNs };
  }

  csChanged() {
    const cs = this.mcu.gpio[this.pins.cs];
    const low = cs.outputEnable && !cs.outputValue;
    if (low === this.csLow) return;
    this.csLow = low;
    const now = this.clock.nanos;
    if (low) {
      const conv = this.latest;
      const s = conv ? this.sample(conv) : { codes: [0, 0, 0, 0], uv: [0, 0, 0, 0], instantNs: [] };
      const out = [this.response >> 8, this.response & 0xff, 0];
      for (const c of s.codes) { const u = c & 0xffffff; out.push(u >> 16, (u >> 8) & 0xff, u & 0xff); }
      const crc = crcCcitt(out);
      out.push(crc >> 8, crc & 0xff, 0);
      this.frame = { csLowNs: now, out, in: [], conversion: conv && { ...conv, ...s } };
      this.mcu.gpio[this.pins.drdy].setInputValue(true);
    } else {
      const f = this.frame;
      this.frame = null;
      if (!f) return;
      if (this.spi.busy) this.violation(`ADC: CS rose during an SPI transfer`);
      if (f.in.length !== 18) { this.violation(`ADC: a frame of ${f.in.length} bytes, not 18`); return; }
      this.command(f, now);
    }
  }

  command(f, now) {
    const cmd = (f.in[0] << 8) | f.in[1];
    const data = (f.in[3] << 8) | f.in[4];
    const addr = (cmd >> 7) & 0x3f, count = (cmd & 0x7f) + 1;
    let response = this.regs[REG_STATUS];
    if (cmd === 0x0000) {
      response = this.regs[REG_STATUS];
    } else if (cmd === 0x0011) {
      this.reset(now);
      response = 0xff24;
    } else if ((cmd & 0xe000) === 0xa000 && count === 1) {
      response = this.regs[addr] ?? 0;
    } else if ((cmd & 0xe000) === 0x6000 && count === 1 && addr !== REG_ID && addr !== REG_STATUS) {
      this.regs[addr] = data;
      response = 0x4000 | (addr << 7);
      if (addr === REG_CLOCK) this.restart(now);
    } else {
      this.violation(`ADC: command ${cmd.toString(16).padStart(4, '0')}h is not modelled`);
    }
    this.response = response;
    this.event({ type: 'adc_frame', csLowNs: f.csLowNs, csHighNs: now, command: cmd,
      conversion: f.conversion });
  }

  transfer(value) {
    const spi = this.spi, now = this.clock.nanos;
    const f = this.frame;
    const pinsOk = [this.pins.miso, this.pins.sclk, this.pins.mosi].every((p) => this.mcu.gpio[p].functionSelect === 1);
    if (!f) this.violation('ADC: SCLK with CS high');
    if (spi.spiMode !== 1) this.violation(`ADC: SPI mode ${spi.spiMode}, the part needs mode 1`);
    if (spi.dataBits !== 8) this.violation(`ADC: ${spi.dataBits}-bit SPI frames, the port sends bytes`);
    if (!spi.clockFrequency || spi.clockFrequency > 25e6) this.violation(`ADC: SCLK ${spi.clockFrequency} Hz, over 25 MHz`);
    if (!pinsOk) this.violation('ADC: SPI pins not on the SPI function');
    let reply = 0;
    if (f) { reply = f.out[f.in.length] ?? 0; f.in.push(value & 0xff); }
    const ns = spi.clockFrequency ? (spi.dataBits * 1e9) / spi.clockFrequency : 0;
    const alarm = this.clock.createAlarm(() => spi.completeTransmit(reply));
    alarm.schedule(ns);
    void now;
  }

  syncChanged() {
    const pin = this.mcu.gpio[this.pins.sync];
    const low = pin.outputEnable && !pin.outputValue;
    const now = this.clock.nanos;
    if (low && this.syncLowNs === null) {
      this.syncLowNs = now;
    } else if (!low && this.syncLowNs !== null) {
      const width = now - this.syncLowNs;
      const startNs = this.syncLowNs;
      this.syncLowNs = null;
      if (width < T_CLKIN_NS) this.violation(`ADC: SYNC/RESET low ${width} ns, under 1 t_CLKIN`);
      else if (width >= 2048 * T_CLKIN_NS) this.reset(now);
      else this.restart(now);
      this.event({ type: 'adc_sync', startNs, endNs: now });
    }
  }
}
