# twinrig edge board: the application's main loop (MicroPython runs main.py at boot).
#
# The protocol is the configuration's "protocol": 2 (PROTOCOL.md, the default:
# tr_board2, the address, state records and firmware slots in files on the board's
# filesystem, tr_store2) or 1 (PROTOCOL-1.md, tr_board, for a bus whose host still
# speaks protocol 1.1: MIGRATION.md).
#
# Loop: feed the watchdog; read the RS-485 UART and feed the bytes to the board's
# frame splitter; send each reply with the driver enabled: protocol 1's slotted
# broadcast reply `address` x 2 ms after the read that brought the request, protocol
# 2's each at its own start after its request's end of frame (the time of the last byte
# read, stamped by the UART's receive-timeout interrupt where the port has one, else the
# read's, less the character times of the bytes that followed the request's 0x00);
# learn once per pulse of the learn-trigger pin.
#
# Configuration: tr_config.DEFAULT_CONFIG deep-merged with /config.json on the board's
# filesystem (written by the host from a board definition, firmware/boards/*.toml), e.g.
#   {"address": 3, "kind": "mosfet", "initial_state": 3000000, "uart": {"de": 3}}
# A configuration the board cannot use stops it before it drives a pin, with the message
# naming the file, key and value. Safe mode (the flag, or the safe-mode pin held low at
# boot) runs the board without its watchdog, so mpremote can copy files.
# The unique id is machine.unique_id() (8 bytes used as is; shorter or longer ids are
# reversed, so the chip-specific bytes seed the generator, and cut/padded to 8), or
# "uid_hex" in the config.

import hal as hal_mod
import tr_board
import tr_config
import tr_protocol as P

DEFAULT_CONFIG = tr_config.DEFAULT_CONFIG
KINDS = tr_config.KINDS
load_config = tr_config.load_config


def board_uid(cfg):
    if cfg.get("uid_hex"):
        uid = bytes.fromhex(cfg["uid_hex"])
    else:
        import machine
        uid = bytes(machine.unique_id())
        if len(uid) != 8:
            uid = bytes(reversed(uid))
    return (uid + bytes(8))[:8]


def protocol_of(cfg):
    """The protocol the configuration asks for (1 or 2)."""
    p = cfg.get("protocol")
    return tr_config.DEFAULT_PROTOCOL if p is None else p


def reset_cause(machine=None):
    """Protocol 2's reset cause of this start from machine.reset_cause(): watchdog,
    pin (a hard reset: the RUN pin), else power_on (an RP2040 reports a brownout as a
    power-on)."""
    if machine is None:
        return 0
    try:
        c = machine.reset_cause()
    except (AttributeError, OSError):
        return 0
    if c == getattr(machine, "WDT_RESET", None):
        return 2
    if c == getattr(machine, "HARD_RESET", None):
        return 6
    return 0


def make_board(hal, cfg, uid, flash=None, cause=0):
    kind = cfg["kind"]
    kind = KINDS[kind] if kind in KINDS else int(kind)
    if protocol_of(cfg) == 2:
        import tr_board2
        import tr_store2
        res = cfg.get("resolution")
        if res is None:
            res = 1000 if kind == 2 else 1
        if hasattr(hal, "start_eof_stamps"):
            hal.start_eof_stamps()
        if flash is None:
            flash = tr_store2.Flash("", getattr(hal, "wdt_feed", None))
        return tr_board2.Board2(hal, flash, uid, kind,
                                cfg.get("state_min"), cfg.get("state_max"),
                                cfg.get("initial_state"), res,
                                baud=cfg["uart"].get("baudrate", 115200), cause=cause)
    return tr_board.Board(hal, cfg["address"], uid, kind, state_min=cfg.get("state_min"),
                          state_max=cfg.get("state_max"),
                          initial_state=cfg.get("initial_state"))


def _plain_add(t, d):
    return t + d


