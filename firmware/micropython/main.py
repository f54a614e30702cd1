# twinrig edge board: the application's main loop (MicroPython runs main.py at boot).
#
# Loop: feed the watchdog; read the RS-485 UART and feed the bytes to the board's
# frame splitter; send each reply with the driver enabled (a slotted broadcast reply
# waits for its slot, `address` x 2 ms after the end of the request); learn once per
# edge of the learn-trigger pin.
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


def make_board(hal, cfg, uid):
    kind = cfg["kind"]
    kind = KINDS[kind] if kind in KINDS else int(kind)
    return tr_board.Board(hal, cfg["address"], uid, kind, state_min=cfg.get("state_min"),
                          state_max=cfg.get("state_max"),
                          initial_state=cfg.get("initial_state"))


def step(board, hal):
    """One pass of the loop. Returns the number of replies sent."""
    hal.wdt_feed()
    sent = 0
    data = hal.uart_read()
    if data:
        t_end = hal.ticks_us()   # end of the request(s) just read
        for reply, slot in board.receive(data):
            if slot:
                hal.wait_until_us(t_end + slot * P.SLOT_TIME_MS * 1000)
            hal.uart_write(reply)
            sent += 1
    nodes = hal.learn_edge()
    if nodes is not None:
        board.learn(nodes)
    return sent


MAX_CONSECUTIVE_ERRORS = 50


def run(board, hal, max_loops=None):
    """The main loop; forever unless max_loops is given (tests). An exception in a
    pass is printed and the loop goes on; after MAX_CONSECUTIVE_ERRORS failing passes
    in a row the exception propagates (on a board the watchdog, no longer fed, then
    restarts it)."""
    n = 0
    errors = 0
    while max_loops is None or n < max_loops:
        n += 1
        try:
            if not step(board, hal):
                hal.idle()
            errors = 0
        except Exception as exc:
            errors += 1
            print("twinrig: error in loop:", repr(exc))
            if errors >= MAX_CONSECUTIVE_ERRORS:
                raise
            hal.idle()


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
    board = make_board(hal, cfg, board_uid(cfg))
    print("twinrig board", cfg["address"], "kind", cfg["kind"], "protocol",
          P.PROTOCOL_VERSION, "fw %d.%d.%d" % tr_board.FW_VERSION)
    run(board, hal)


if __name__ == "__main__":
    main()
