// The Pico's QSPI flash behind the RP2040's SSI, for the image's own erases and programs.
// rp2040js maps the flash flat for execute-in-place and models neither the SSI's command mode
// nor the flash chip, so both are here, as strict as the image relies on them:
//
// - SSI (RP2040 datasheet 4.10, Synopsys DW_apb_ssi; registers 4.10.13): CTRLR0, CTRLR1,
//   SSIENR, SER, BAUDR, TXFLR, RXFLR, SR, DR0, RX_SAMPLE_DLY, SPI_CTRLR0. CTRLR0, BAUDR and
//   SPI_CTRLR0 written while SSIENR = 1 are ignored by the part (DW_apb_ssi, 4.10) and a violation here.
//   Command mode is standard SPI (SPI_FRF 0), TMOD 0 (transmit and receive), 8-bit frames
//   (DFS_32 7): every byte written to DR0 shifts out in 8 SCK periods (SCK = clk_sys / BAUDR)
//   and the byte shifted in lands in the 16-entry receive FIFO.
// - Chip select: the image holds the flash's /CS low for a whole command by the IO_QSPI
//   override (GPIO_QSPI_SS_CTRL.OUTOVER, 2.19.6.2: 2 drive low, 3 drive high), as the bootrom's
//   flash access functions do (2.8.3.1); a byte sent without /CS forced is a violation here (the SSI
//   would drop /CS whenever its FIFO ran dry).
// - The flash: a Winbond W25Q16JV (2 MiB; the timings PROTOCOL.md quotes): 06h write enable,
//   04h write disable, 05h status register 1 (BUSY bit 0, WEL bit 1), 20h sector erase
//   (4 KiB, busy tSE = 400 ms), 52h and D8h block erase (32 KiB, tBE1 = 1600 ms; 64 KiB,
//   tBE2 = 2000 ms; the address rounded down to the block), 02h page program (1..256 bytes within one 256-byte page, the
//   address wrapping inside it; bits only cleared; busy tPP = 3 ms), 03h read, 9Fh JEDEC id
//   (EF 40 15), 4Bh unique id (four dummy bytes, then 8 bytes). Erase and program need WEL
//   (else ignored, as the part does) and clear it when done; while BUSY only 05h is taken.
//   A protected chip (the harness's --flash-protect: status register 1's BP2..BP0 all set,
//   the whole array protected: the datasheet's status register, block protect) ignores every erase and program: a flash that fails.
// - The XIP cache (2.6.3: 16 KiB, 8-byte lines, in front of the 0x10000000 and 0x11000000
//   aliases): after an erase or program, every line it changed reads its old bytes through the
//   cached aliases until XIP_CTRL.FLUSH is written (2.6.3.2), as if the cache held them all
//   (the strictest case); 0x12000000 and 0x13000000 bypass the cache.
// - Execute-in-place works only while the SSI is as boot2 left it (03h reads, 4.10.13) with
//   /CS not forced and the flash not busy; any read of the XIP window (code or data) at
//   another time is a violation (on a Pico it would read garbage or hang).
export const FLASH_BYTES = 2 * 1024 * 1024;
export const T_SECTOR_ERASE_NS = 400e6; // tSE max (W25Q16JV, PROTOCOL.md)
export const T_PAGE_PROGRAM_NS = 3e6; // tPP max
export const T_BLOCK32_ERASE_NS = 1600e6; // tBE1 max
export const T_BLOCK64_ERASE_NS = 2000e6; // tBE2 max
const SECTOR = 4096, PAGE = 256, FIFO_DEPTH = 16;

export class Flash {
  constructor(mcu, { violation, event, uid, protect = false }) {
    this.mcu = mcu; this.clock = mcu.clock; this.violation = violation; this.event = event;
    this.bytes = mcu.flash; // rp2040js's flat flash (16 MiB buffer; the chip is 2 MiB)
    this.uid = uid;
    this.status = protect ? 0x1c : 0; // bit 0 BUSY, bit 1 WEL, bits 2..4 BP0..BP2
    this.protect = protect;
    this.cs = false; // /CS asserted (low)
    this.cmd = null;
    this.busyAlarm = this.clock.createAlarm(() => this.operationDone());
    this.pending = null;
    this.stale = new Map(); // 8-byte line offset -> its bytes before the last erase/program
    this.onChange = () => {};
  }

  // What the cached aliases read at flash offset `offset` (4 aligned bytes, little-endian).
  cachedWord(offset) {
    const line = this.stale.get(offset & ~7);
    if (!line) return null;
    const k = offset & 4;
    return (line[k] | (line[k + 1] << 8) | (line[k + 2] << 16) | (line[k + 3] << 24)) >>> 0;
  }

