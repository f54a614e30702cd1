# twinrig edge board: configuration.
#
# DEFAULT_CONFIG (a Raspberry Pi Pico carrier) deep-merged with /config.json: a key
# given in config.json replaces the default, a nested object is merged key by key, so
# {"uart": {"baudrate": 57600}} keeps the UART's pins. The host writes config.json from
# a board-definition file (firmware/boards/*.toml, checked by hostctl/boarddef.py); the
# checks here are the few the board must make itself before it drives a pin.
#
#   cfg = load_config("config.json")     # ConfigError naming the file, key and value
#   if not safe_mode(cfg, machine): ...  # safe mode: no watchdog (maintenance)

import json

KINDS = {"digipot": 1, "mosfet": 2}

# The actuator of each kind when config.json names none.
KIND_ACTUATOR = {"digipot": "x9c", "mosfet": "gate"}

ACTUATOR_DEFAULTS = {
    # X9C10x up/down digipot (no acknowledge: the wiper is counted)
    "x9c": {"type": "x9c", "cs": 10, "ud": 11, "inc": 12, "n_taps": 100},
    # AD5245 I2C digipot, 256 taps (every write acknowledged and read back)
    "ad5245": {"type": "ad5245", "i2c_id": 0, "sda": 4, "scl": 5, "addr": 44,
               "n_taps": 256, "freq": 400000},
    # Gen-2 MOSFET gate: charge/discharge pins through R onto C, gate read back on
    # an ADC channel through a divider; pulses from a hardware one-shot ("pio" on
    # rp2, "rmt" on esp32; None: the port's)
    "gate": {"type": "gate", "charge": 10, "discharge": 11, "readback": 26,
             "readback_scale": [2, 1], "readback_samples": 64, "rc_us": 2200,
             "rail_uv": 6000000, "max_pulse_us": 20000, "settle_us": 20, "timer": None,
             "max_iterations": 8},
}

DEFAULT_CONFIG = {
    "address": 1,
    "kind": "digipot",          # "digipot" (1) or "mosfet" (2)
    "state_min": None,          # None: the kind's default limits
    "state_max": None,
    "initial_state": None,      # None: state_min
    "uid_hex": None,
    "port": None,               # "rp2" or "esp32"; None: sys.platform
    # the four node voltages (a_F, b_F, a_C, b_C): an external simultaneous-sampling
    # ADC (TI ADS131M04 on SPI0) on the Pico, whose own ADC has three usable channels
    "nodes": {"adc": "ads131m04", "pins": [], "samples": 1, "scale": [1, 1],
              "vref_uv": 3300000, "atten": "11db",
              "spi_id": 0, "sck": 18, "mosi": 19, "miso": 16, "cs": 17, "drdy": 20,
              "baudrate": 4000000},
    "actuator": {},             # {"type": ...}; default type per kind (KIND_ACTUATOR)
    # the learn trigger's receiver; GP22 as on the RP2040 C image (firmware/rp2040/src/board.h)
    "learn": {"pin": 22, "pull": "down", "lockout_us": 50},
    "uart": {"id": 0, "baudrate": 115200, "tx": 0, "rx": 1, "de": 2},
    "wdt_ms": 2000,
    "safe_mode": False,         # True: never start the watchdog
    "safe_mode_pin": 13,        # held low at boot (pull-up): safe mode; None: no pin
    "calibration_file": "calib.bin",
    "gate_cal_file": "gate_cal.json",
}


# Keys config.json may give that DEFAULT_CONFIG does not hold (a board definition's
# resolved configuration stays as it was): the protocol the board speaks (PROTOCOL.md:
# 2, the default; 1 for a bus whose host still speaks protocol 1.1, MIGRATION.md) and
# protocol 2's actuator resolution (state units; None: 1 for a digipot, 1000 uV for a
# gate).
OPTIONAL_KEYS = {"protocol": (1, 2), "resolution": None}
DEFAULT_PROTOCOL = 2


class ConfigError(ValueError):
    """A configuration the board refuses: the message names the file, key and value."""


def deep_merge(base, over):
    """A new dict: ``over``'s keys replace ``base``'s, nested dicts merged key by key;
    neither argument is changed."""
    out = {}
    for k in base:
        v = base[k]
        out[k] = deep_merge(v, {}) if isinstance(v, dict) else v
    for k in over:
        v = over[k]
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        elif isinstance(v, dict):
            out[k] = deep_merge(v, {})
        else:
            out[k] = v
    return out


def resolve(user, source="config.json"):
    """DEFAULT_CONFIG deep-merged with ``user``, the actuator's defaults filled in by
    its type. Raises ConfigError for an unknown kind or actuator or a non-object."""
    if not isinstance(user, dict):
        raise ConfigError("%s: the configuration must be a JSON object, not %r" % (source, user))
    for k in user:
        if k not in DEFAULT_CONFIG and k not in OPTIONAL_KEYS:
            raise ConfigError("%s: %s: unknown key (value %r)" % (source, k, user[k]))
    if "protocol" in user and user["protocol"] not in OPTIONAL_KEYS["protocol"]:
        raise ConfigError("%s: protocol: must be 1 or 2 (value %r)" % (source, user["protocol"]))
    res = user.get("resolution")
    if res is not None and (not isinstance(res, int) or res < 1):
        raise ConfigError("%s: resolution: must be a positive integer (value %r)" % (source, res))
    cfg = deep_merge(DEFAULT_CONFIG, user)
    kind = cfg["kind"]
    if kind not in KINDS:
        raise ConfigError("%s: kind: unknown board kind %r (known: %s)"
                          % (source, kind, ", ".join(sorted(KINDS))))
    act = cfg["actuator"]
    if not isinstance(act, dict):
        raise ConfigError("%s: actuator: must be an object, not %r" % (source, act))
    typ = act.get("type") or KIND_ACTUATOR[kind]
    if typ not in ACTUATOR_DEFAULTS:
        raise ConfigError("%s: actuator.type: unknown actuator %r (known: %s)"
                          % (source, typ, ", ".join(sorted(ACTUATOR_DEFAULTS))))
    act = deep_merge(ACTUATOR_DEFAULTS[typ], act)
    act["type"] = typ
    cfg["actuator"] = act
    return cfg


def load_config(path="config.json"):
    """The board's configuration: DEFAULT_CONFIG when ``path`` is missing, else merged
    with it. A file that is not JSON raises ConfigError (a board never runs on a
    configuration it could not read)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return resolve({}, path)
    try:
        user = json.loads(text)
    except ValueError as exc:
        raise ConfigError("%s: not JSON (%s)" % (path, exc))
    return resolve(user, path)


SAFE_MODE_FILE = "SAFE_MODE"


def safe_mode(cfg, machine=None, flag=SAFE_MODE_FILE):
    """True when the board must not start its watchdog: ``safe_mode`` is set, the flag
    file ``SAFE_MODE`` exists (``hostctl firmware deploy`` writes it before a copy and
    removes it after), or the safe-mode pin reads low at boot (a jumper to ground; the
    pin has its pull-up on, MicroPython machine.Pin docs, Pin.PULL_UP). mpremote can then
    copy files without the watchdog resetting the board mid-copy."""
    if cfg.get("safe_mode"):
        return True
    try:
        import os
        os.stat(flag)
        return True
    except OSError:
        pass
    pin = cfg.get("safe_mode_pin")
    if pin is None or machine is None:
        return False
    p = machine.Pin(pin, machine.Pin.IN, machine.Pin.PULL_UP)
    return p.value() == 0
