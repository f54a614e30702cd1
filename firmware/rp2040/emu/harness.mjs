// Runs the twinrig RP2040 image in rp2040js, with the board around it emulated, for the
// Python tests: node harness.mjs [--flash-image FILE] [--flash-uid HEX16] IMAGE.uf2 [CONFIG.uf2 ...]
// (--flash-image: the whole flash as a previous run saved it, flash_save; the .uf2 files are
// written over it. --flash-uid: the flash chip's 64-bit unique id, what its 4Bh returns.
// --flash-protect: a chip whose array is write-protected, so every erase and program fails.)
//
// Loading: rp2040js has no bootrom, so this does what the bootrom does for a flash boot
// (RP2040 datasheet 2.8.1): the .uf2 files (the ones the lab flashes) are written to flash,
// boot2's CRC32 is checked (2.8.1.3.1), boot2 is copied to SRAM and run, its SSI settings
// are checked, and it enters the image (protocol 2: its boot loader) through 0x10000100.
// XIP itself is the emulator's flat flash mapping.
// Around the chip: UART0 as strict as the PL011 (pl011.mjs) between the RS-485 driver-enable
// pin and a host adapter at 115200 8N1; the ADS131M04 on SPI0 (ads131m04.mjs); the learn
// pin driven on a schedule; the gate pin watched.
//
// Protocol: one JSON object a line on stdin, one answer a line on stdout; times are emulated
// nanoseconds since power-on. Ops: write {data: hex} (the host starts sending it now),
// flush (run until the host has sent it all), read {max_ns} (run until the host has received
// something or max_ns passed; answers data: hex), clear_rx, run {ns}, nodes {uv: [4 x uV],
// at_ns, slope_uv_per_ns: [4]} (ADC inputs from at_ns on: steps, or ramps from uv),
// pin {edges: [[at_ns, 0|1], ...]} (the learn line), analog {vsys_uv, temperature_mdegc}
// (the RP2040 ADC's inputs: VSYS through the Pico's 1:3 divider on ADC3/GP29, and the
// temperature sensor's voltage on ADC4, 4.9.5), gate {r_ohm, r_on_ohm, c_uf, r_leak_ohm,
// noise_lsb, seed, v_uv} (the gate model's parts, below; v_uv sets its voltage now) and
// gate_state (its voltage now, uV, its parts, the ADC0 conversions so far and the core's
// cycles), adc_clock {running} (the ADS131M04's clock lost or back), flash_save {path} (the 2 MiB flash to a file,
// as a power cut now would leave it: an erase or program in progress done in part),
// flash_read {addr, len} (hex), events (and clear them), now.
// The flash (flash.mjs): the SSI, the IO_QSPI /CS override and a W25Q16JV with its erase and
// program times, for the image's own writes; XIP reads only while the SSI is set for them.
// The watchdog (watchdog.mjs, datasheet 4.7): a timeout or a triggered reset restarts the
// chip here: the core, RAM and every peripheral afresh (a new rp2040js instance on the same
// emulated clock; the alarms of the old one dropped) and the bootrom's flash boot again,
// while the flash chip (contents, an operation in progress), the watchdog's REASON, SCRATCH
// and TICK, and the board around the chip (the host adapter, the ADC's inputs, the learn
// line) carry on. The ADS131M04 model starts afresh too (the image resets the part at
// start-up anyway). Events watchdog_reset {cause: timer | trigger} and chip_reset mark it.
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { RP2040 } from 'rp2040js';
import { ADS131M04 } from './ads131m04.mjs';
import { Flash, FLASH_BYTES, IoQspi, Ssi, XipCtrl } from './flash.mjs';
import { StrictUart } from './pl011.mjs';
import { Watchdog } from './watchdog.mjs';