  flushCache() {
    this.stale.clear();
    this.onChange();
  }

  get busy() { return (this.status & 1) !== 0; }

  select(low) {
    if (low === this.cs) return;
    this.cs = low;
    if (low) {
      this.cmd = { bytes: [] };
    } else {
      const c = this.cmd;
      this.cmd = null;
      if (c && c.bytes.length) this.execute(c.bytes);
    }
    this.onChange();
  }

  // One byte in on DI while /CS is low; returns the byte out on DO.
  transfer(byte) {
    const c = this.cmd;
    if (!c) return 0xff;
    const i = c.bytes.length;
    c.bytes.push(byte);
    const op = c.bytes[0];
    if (i === 0) {
      if (this.busy && op !== 0x05) this.violation(`flash: command ${hex2(op)}h while busy (only 05h is taken)`);
      return 0xff;
    }
    if (this.busy && op !== 0x05) return 0xff;
    switch (op) {
      case 0x05: return this.status;
      case 0x9f: return [0xef, 0x40, 0x15][i - 1] ?? 0xff;
      case 0x4b: return i >= 5 && i < 13 ? this.uid[i - 5] : 0xff;
      case 0x03: {
        if (i < 4) return 0xff;
        const addr = (c.bytes[1] << 16) | (c.bytes[2] << 8) | c.bytes[3];
        return this.bytes[(addr + i - 4) % FLASH_BYTES];
      }
      default: return 0xff;
    }
  }

  execute(b) {
    const op = b[0];
    if (this.busy) return; // taken only 05h, which has no effect at /CS high
    const addr = b.length >= 4 ? ((b[1] << 16) | (b[2] << 8) | b[3]) % FLASH_BYTES : 0;
    switch (op) {
      case 0x06: if (b.length === 1) this.status |= 2; return;
      case 0x04: if (b.length === 1) this.status &= ~2; return;
      case 0x20:
        if (b.length !== 4) { this.violation(`flash: sector erase of ${b.length} bytes, not 4`); return; }
        if (!(this.status & 2) || this.protect) { this.event({ type: 'flash_ignored', op: 'erase', addr, atNs: this.clock.nanos }); return; }
        this.begin({ op: 'erase', addr: addr & ~(SECTOR - 1), len: SECTOR }, T_SECTOR_ERASE_NS);
        return;
      case 0x52: case 0xd8: {
        const len = op === 0x52 ? 32768 : 65536;
        if (b.length !== 4) { this.violation(`flash: block erase of ${b.length} bytes, not 4`); return; }
        if (!(this.status & 2) || this.protect) { this.event({ type: 'flash_ignored', op: 'erase', addr, atNs: this.clock.nanos }); return; }
        this.begin({ op: 'erase', addr: addr & ~(len - 1), len }, op === 0x52 ? T_BLOCK32_ERASE_NS : T_BLOCK64_ERASE_NS);
        return;
      }
      case 0x02: {
        if (b.length < 5) { this.violation('flash: page program with no data'); return; }
        if (b.length > 4 + PAGE) this.violation(`flash: page program of ${b.length - 4} bytes, over a page`);
        if (!(this.status & 2) || this.protect) { this.event({ type: 'flash_ignored', op: 'program', addr, atNs: this.clock.nanos }); return; }
        this.begin({ op: 'program', addr, len: b.length - 4, data: b.slice(4) }, T_PAGE_PROGRAM_NS);
        return;
      }
      case 0x05: case 0x03: case 0x9f: case 0x4b: return;
      default: this.violation(`flash: command ${hex2(op)}h is not modelled`);
    }
  }

  begin(opn, ns) {
    this.status |= 1;
    this.pending = { ...opn, startNs: this.clock.nanos, totalNs: ns };
    this.busyAlarm.schedule(ns);
    this.onChange();
  }

  // The flash as a power cut now leaves it: an erase or program in progress done in part, in
  // proportion to the time it has had (the part guarantees nothing of a cut one; the state
  // store's CRC must catch it).
  contentsIfCutNow() {
    const out = Uint8Array.from(this.bytes.subarray(0, FLASH_BYTES));
    const p = this.pending;
    if (!p) return out;
    const done = Math.floor(((this.clock.nanos - p.startNs) / p.totalNs) * p.len);
    if (p.op === 'erase') {
      out.fill(0xff, p.addr, p.addr + done);
    } else {
      const page = p.addr & ~(PAGE - 1);
      for (let k = 0; k < done; k++) out[page + ((p.addr + k) & (PAGE - 1))] &= p.data[k];
    }
    return out;
  }