class _Pass:
    """One pass of the loop for a board on a HAL, with every HAL and board method a pass
    calls resolved once, here (a bound method, or None where the HAL has none): a pass
    does no getattr or hasattr by name, and an idle pass allocates nothing (MicroPython
    docs, "Maximising MicroPython speed": cache bound methods out of the loop). A class,
    not a closure: calling a closure over more than a few variables allocates. Reply
    times are ticks values formed with the HAL's ticks_add (ticks wrap: MicroPython
    docs, time.ticks_add); a HAL without one has a clock that does not wrap."""

    def __init__(self, board, hal):
        self.board = board
        self.feed = hal.wdt_feed
        self.read = hal.uart_read
        self.write = hal.uart_write
        self.now = hal.ticks_us
        self.wait = hal.wait_until_us
        self.add = getattr(hal, "ticks_add", None) or _plain_add
        self.edge = hal.learn_edge
        self.receive = board.receive
        self.learn = board.learn
        self.slot_us = P.SLOT_TIME_MS * 1000
        self.stamp = getattr(hal, "last_byte_us", None)
        self.drop = getattr(hal, "drop_echo", None)
        self.hold = getattr(hal, "hold_actuator", None)
        self.char = getattr(board, "char_us", 0)

    def step1(self):
        """Protocol 1's pass: slotted broadcast replies ``address`` x 2 ms after the read."""
        self.feed()
        sent = 0
        data = self.read()
        if data:
            t_end = self.now()   # end of the request(s) just read
            for reply, slot in self.receive(data):
                if slot:
                    self.wait(self.add(t_end, slot * self.slot_us))
                self.write(reply)
                sent += 1
        nodes = self.edge()
        if nodes is not None:
            self.learn(nodes)
        return sent

    def step2(self):
        """Protocol 2's pass: each reply at its start after its request's end of frame."""
        self.feed()
        sent = 0
        data = self.read()
        if data:
            t_last = self.now()
            n = len(data)
            stamp = self.stamp
            if stamp is not None:
                t = stamp(data[n - 1] == 0)
                if t is not None:
                    t_last = t      # the receive interrupt's stamp, not the loop's read
            char = self.char
            for reply, start, end in self.receive(data):
                self.wait(self.add(t_last, start - (n - end) * char))
                self.write(reply)
                sent += 1
            if sent and self.drop is not None:
                self.drop()         # its own reply, heard while driving: not another board's
        nodes = self.edge()
        if nodes is not None:
            self.learn(nodes)
        elif not data and self.hold is not None:
            # an idle pass: a gate restores what its leak took since it was last read
            # back (tr_gate.GateDriver.hold, PROTOCOL.md "Actuator calibration"); the
            # state is the gate read back
            v = self.hold()
            if v is not None:
                self.board.state = v
        # the learn trigger's glitches are read when telemetry is asked for
        # (tr_board2.Board2.take_glitches), not on every pass
        return sent


def stepper(board, hal):
    """The loop's pass for ``board`` on ``hal``: a bound method of no arguments (made
    once) returning the number of replies sent (see _Pass)."""
    p = _Pass(board, hal)
    if getattr(board, "reply_version", None) is None:
        return p.step1
    return p.step2


def step(board, hal):
    """One pass of the loop (resolving the HAL's methods for this one pass). Returns
    the number of replies sent."""
    return stepper(board, hal)()


MAX_CONSECUTIVE_ERRORS = 50


def run(board, hal, max_loops=None):
    """The main loop; forever unless max_loops is given (tests). An exception in a
    pass is printed and the loop goes on; after MAX_CONSECUTIVE_ERRORS failing passes
    in a row the exception propagates (on a board the watchdog, no longer fed, then
    restarts it)."""
    n = 0
    errors = 0
    one = stepper(board, hal)
    idle = hal.idle
    while max_loops is None or n < max_loops:
        n += 1
        try:
            if not one():
                idle()
            errors = 0
        except Exception as exc:
            errors += 1
            print("twinrig: error in loop:", repr(exc))
            if errors >= MAX_CONSECUTIVE_ERRORS:
                raise
            idle()


def main():
    import machine
    try:
        cfg = load_config()
    except tr_config.ConfigError as exc:
        print("twinrig: not started:", exc)
        return
    safe = tr_config.safe_mode(cfg, machine)
    if safe:
        print("twinrig: safe mode, no watchdog")
    hal = hal_mod.MachineHAL(cfg, watchdog=not safe)
    board = make_board(hal, cfg, board_uid(cfg), cause=reset_cause(machine))
    if protocol_of(cfg) == 2:
        print("twinrig board", board.address, "kind", cfg["kind"], "protocol 2",
              "fw %d.%d.%d" % board.firmware.running_version)
    else:
        print("twinrig board", cfg["address"], "kind", cfg["kind"], "protocol",
              P.PROTOCOL_VERSION, "fw %d.%d.%d" % tr_board.FW_VERSION)
    run(board, hal)


if __name__ == "__main__":
    main()