const PIN = { tx: 0, rx: 1, de: 2, gateDac: 14, gate: 15, miso: 16, cs: 17, sclk: 18, mosi: 19, drdy: 20, sync: 21, learn: 22 };
const HOST_BAUD = 115200;
const HOST_FORMAT = { bits: 8, parity: 0, stop: 1 };
const UART0_IRQ = 20;
const FLASH_BASE = 0x10000000;

let mcu = new RP2040(); // its default clock is a SimulationClock: emulated time only
const clock = mcu.clock; // and every later instance (a watchdog reset) runs on it
const events = [];
const violations = [];
const warnings = [];
const event = (e) => events.push(e);
const violation = (msg) => violations.push({ atNs: clock.nanos, msg });
const logger = {
  debug() {}, info() {},
  warn: (name, msg) => warnings.push(`${name}: ${msg}`),
  error: (name, msg) => violations.push({ atNs: clock.nanos, msg: `${name}: ${msg}` }),
};
mcu.logger = logger;

function loadUf2(path) {
  const buf = readFileSync(path);
  if (buf.length % 512) throw new Error(`${path}: not whole 512-byte UF2 blocks`);
  for (let off = 0; off < buf.length; off += 512) {
    const w = (i) => buf.readUInt32LE(off + 4 * i);
    if (w(0) !== 0x0a324655 || w(1) !== 0x9e5d5157 || buf.readUInt32LE(off + 508) !== 0x0ab16f30) {
      throw new Error(`${path}: block ${off / 512} has bad UF2 magic`);
    }
    if (!(w(2) & 0x2000) || w(7) !== 0xe48bff56) throw new Error(`${path}: not an RP2040 family block`);
    const addr = w(3), size = w(4);
    if (addr < FLASH_BASE || addr + size > FLASH_BASE + 2 * 1024 * 1024) {
      throw new Error(`${path}: block at ${addr.toString(16)} outside the 2 MiB flash`);
    }
    mcu.flash.set(buf.subarray(off + 32, off + 32 + size), addr - FLASH_BASE);
  }
}

function boot2Crc(bytes) {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b << 24;
    for (let i = 0; i < 8; i++) crc = crc & 0x80000000 ? ((crc << 1) ^ 0x04c11db7) >>> 0 : (crc << 1) >>> 0;
  }
  return crc >>> 0;
}

const args = process.argv.slice(2);
let flashUid = [0xe6, 0x61, 0x41, 0x04, 0x03, 0x27, 0x2b, 0x21];
let flashProtect = false;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--flash-image') {
    const img = readFileSync(args[++i]);
    if (img.length !== FLASH_BYTES) throw new Error(`${args[i]}: not a ${FLASH_BYTES}-byte flash image`);
    mcu.flash.set(img, 0);
  } else if (args[i] === '--flash-protect') {
    flashProtect = true;
  } else if (args[i] === '--flash-uid') {
    flashUid = [...Buffer.from(args[++i], 'hex')];
    if (flashUid.length !== 8) throw new Error('--flash-uid takes 16 hex digits');
  } else {
    loadUf2(args[i]);
  }
}

// The flash chip (flash.mjs) and the watchdog (watchdog.mjs) outlive a watchdog reset; so do
// the alarms of the world around the chip (kept), while the chip's own end with it.
const flash = new Flash(mcu, { violation, event, uid: flashUid, protect: flashProtect });
let resetPending = null;
const watchdog = new Watchdog(clock, {
  violation, event,
  refHz: () => mcu.clocks.refFreq,
  psmWdsel: () => mcu.peripherals[0x40010].wdsel,
  reset: (kind) => { resetPending = kind; },
});
const kept = new Set([flash.busyAlarm, watchdog.alarm]);
let core, wakes, ssiModel, uart, adc, sysAdc;
const pin = (n) => mcu.gpio[n];
const driven = (n) => pin(n).outputEnable && pin(n).outputValue;
let deWindow = null;
let gateLevel = 0;
let learnLevel = false;
const hostRx = [];