  operationDone() {
    const p = this.pending;
    this.pending = null;
    const before = Uint8Array.from(this.bytes.subarray(p.addr & ~(PAGE - 1), (p.addr & ~(PAGE - 1)) + Math.max(p.len, PAGE) + PAGE));
    const base = p.addr & ~(PAGE - 1);
    if (p.op === 'erase') {
      this.bytes.fill(0xff, p.addr, p.addr + p.len);
    } else {
      const page = p.addr & ~(PAGE - 1);
      p.data.forEach((v, k) => {
        const a = page + ((p.addr + k) & (PAGE - 1)); // the address wraps inside the page
        this.bytes[a] &= v; // programming only clears bits
      });
    }
    for (let line = base; line < base + before.length; line += 8) {
      const old = before.subarray(line - base, line - base + 8);
      if (!this.stale.has(line) && old.some((v, k) => v !== this.bytes[line + k])) this.stale.set(line, Uint8Array.from(old));
    }
    this.status &= ~3;
    this.event({ type: 'flash', op: p.op, addr: p.addr, len: p.len, startNs: p.startNs, endNs: this.clock.nanos });
    this.onChange();
  }
}

const hex2 = (v) => v.toString(16).padStart(2, '0');

// GPIO_QSPI_SS_CTRL's OUTOVER drives the flash's /CS (IO_QSPI, 2.19.6.2).
export class IoQspi {
  constructor(flash) {
    this.flash = flash;
    this.ctrl = new Uint32Array(6); // SCLK, SS, SD0..SD3: STATUS at 8n, CTRL at 8n + 4
    this.name = 'IO_QSPI';
  }
  get csOverride() { return (this.ctrl[1] >> 8) & 3; }
  readUint32(offset) {
    if (offset < 0x30) return offset & 4 ? this.ctrl[offset >> 3] : 0;
    this.flash.violation(`IO_QSPI register ${offset.toString(16)} is not modelled`);
    return 0;
  }
  writeUint32(offset, value) {
    if (offset < 0x30 && offset & 4) {
      this.ctrl[offset >> 3] = value >>> 0;
      if (offset === 0x0c) this.flash.ssi?.csChanged();
      return;
    }
    this.flash.violation(`IO_QSPI register ${offset.toString(16)} is not modelled`);
  }
  writeUint32Atomic(offset, value, type) {
    const cur = this.readUint32(offset);
    this.writeUint32(offset, type === 1 ? cur ^ value : type === 2 ? cur | value : type === 3 ? cur & ~value : value);
  }
}

export class Ssi {
  constructor(mcu, flash, qspi) {
    this.mcu = mcu; this.clock = mcu.clock; this.flash = flash; this.qspi = qspi;
    this.name = 'SSI';
    flash.ssi = this;
    this.ctrlr0 = 0x07000000; this.ctrlr1 = 0; this.ssienr = 0; this.ser = 0; this.baudr = 0;
    this.spiCtrlr0 = 0x03000218; this.rxSampleDly = 0;
    this.tx = []; this.rx = []; this.shifting = false;
    this.shiftAlarm = this.clock.createAlarm(() => this.shiftDone());
  }

  // XIP as boot2 set it: 32-bit frames in EEPROM-read mode, standard SPI, 03h with a 24-bit
  // address, enabled; /CS not forced; the flash not busy.
  get xipOk() {
    const c = this.ctrlr0, s = this.spiCtrlr0;
    return this.ssienr === 1 && ((c >> 16) & 31) === 31 && ((c >> 8) & 3) === 3 && ((c >> 21) & 3) === 0 &&
      (s >>> 24) === 0x03 && ((s >> 8) & 3) === 2 && ((s >> 2) & 15) === 6 && this.qspi.csOverride === 0 &&
      !this.flash.busy;
  }

  csChanged() {
    const o = this.qspi.csOverride;
    if (o === 2) this.flash.select(true);
    else if (o === 3) this.flash.select(false);
    else this.flash.select(false); // normal: the SSI's own /CS, asserted only for XIP reads here
  }

  get commandMode() {
    const c = this.ctrlr0;
    return this.ssienr === 1 && ((c >> 21) & 3) === 0 && ((c >> 8) & 3) === 0 && ((c >> 16) & 31) === 7;
  }

  startShift() {
    if (this.shifting || !this.tx.length) return;
    this.shifting = true;
    const sckHz = this.mcu.clkSys / (this.baudr || 1);
    this.shiftAlarm.schedule((8 * 1e9) / sckHz);
  }

