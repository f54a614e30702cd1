// A UART as strict as the RP2040's ARM PL011 (RP2040 datasheet 4.2) where the port relies on
// it, in place of rp2040js's UART (which sends a byte the instant it is written and never
// reports BUSY). Modelled: the baud divisors latched by a UARTLCR_H write (4.2.7.1), the
// character time from them and the frame format, the transmit holding register or 32-entry
// FIFO (FEN), BUSY until the last stop bit has left (4.2.8, UARTFR), the receive holding
// register or FIFO with overrun (OE) and framing errors (FE) in UARTDR, the receive interrupt
// at one character (FEN 0) or at the UARTIFLS level, the receive timeout after 32 bit periods
// (4.2.6), and UARTEN/TXE/RXE. A line running at another rate or format than its partner
// gets framing errors, as on the wire.
import { BasePeripheral } from 'rp2040js';

const DR = 0x00, RSR = 0x04, FR = 0x18, IBRD = 0x24, FBRD = 0x28, LCR_H = 0x2c, CR = 0x30;
const IFLS = 0x34, IMSC = 0x38, RIS = 0x3c, MIS = 0x40, ICR = 0x44;
const FR_BUSY = 1 << 3, FR_RXFE = 1 << 4, FR_TXFF = 1 << 5, FR_RXFF = 1 << 6, FR_TXFE = 1 << 7;
const INT_RX = 1 << 4, INT_TX = 1 << 5, INT_RT = 1 << 6, INT_OE = 1 << 10;
const DR_FE = 1 << 8, DR_OE = 1 << 11;
const LEVELS = [1 / 8, 1 / 4, 1 / 2, 3 / 4, 7 / 8];

export class StrictUart extends BasePeripheral {
  constructor(rp2040, name, irq) {
    super(rp2040, name);
    this.irq = irq;
    this.clock = rp2040.clock;
    this.ibrd = 0; this.fbrd = 0; this.latchedDivisor = 0;
    this.lcr = 0; this.cr = 0x300; this.ifls = 0x12; this.imsc = 0; this.ris = 0;
    this.tx = []; this.shifting = null; this.rx = []; this.rsr = 0;
    this.txAlarm = this.clock.createAlarm(() => this.txDone());
    this.rtAlarm = this.clock.createAlarm(() => this.rxTimeout());
    this.onTxByte = null; // (byte, startNs, endNs, format) => void
  }

  get depth() { return this.lcr & (1 << 4) ? 32 : 1; }
  get enabled() { return (this.cr & 1) !== 0; }
  get format() {
    const l = this.lcr;
    return { bits: 5 + ((l >> 5) & 3), parity: (l >> 1) & 1, stop: (l >> 3) & 1 ? 2 : 1 };
  }
  get baud() {
    return this.latchedDivisor ? this.rp2040.clkPeri / (16 * this.latchedDivisor) : 0;
  }
  charNs(baud = this.baud) {
    const f = this.format;
    return (1 + f.bits + f.parity + f.stop) * 1e9 / baud;
  }

  update() {
    const depth = this.depth;
    const rxLevel = depth === 1 ? 1 : Math.max(1, LEVELS[(this.ifls >> 3) & 7] * 32);
    const txLevel = depth === 1 ? 0 : LEVELS[this.ifls & 7] * 32;
    if (this.rx.length >= rxLevel) this.ris |= INT_RX; else this.ris &= ~INT_RX;
    if (this.tx.length <= txLevel) this.ris |= INT_TX; else this.ris &= ~INT_TX;
    this.rp2040.setInterrupt(this.irq, (this.ris & this.imsc) !== 0);
  }

  startTx() {
    if (this.shifting || !this.tx.length || !this.enabled || !(this.cr & (1 << 8))) return;
    const byte = this.tx.shift();
    this.shifting = { byte, startNs: this.clock.nanos, format: this.format, baud: this.baud };
    this.txAlarm.schedule(this.charNs());
    this.update();
  }

  txDone() {
    const s = this.shifting;
    this.shifting = null;
    this.onTxByte?.(s.byte, s.startNs, this.clock.nanos, s);
    this.startTx();
    this.update();
  }

  // A character whose stop bit ends now, sent by the partner at `baud` with `format`.
  receive(byte, baud, format) {
    if (!this.enabled || !(this.cr & (1 << 9))) return false;
    const f = this.format;
    const rateOk = this.baud > 0 && Math.abs(this.baud - baud) / baud < 0.02;
    const formatOk = f.bits === format.bits && f.parity === format.parity;
    let entry = rateOk && formatOk ? byte : (byte ^ 0x5a) | DR_FE;
    if (this.rx.length >= this.depth) {
      this.rsr |= 8; // overrun: the character is lost, OE set on the one in the FIFO
      this.rx[this.rx.length - 1] |= DR_OE;
      this.ris |= INT_OE;
    } else {
      this.rx.push(entry);
    }
    this.ris &= ~INT_RT;
    this.rtAlarm.schedule(32 * 1e9 / (this.baud || baud));
    this.update();
    return true;
  }

  rxTimeout() {
    if (this.rx.length) {
      this.ris |= INT_RT;
      this.update();
    }
  }

  readUint32(offset) {
    switch (offset) {
      case DR: {
        const v = this.rx.length ? this.rx.shift() : 0;
        if (!this.rx.length) this.ris &= ~INT_RT;
        this.update();
        return v;
      }
      case RSR: return this.rsr;
      case FR:
        return ((this.shifting || this.tx.length) ? FR_BUSY : 0) |
          (this.rx.length ? 0 : FR_RXFE) | (this.tx.length >= this.depth ? FR_TXFF : 0) |
          (this.rx.length >= this.depth ? FR_RXFF : 0) | (this.tx.length ? 0 : FR_TXFE);
      case IBRD: return this.ibrd;
      case FBRD: return this.fbrd;
      case LCR_H: return this.lcr;
      case CR: return this.cr;
      case IFLS: return this.ifls;
      case IMSC: return this.imsc;
      case RIS: return this.ris;
      case MIS: return this.ris & this.imsc;
      case 0xfe0: return 0x11;
      case 0xfe4: return 0x10;
      case 0xfe8: return 0x34;
      case 0xfec: return 0x00;
    }
    return super.readUint32(offset);
  }

  writeUint32(offset, value) {
    switch (offset) {
      case DR:
        if (this.tx.length < this.depth) this.tx.push(value & 0xff);
        this.startTx();
        this.update();
        return;
      case RSR: this.rsr = 0; return;
      case IBRD: this.ibrd = value & 0xffff; return;
      case FBRD: this.fbrd = value & 0x3f; return;
      case LCR_H:
        this.lcr = value & 0xff;
        this.latchedDivisor = this.ibrd ? this.ibrd + this.fbrd / 64 : 0;
        this.update();
        return;
      case CR: this.cr = value & 0xff87; this.startTx(); this.update(); return;
      case IFLS: this.ifls = value & 0x3f; this.update(); return;
      case IMSC: this.imsc = value & 0x7ff; this.update(); return;
      case ICR: this.ris &= ~(value & 0x7ff); this.update(); return;
    }
    super.writeUint32(offset, value);
  }
}