const hostTx = [];
let hostSending = false;
const hostCharNs = (10 * 1e9) / HOST_BAUD;
const hostAlarm = clock.createAlarm(() => {
  const byte = hostTx.shift();
  if (driven(PIN.de)) violation('the host sent while the board drove the bus');
  else if (pin(PIN.rx).functionSelect !== 2) violation('UART0 RX pin not on the UART function');
  else uart.receive(byte, HOST_BAUD, HOST_FORMAT);
  hostSending = hostTx.length > 0;
  if (hostSending) hostAlarm.schedule(hostCharNs);
  else event({ type: 'host_sent', atNs: clock.nanos });
});
function hostWrite(bytes) {
  hostTx.push(...bytes);
  if (!hostSending && hostTx.length) { hostSending = true; hostAlarm.schedule(hostCharNs); }
}
kept.add(hostAlarm);

// The RP2040's own ADC (4.9): 12 bits of ADC_AVDD = 3.3 V. Channel 0 is GP26, the gate
// through the board's unity-gain buffer and 1:2 divider, sampled at the conversion's start,
// with Gaussian noise of noiseLsb codes rms: 2.83 codes with the quantisation's 0.29 is an
// ENOB of 8.7 bits (4.9.3: (12 - 8.7) bits over sqrt(12)); the DNL of 4.9.4 (and erratum
// RP2040-E11) is not modelled. Channel 3 is GP29, VSYS through
// the Pico's 200k/100k divider; channel 4 the temperature sensor, V = 0.706 V - (T - 27 degC)
// * 1.721 mV/degC (4.9.5). The part needs clk_adc running, the sensor's bias on (CS.TS_EN)
// for channel 4, and the pin's digital input off for channel 3 (4.9); a read without them is
// a violation. The codes read are in the events, for the test to check the arithmetic.
const ADC_VREF_UV = 3.3e6;
const analog = { vsysUv: 5.0e6, temperatureMdegc: 27_000 };
const adcCode = (uv) => Math.max(0, Math.min(4095, Math.round((uv / ADC_VREF_UV) * 4096)));
const gateAdc = { conversions: 0 };