  shiftDone() {
    this.shifting = false;
    const out = this.tx.shift();
    const flash = this.flash;
    if (!flash.cs) flash.violation('SSI: a byte shifted with the flash /CS not forced low (GPIO_QSPI_SS_CTRL)');
    const got = flash.cs ? flash.transfer(out) : 0xff;
    if (this.rx.length >= FIFO_DEPTH) flash.violation('SSI: receive FIFO overrun');
    else this.rx.push(got);
    this.startShift();
  }

  readUint32(offset) {
    switch (offset) {
      case 0x00: return this.ctrlr0;
      case 0x04: return this.ctrlr1;
      case 0x08: return this.ssienr;
      case 0x10: return this.ser;
      case 0x14: return this.baudr;
      case 0x20: return this.tx.length;
      case 0x24: return this.rx.length;
      case 0x28: // SR: BUSY, TFNF, TFE, RFNE, RFF
        return (this.shifting || this.tx.length ? 1 : 0) | (this.tx.length < FIFO_DEPTH ? 2 : 0) |
          (this.tx.length ? 0 : 4) | (this.rx.length ? 8 : 0) | (this.rx.length >= FIFO_DEPTH ? 16 : 0);
      case 0x58: return 0x51535049;
      case 0x5c: return 0x3430312a;
      case 0x60: return this.rx.length ? this.rx.shift() : 0;
      case 0xf0: return this.rxSampleDly;
      case 0xf4: return this.spiCtrlr0;
    }
    this.flash.violation(`SSI register ${offset.toString(16)} is not modelled`);
    return 0;
  }

  writeUint32(offset, value) {
    value >>>= 0;
    const locked = (name) => {
      if (this.ssienr) { this.flash.violation(`SSI: ${name} written while SSIENR = 1 (ignored by the part)`); return true; }
      return false;
    };
    switch (offset) {
      case 0x00: if (!locked('CTRLR0')) this.ctrlr0 = value; break;
      case 0x04: if (!locked('CTRLR1')) this.ctrlr1 = value; break;
      case 0x08:
        this.ssienr = value & 1;
        if (!this.ssienr) { this.tx.length = 0; this.rx.length = 0; } // disabling clears the FIFOs
        break;
      case 0x10: this.ser = value & 1; break;
      case 0x14: if (!locked('BAUDR')) this.baudr = value & 0xffff; break;
      case 0x60:
        if (!this.commandMode) { this.flash.violation('SSI: DR0 written outside standard-SPI 8-bit TX/RX mode'); break; }
        if (this.tx.length >= FIFO_DEPTH) { this.flash.violation('SSI: transmit FIFO overflow'); break; }
        this.tx.push(value & 0xff);
        this.startShift();
        break;
      case 0xf0: this.rxSampleDly = value & 0xff; break;
      case 0xf4: if (!locked('SPI_CTRLR0')) this.spiCtrlr0 = value; break;
      default: this.flash.violation(`SSI register ${offset.toString(16)} is not modelled`); return;
    }
    this.flash.onChange();
  }

  writeUint32Atomic(offset, value, type) {
    const cur = this.readUint32(offset);
    this.writeUint32(offset, type === 1 ? cur ^ value : type === 2 ? cur | value : type === 3 ? cur & ~value : value);
  }
}

// XIP_CTRL (2.6.3.2, registers at 0x14000000): CTRL, FLUSH (write 1: the cache's tags cleared;
// a read of FLUSH completes once done), STAT (FLUSH_READY, FIFO empty).
export class XipCtrl {
  constructor(flash) { this.flash = flash; this.ctrl = 3; this.name = 'XIP_CTRL'; }
  readUint32(offset) {
    switch (offset) {
      case 0x00: return this.ctrl;
      case 0x04: return 0;
      case 0x08: return 0x3;
    }
    this.flash.violation(`XIP_CTRL register ${offset.toString(16)} is not modelled`);
    return 0;
  }
  writeUint32(offset, value) {
    switch (offset) {
      case 0x00: this.ctrl = value & 0xb; return;
      case 0x04: if (value & 1) this.flash.flushCache(); return;
    }
    this.flash.violation(`XIP_CTRL register ${offset.toString(16)} is not modelled`);
  }
  writeUint32Atomic(offset, value, type) {
    const cur = this.readUint32(offset);
    this.writeUint32(offset, type === 1 ? cur ^ value : type === 2 ? cur | value : type === 3 ? cur & ~value : value);
  }
}
