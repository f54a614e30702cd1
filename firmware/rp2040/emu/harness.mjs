// Runs the twinrig RP2040 image in rp2040js, with the board around it emulated, for the
// Python tests: node harness.mjs IMAGE.uf2 [CONFIG.uf2 ...]
//
// Loading: rp2040js has no bootrom, so this does what the bootrom does for a flash boot
// (RP2040 datasheet 2.8.1): the .uf2 files (the ones the lab flashes) are written to flash,
// boot2's CRC32 is checked (2.8.1.3.1), boot2 is copied to SRAM and run, its SSI settings
// are checked, and it enters the image through 0x10000100. XIP itself is the emulator's
// flat flash mapping.
// Around the chip: UART0 as strict as the PL011 (pl011.mjs) between the RS-485 driver-enable
// pin and a host adapter at 115200 8N1; the ADS131M04 on SPI0 (ads131m04.mjs); the learn
// pin driven on a schedule; the gate pin watched.
//
// Protocol: one JSON object a line on stdin, one answer a line on stdout; times are emulated
// nanoseconds since power-on. Ops: write {data: hex} (the host starts sending it now),
// flush (run until the host has sent it all), read {max_ns} (run until the host has received
// something or max_ns passed; answers data: hex), clear_rx, run {ns}, nodes {uv: [4 x uV],
// at_ns, slope_uv_per_ns: [4]} (ADC inputs from at_ns on: steps, or ramps from uv),
// pin {edges: [[at_ns, 0|1], ...]} (the learn line), events (and clear them), now.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { RP2040 } from 'rp2040js';
import { ADS131M04 } from './ads131m04.mjs';
import { StrictUart } from './pl011.mjs';

const PIN = { tx: 0, rx: 1, de: 2, gateDac: 14, gate: 15, miso: 16, cs: 17, sclk: 18, mosi: 19, drdy: 20, sync: 21, learn: 22 };
const HOST_BAUD = 115200;
const HOST_FORMAT = { bits: 8, parity: 0, stop: 1 };
const UART0_IRQ = 20;
const FLASH_BASE = 0x10000000;

const mcu = new RP2040(); // its default clock is a SimulationClock: emulated time only
const clock = mcu.clock;
const events = [];
const violations = [];
const warnings = [];
const event = (e) => events.push(e);
const violation = (msg) => violations.push({ atNs: clock.nanos, msg });
mcu.logger = {
  debug() {}, info() {},
  warn: (name, msg) => warnings.push(`${name}: ${msg}`),
  error: (name, msg) => violations.push({ atNs: clock.nanos, msg: `${name}: ${msg}` }),
};

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

for (const path of process.argv.slice(2)) loadUf2(path);
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
resets.reset = 0x01ffffff;
const resetsRead = resets.readUint32.bind(resets);
resets.readUint32 = (offset) => (offset === 0x8 ? ~resets.reset & 0x01ffffff : resetsRead(offset));
const guarded = { 0x40014: 5, 0x4001c: 8, 0x40028: 12, 0x40034: 22, 0x4003c: 16, 0x40050: 14, 0x40054: 21 };
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
const uart = new StrictUart(mcu, 'UART0', UART0_IRQ);
mcu.peripherals[0x40034] = uart;
for (const [base, bit] of Object.entries(guarded)) guard(Number(base), bit);
const pin = (n) => mcu.gpio[n];
const driven = (n) => pin(n).outputEnable && pin(n).outputValue;
let deWindow = null;
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
const hostRx = [];
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

// The ADC, the learn line, the gate
const adc = new ADS131M04(mcu, mcu.spi[0], PIN, { violation, event });
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
let gateLevel = 0;
pin(PIN.gate).addListener(() => {
  const level = driven(PIN.gate) ? 1 : 0;
  if (level !== gateLevel) event({ type: 'gate', level, atNs: clock.nanos, setpointUv: gateSetpointUv() });
  gateLevel = level;
});
function scheduleLearn(atNs, level) {
  const a = clock.createAlarm(() => {
    pin(PIN.learn).setInputValue(!!level);
    event({ type: 'learn', level: level ? 1 : 0, atNs: clock.nanos });
  });
  a.schedule(Math.max(0, atNs - clock.nanos));
}
function scheduleNodes(uv, atNs, slope) { adc.setInputs(uv, atNs, slope); }

// Execution: instructions at clk_sys (as the firmware set it), idle time skipped to the next alarm
function run(untilNs, stop = () => false) {
  const { core } = mcu;
  while (clock.nanos < untilNs && !stop()) {
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