// The gate setpoint: PWM slice 7 channel A on GPIO14 (4.5), filtered and amplified by 2.
const GATE_FULL_SCALE_UV = 6.6e6;
function gateSetpointUv() {
  const slice = 0x40050000 + 0x14 * 7;
  if (pin(PIN.gateDac).functionSelect !== 4 || !(mcu.readUint32(slice) & 1)) {
    violation('a gate pulse with the setpoint PWM off');
    return null;
  }
  const cc = mcu.readUint32(slice + 0x0c) & 0xffff, top = mcu.readUint32(slice + 0x10) & 0xffff;
  return (Math.min(cc, top + 1) / (top + 1)) * GATE_FULL_SCALE_UV;
}
// The gate itself: a node of C charged through R (the gate resistor and the switch's
// on-resistance) from the source while PIN_GATE is high, and leaking to ground through
// R_leak always (the capacitor's insulation, the MOSFET's gate and the read-back buffer's
// input): C dv/dt = (S - v) / R - v / R_leak. Between changes of the switch or the source
// that is an exact exponential, evaluated at each change and at each ADC conversion, in
// emulated time. The parts differ from the board's nominal 1 kOhm and 2.2 uF on purpose,
// so a board on its nominal table moves the gate by other amounts than it expects.
const gateModel = { rOhm: 1000, rOnOhm: 15, cUf: 2.31, rLeakOhm: 1e10, noiseLsb: 2.83, vUv: 0, atNs: 0, on: false, sourceUv: 0 };
function gateAdvance() {
  const g = gateModel, dtS = (clock.nanos - g.atNs) * 1e-9;
  if (dtS > 0) {
    const c = g.cUf * 1e-6, rLeak = g.rLeakOhm;
    if (g.on) {
      const r = g.rOhm + g.rOnOhm, rPar = (r * rLeak) / (r + rLeak);
      const vInf = (g.sourceUv * rLeak) / (r + rLeak);
      g.vUv = vInf + (g.vUv - vInf) * Math.exp(-dtS / (rPar * c));
    } else {
      g.vUv *= Math.exp(-dtS / (rLeak * c));
    }
  }
  g.atNs = clock.nanos;
}
// The source is the PWM's mean, filtered and amplified by 2, taken as settled at once
// (the image waits GATE_SOURCE_SETTLE_US after changing it; the filter is not modelled).
function gateSourceChanged() {
  gateAdvance();
  const slice = 0x40050000 + 0x14 * 7;
  const on = pin(PIN.gateDac).functionSelect === 4 && (mcu.readUint32(slice) & 1);
  const cc = mcu.readUint32(slice + 0x0c) & 0xffff, top = mcu.readUint32(slice + 0x10) & 0xffff;
  gateModel.sourceUv = on ? (Math.min(cc, top + 1) / (top + 1)) * GATE_FULL_SCALE_UV : 0;
}
// The read-back's noise: seeded (mulberry32, Box-Muller), so a run repeats exactly.
let noiseSeed = 0x2040;
function uniform() {
  noiseSeed = (noiseSeed + 0x6d2b79f5) | 0;
  let t = noiseSeed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
function gaussian() {
  return Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

// The chip: at power-on, and afresh after every watchdog reset.
function wireChip() {
  mcu.logger = logger;
  // The SSI in place of rp2040js's SSI stub, before boot2 runs (flash.mjs); the watchdog
  const qspi = new IoQspi(flash);
  ssiModel = new Ssi(mcu, flash, qspi);
  mcu.peripherals[0x18000] = ssiModel;
  mcu.peripherals[0x40018] = qspi;
  mcu.peripherals[0x14000] = new XipCtrl(flash);
  mcu.peripherals[0x40058] = watchdog;

  // The timer's alarms fire when the 1 us count equals ALARMn (RP2040 datasheet 4.6.1): never
  // early, as rp2040js would by up to a fraction of a microsecond; an alarm set to the current
  // count or before it fires when the count comes round again (2^32 us).
  const timer = mcu.peripherals[0x40054];
  const timerWrite = timer.writeUint32.bind(timer);
  timer.writeUint32 = (offset, value) => {
    if (offset < 0x10 || offset > 0x1c) return timerWrite(offset, value);
    const alarm = timer.alarms[(offset - 0x10) / 4];
    const nowUs = Math.floor(clock.nanos / 1000);
    const ticks = ((value - nowUs) >>> 0) || 2 ** 32;
    alarm.armed = true;
    alarm.targetMicros = value >>> 0;
    alarm.clockAlarm.schedule((nowUs + ticks) * 1000 - clock.nanos);
  };

  // Resets (2.14): the subsystems this port uses are held in reset until the firmware releases
  // them (RESET's reset value is 0x01ffffff); touching one still in reset is a violation.
  const resets = mcu.peripherals[0x4000c];
  resets.reset = 0x01ffffff & ~((1 << 6) | (1 << 9)); // the bootrom leaves IO_QSPI and PADS_QSPI out of reset
  const resetsRead = resets.readUint32.bind(resets);
  resets.readUint32 = (offset) => (offset === 0x8 ? ~resets.reset & 0x01ffffff : resetsRead(offset));
  const guarded = { 0x4004c: 0, 0x40014: 5, 0x4001c: 8, 0x40028: 12, 0x40034: 22, 0x4003c: 16, 0x40050: 14, 0x40054: 21 };
  function guard(base, bit) {
    const p = mcu.peripherals[base];
    const read = p.readUint32.bind(p), write = p.writeUint32.bind(p);
    const check = (offset) => {
      if (resets.reset & (1 << bit)) violation(`${p.name} register ${offset.toString(16)} used while in reset`);
    };
    p.readUint32 = (offset) => { check(offset); return read(offset); };
    p.writeUint32 = (offset, value) => { check(offset); write(offset, value); };
  }

  // UART0, the transceiver and the host's adapter
  uart = new StrictUart(mcu, 'UART0', UART0_IRQ);
  mcu.peripherals[0x40034] = uart;
  for (const [base, bit] of Object.entries(guarded)) guard(Number(base), bit);
  pin(PIN.de).addListener(() => {
    const high = driven(PIN.de);
    if (high && !deWindow) {
      deWindow = { riseNs: clock.nanos, firstStartNs: null, lastStopNs: null, bytes: 0 };
    } else if (!high && deWindow) {
      if (uart.shifting) {
        violation('DE dropped during a character');
        uart.shifting.cut = true;
      }
      event({ type: 'de', ...deWindow, fallNs: clock.nanos });
      deWindow = null;
    }
  });
  uart.onTxByte = (byte, startNs, endNs, s) => {
    if (pin(PIN.tx).functionSelect !== 2) { violation('UART0 TX pin not on the UART function'); return; }
    if (!deWindow || deWindow.riseNs > startNs || s.cut) { violation('a byte sent with DE low'); return; }
    deWindow.firstStartNs ??= startNs;
    deWindow.lastStopNs = endNs;
    deWindow.bytes += 1;
    const rateOk = Math.abs(s.baud - HOST_BAUD) / HOST_BAUD < 0.02;
    const formatOk = s.format.bits === 8 && s.format.parity === 0;
    if (!rateOk || !formatOk) violation(`UART0 sends at ${Math.round(s.baud)} baud ${s.format.bits} bits`);
    hostRx.push(rateOk && formatOk ? byte : byte ^ 0x5a);
  };

  // The ADC, the learn line, the gate
  adc = new ADS131M04(mcu, mcu.spi[0], PIN, { violation, event });
  // the gate's source follows the PWM's registers, its switch PIN_GATE (the model above)
  const pwm = mcu.peripherals[0x40050];
  const pwmWrite = pwm.writeUint32.bind(pwm);
  pwm.writeUint32 = (offset, value) => { gateAdvance(); pwmWrite(offset, value); gateSourceChanged(); };
  pin(PIN.gate).addListener(() => {
    const level = driven(PIN.gate) ? 1 : 0;
    if (level !== gateLevel) {
      gateSourceChanged();
      gateModel.on = level === 1;
      event({ type: 'gate', level, atNs: clock.nanos, setpointUv: gateSetpointUv(), gateUv: gateModel.vUv });
    }
    gateLevel = level;
  });

  sysAdc = mcu.adc;
  sysAdc.onADCRead = (channel) => {
    if (!(mcu.readUint32(0x40008060) & (1 << 11))) violation('RP2040 ADC read with clk_adc off');
    if (channel === 4 && !(sysAdc.cs & 2)) violation('RP2040 ADC channel 4 read with the temperature sensor off (TS_EN)');
    if (channel === 3 && mcu.readUint32(0x4001c004 + 4 * 29) & (1 << 6)) violation('RP2040 ADC channel 3 read with GP29 digital input on');
    if (channel === 0 && mcu.readUint32(0x4001c004 + 4 * 26) & (1 << 6)) violation('RP2040 ADC channel 0 read with GP26 digital input on');
    if (channel === 0) {
      gateAdvance();
      const code = Math.max(0, Math.min(4095, Math.round((gateModel.vUv / 2 / ADC_VREF_UV) * 4096 + gateModel.noiseLsb * gaussian())));
      sysAdc.channelValues[0] = code;
      gateAdc.conversions += 1;
      sysAdc.currentChannel = 0;
      sysAdc.sampleAlarm.schedule(sysAdc.sampleTime * 1000);
      return;
    }
    const uv = channel === 3 ? analog.vsysUv / 3 : channel === 4 ? 706_000 - (analog.temperatureMdegc - 27_000) * 1.721 : 0;
    const code = adcCode(uv);
    sysAdc.channelValues[channel] = code;
    event({ type: 'sys_adc', channel, code, atNs: clock.nanos });
    sysAdc.currentChannel = channel;
    sysAdc.sampleAlarm.schedule(sysAdc.sampleTime * 1000);
  };

  // WFI as the ARMv6-M Architecture Reference Manual has it: it ends
  // when an enabled interrupt is pending, even one that was pending before it, and with PRIMASK
  // set the interrupt only ends the WFI: it is taken once PRIMASK clears. rp2040js takes it at
  // once even with PRIMASK set and sleeps through one already pending; the flash routines
  // (flash.c) sleep between status polls with interrupts masked, so that is corrected here.
  core = mcu.core;
  const coreCheckForInterrupts = core.checkForInterrupts.bind(core);
  wakes = () => (core.pendingInterrupts & core.enabledInterrupts) !== 0;
  core.checkForInterrupts = () => {
    if (core.waiting && core.PM) return wakes();
    return coreCheckForInterrupts();
  };
}


// The bootrom's flash boot (2.8.1): at power-on and after a watchdog reset.
function bootromBoot() {
  const stored = new DataView(mcu.flash.buffer).getUint32(252, true);
  if (boot2Crc(mcu.flash.subarray(0, 252)) !== stored) {
    process.stdout.write(JSON.stringify({ error: 'boot2 CRC32 mismatch: the bootrom would not boot this flash' }) + '\n');
    process.exit(2);
  }
  // As the bootrom: boot2 copied to the top of SRAM and entered with lr = 0 (2.8.1.3); it
  // must set the SSI up for XIP reads and enter the image through 0x10000100.
  const BOOT2_SRAM = 0x20041f00;
  mcu.sram.set(mcu.flash.subarray(0, 256), BOOT2_SRAM - 0x20000000);
  mcu.core.SP = 0x20042000;
  mcu.core.LR = 0;
  mcu.core.PC = BOOT2_SRAM;
  const entry = mcu.readUint32(FLASH_BASE + 0x104) & ~1;
  for (let n = 0; mcu.core.PC !== entry; n++) {
    if (n > 10000 || (mcu.core.PC >= 0x20000000 && mcu.core.PC < BOOT2_SRAM)) {
      process.stdout.write(JSON.stringify({ error: `boot2 did not enter the image (pc ${mcu.core.PC.toString(16)})` }) + '\n');
      process.exit(2);
    }
    clock.tick((mcu.core.executeInstruction() * 1e9) / mcu.clkSys);
  }
  // What boot2 left in the SSI (4.10.13) must be a W25Q16JV's 03h read: 8-bit instruction
  // 03h, 24-bit address, standard SPI, 32-bit frames in EEPROM-read mode, enabled, SCK even.
  const ssi = (offset) => mcu.readUint32(0x18000000 + offset);
  const ctrlr0 = ssi(0x00), spiCtrlr0 = ssi(0xf4), baudr = ssi(0x14);
  if (((ctrlr0 >> 16) & 31) !== 31 || ((ctrlr0 >> 8) & 3) !== 3 || ((ctrlr0 >> 21) & 3) !== 0 ||
      (spiCtrlr0 >>> 24) !== 0x03 || ((spiCtrlr0 >> 8) & 3) !== 2 || ((spiCtrlr0 >> 2) & 15) !== 6 ||
      (spiCtrlr0 & 3) !== 0 || ssi(0x08) !== 1 || baudr < 2 || baudr & 1) {
    violation(`boot2 left the SSI unable to read the flash: CTRLR0 ${ctrlr0.toString(16)}, SPI_CTRLR0 ${spiCtrlr0.toString(16)}, BAUDR ${baudr}`);
  }
  if (mcu.core.VTOR !== FLASH_BASE + 0x100 || mcu.core.SP !== mcu.readUint32(FLASH_BASE + 0x100)) {
    violation('boot2 did not set VTOR and SP from the image vector table');
  }
  // From here on the XIP window (0x10000000..0x13ffffff, 2.6.3) reads only while the SSI is set
  // for it: while the image has it in command mode or the flash is busy, any read of it, an
  // instruction fetch included, is a violation (on a Pico it would read garbage or stall).
  // After an erase or program and until XIP_CTRL.FLUSH, the cached aliases read the old bytes
  // of every line it changed (flash.mjs). rp2040js reads words, halfwords (instruction
  // fetches) and bytes by three paths, so all three are wrapped while either applies.
  const flatRead = { 32: mcu.readUint32.bind(mcu), 16: mcu.readUint16.bind(mcu), 8: mcu.readUint8.bind(mcu) };
  const inXip = (a) => a >= FLASH_BASE && a < 0x14000000;
  function readThrough(word) {
    mcu.readUint32 = (address) => {
      const a = address >>> 0;
      const w = inXip(a) ? word(a & ~3) : null;
      return w === null ? flatRead[32](address) : w;
    };
    mcu.readUint16 = (address) => {
      const a = address >>> 0;
      const w = inXip(a) ? word(a & ~3) : null;
      return w === null ? flatRead[16](address) : (a & 2 ? w >>> 16 : w & 0xffff);
    };
    mcu.readUint8 = (address) => {
      const a = address >>> 0;
      const w = inXip(a) ? word(a & ~3) : null;
      return w === null ? flatRead[8](address) : (w >>> (8 * (a & 3))) & 0xff;
    };
  }
  let xipOffReported = false;
  const xipOff = (a) => {
    if (!xipOffReported) violation(`read of ${a.toString(16)} from flash while XIP is off (pc ${mcu.core.PC.toString(16)})`);
    xipOffReported = true;
    return 0xffffffff;
  };
  const cached = (a) => (a < 0x12000000 ? flash.cachedWord(a & 0xfffffc) : null);
  flash.onChange = () => {
    if (!ssiModel.xipOk) {
      readThrough(xipOff);
    } else {
      xipOffReported = false;
      if (flash.stale.size) readThrough(cached);
      else { delete mcu.readUint32; delete mcu.readUint16; delete mcu.readUint8; }
    }
  };
  flash.onChange();
}

function scheduleLearn(atNs, level) {
  const a = clock.createAlarm(() => {
    kept.delete(a);
    learnLevel = !!level;
    pin(PIN.learn).setInputValue(learnLevel);
    event({ type: 'learn', level: level ? 1 : 0, atNs: clock.nanos });
  });
  kept.add(a);
  a.schedule(Math.max(0, atNs - clock.nanos));
}
function scheduleNodes(uv, atNs, slope) { adc.setInputs(uv, atNs, slope); }

// A watchdog reset (watchdog.mjs): the chip's alarms dropped, a new chip on the same clock
// and flash, booted as at power-on.
function chipReset(kind) {
  const drop = [];
  for (let a = clock.nextAlarm; a; a = a.next) if (!kept.has(a)) drop.push(a);
  for (const a of drop) a.cancel();
  const inputs = adc.inputs;
  const flashBytes = mcu.flash;
  mcu = new RP2040(clock);
  mcu.flash = flashBytes;
  mcu.flash16 = new Uint16Array(flashBytes.buffer);
  mcu.flashView = new DataView(flashBytes.buffer);
  flash.onChange = () => {}; // the old chip's XIP watch, until bootromBoot sets the new one's
  flash.select(false);
  flash.stale.clear();
  if (deWindow) { event({ type: 'de', ...deWindow, fallNs: clock.nanos }); deWindow = null; }
  gateLevel = 0;
  gateAdvance(); // the gate keeps its charge; the reset opens its switch and stops the PWM
  gateModel.on = false;
  gateModel.sourceUv = 0;
  const adcHalted = adc.halted; // the ADS131M04 is another chip: a reset of the RP2040 leaves it
  wireChip();
  adc.inputs = inputs;
  if (adcHalted) adc.setClock(false, clock.nanos);
  pin(PIN.learn).setInputValue(learnLevel);
  event({ type: 'chip_reset', cause: kind, atNs: clock.nanos });
  bootromBoot();
}

wireChip();
bootromBoot();

// Execution: instructions at clk_sys (as the firmware set it), idle time skipped to the next alarm
function run(untilNs, stop = () => false) {
  for (;;) {
    if (resetPending) {
      const kind = resetPending;
      resetPending = null;
      chipReset(kind);
    }
    if (clock.nanos >= untilNs || stop()) break;
    if (core.waiting && wakes()) {
      core.waiting = false;
      core.interruptsUpdated = true;
    }
    if (core.waiting) {
      const next = clock.nextAlarm;
      const dt = next ? Math.max(0, Math.min(next.nanos, untilNs) - clock.nanos) : untilNs - clock.nanos;
      clock.tick(dt);
    } else {
      clock.tick((core.executeInstruction() * 1e9) / mcu.clkSys);
    }
  }
}

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const ops = {
  write: (m) => { hostWrite([...Buffer.from(m.data, 'hex')]); return {}; },
  flush: () => { run(Infinity, () => !hostSending); return {}; },
  read: (m) => {
    run(clock.nanos + m.max_ns, () => hostRx.length > 0);
    return { data: hex(hostRx.splice(0)) };
  },
  clear_rx: () => { hostRx.length = 0; return {}; },
  run: (m) => { run(clock.nanos + m.ns); return {}; },
  nodes: (m) => { scheduleNodes(m.uv, m.at_ns ?? clock.nanos, m.slope_uv_per_ns); return {}; },
  pin: (m) => { for (const [at, level] of m.edges) scheduleLearn(at, level); return {}; },
  analog: (m) => {
    if (m.vsys_uv !== undefined) analog.vsysUv = m.vsys_uv;
    if (m.temperature_mdegc !== undefined) analog.temperatureMdegc = m.temperature_mdegc;
    return {};
  },
  gate: (m) => {
    gateAdvance();
    const g = gateModel;
    if (m.r_ohm !== undefined) g.rOhm = m.r_ohm;
    if (m.r_on_ohm !== undefined) g.rOnOhm = m.r_on_ohm;
    if (m.c_uf !== undefined) g.cUf = m.c_uf;
    if (m.r_leak_ohm !== undefined) g.rLeakOhm = m.r_leak_ohm;
    if (m.noise_lsb !== undefined) g.noiseLsb = m.noise_lsb;
    if (m.seed !== undefined) noiseSeed = m.seed | 0;
    if (m.v_uv !== undefined) g.vUv = m.v_uv;
    return {};
  },
  adc_clock: (m) => { adc.setClock(Boolean(m.running), clock.nanos); return {}; },
  gate_state: () => {
    gateAdvance();
    const g = gateModel;
    return { v_uv: g.vUv, source_uv: g.sourceUv, on: g.on, r_ohm: g.rOhm + g.rOnOhm, c_uf: g.cUf,
             r_leak_ohm: g.rLeakOhm, noise_lsb: g.noiseLsb, conversions: gateAdc.conversions, cycles: mcu.core.cycles };
  },
  flash_save: (m) => { writeFileSync(m.path, flash.contentsIfCutNow()); return { busy: flash.busy }; },
  flash_read: (m) => ({ data: hex(mcu.flash.subarray(m.addr, m.addr + m.len)) }),
  events: () => ({ events: events.splice(0), violations: violations.splice(0), warnings: warnings.splice(0) }),
  now: () => ({}),
};

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let answer;
  try {
    const m = JSON.parse(line);
    const op = ops[m.op];
    answer = op ? op(m) : { error: `unknown op ${m.op}` };
  } catch (err) {
    answer = { error: String(err && err.stack || err) };
  }
  answer.now_ns = clock.nanos;
  process.stdout.write(JSON.stringify(answer) + '\n');
});
