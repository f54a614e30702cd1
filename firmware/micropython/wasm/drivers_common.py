# What the test drivers share (driver.py for protocol 1, driver2.py for protocol 2,
# driver_hw.py for the hardware suites): the output (one JSON object per line), hex
# helpers, the vector files, and the names of the kinds and rules as the vectors spell
# them. Runs inside MicroPython (the WebAssembly port) and CPython. Not part of the
# firmware.

import json

KINDS = {"digipot": 1, "mosfet": 2}
RULES = {"none": 0, "tap": 1, "gate_charging": 2, "continuous": 3}


def hx(b):
    """Bytes as lower-case hex (None stays None)."""
    if b is None:
        return None
    return "".join("%02x" % x for x in b)


def unhx(s):
    return bytes.fromhex(s)


def emit(obj):
    print(json.dumps(obj))


def load(vectors, name):
    """One vector file of the directory ``vectors``, parsed."""
    with open(vectors + "/" + name) as f:
        return json.load(f)
