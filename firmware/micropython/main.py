# twinrig edge board: the application's main loop (MicroPython runs main.py at boot).
#
# Loop: feed the watchdog; read the RS-485 UART and feed the bytes to the board's
# frame splitter; send each reply with the driver enabled (a slotted broadcast reply
# waits for its slot, `address` x 2 ms after the end of the request); learn once per
# edge of the learn-trigger pin.
#
# Configuration: DEFAULT_CONFIG below, overridden key by key by /config.json on the
# board's filesystem, e.g.
#   {"address": 3, "kind": "mosfet", "initial_state": 3000000}
# The unique id is machine.unique_id() (8 bytes used as is; shorter or longer ids are
# reversed, so the chip-specific bytes seed the generator, and cut/padded to 8), or
# "uid_hex" in the config.

import json

import hal as hal_mod
import tr_board
import tr_protocol as P

DEFAULT_CONFIG = {
    "address": 1,
    "kind": "digipot",          # "digipot" (1) or "mosfet" (2)
    "state_min": None,          # None: the kind's default limits
    "state_max": None,
    "initial_state": None,      # None: state_min
    "uid_hex": None,
    # hardware (pin numbers of the carrier board; RP2040 defaults)
    "adc": [26, 27, 28, 29],    # a_F, b_F, a_C, b_C
    "adc_samples": 16,
    "adc_scale": [2, 1],        # 1:2 input dividers
    "adc_vref_uv": 3300000,
    "actuator": {"type": "x9c", "cs": 10, "ud": 11, "inc": 12, "n_taps": 100},
    "gate_actuator": {"type": "gate", "charge": 10, "discharge": 11, "rc_us": 2200,
                      "rail_uv": 6000000},
    "learn_pin": 15,
    "learn_pull": "down",
    "uart": {"id": 0, "baudrate": 115200, "tx": 0, "rx": 1, "de": 2},
    "wdt_ms": 2000,
    "calibration_file": "calib.bin",
}

KINDS = {"digipot": 1, "mosfet": 2}


def load_config(path="config.json"):
    try:
        with open(path) as f:
            user = json.load(f)
    except (OSError, ValueError):
        user = {}
    cfg = dict(DEFAULT_CONFIG)
    cfg.update(user)
    if cfg["kind"] == "mosfet" and "actuator" not in user:
        cfg["actuator"] = cfg["gate_actuator"]
    return cfg


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
    if hal.learn_edge():
        board.learn()
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
    cfg = load_config()
    hal = hal_mod.MachineHAL(cfg)
    board = make_board(hal, cfg, board_uid(cfg))
    print("twinrig board", cfg["address"], "kind", cfg["kind"], "protocol",
          P.PROTOCOL_VERSION, "fw %d.%d.%d" % tr_board.FW_VERSION)
    run(board, hal)


if __name__ == "__main__":
    main()
