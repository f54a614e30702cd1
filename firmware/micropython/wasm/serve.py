# Line interface to one board of the MicroPython firmware, for the host's bus emulator
# (instruments/bus/runtimes.py, runtime "micropython-wasm"): run_wasm.mjs --serve reads
# one command per line on stdin, passes it to line() inside MicroPython's WebAssembly
# port, and prints the answer. The same lines as the C core's board_sim:
#
#   board ADDR UID KIND MIN MAX INIT FWMAJ FWMIN FWPAT N0 N1 N2 N3 UPTIME  -> "ok"
#   send HEX    (received stream bytes)  -> "none" | "reply HEX DELAY_MS ..." (each reply)
#
# Not part of the firmware (it lives outside the top-level folder that
# `hostctl firmware deploy` copies).

import hal
import tr_board

_board = [None]


def line(text):
    """One command line -> one answer line (errors as "error ...", never an exception)."""
    try:
        words = text.split()
        if not words:
            return "error empty line"
        if words[0] == "board":
            n = [int(w) for w in words[1:2]] + [0] + [int(w) for w in words[3:]]
            addr, kind, lo, hi, init = n[0], n[2], n[3], n[4], n[5]
            fw = (n[6], n[7], n[8])
            nodes = (n[9], n[10], n[11], n[12])
            sim = hal.SimHAL(node_uv=nodes, uptime_ms=n[13])
            _board[0] = tr_board.Board(sim, addr, bytes.fromhex(words[2]), kind, lo, hi, init, fw)
            return "ok"
        if words[0] == "send":
            if _board[0] is None:
                return "error no board"
            data = bytes.fromhex(words[1]) if len(words) > 1 and words[1] != "-" else b""
            out = []
            for reply, slot in _board[0].receive(data):
                out.append("reply " + "".join("%02x" % x for x in reply) + " " + str(slot * 2))
            return " ".join(out) if out else "none"
        return "error unknown command " + words[0]
    except Exception as exc:  # noqa: BLE001 - the host reads the line
        return "error " + repr(exc)
