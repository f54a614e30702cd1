"""Board-definition files (``firmware/boards/*.toml``): checked, merged, turned into config.json.

A board definition names what differs on one carrier board (pins, the node ADC, the
actuator, the port); it is deep-merged over the firmware's own defaults
(``firmware/micropython/tr_config.py``, the single copy of them), checked by the pydantic
schema below, and written as the board's ``config.json``. Every refusal is one
:class:`BoardDefError` naming the file, the field and the bad value.

    cfg = load_board("firmware/boards/pico.toml")        # the merged, checked dict
    text = config_json(cfg)                               # what goes on the board
"""

from __future__ import annotations

import importlib.util
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware" / "micropython"


def _firmware_module(name: str):
    spec = importlib.util.spec_from_file_location(f"_twinrig_fw_{name}", FIRMWARE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_CFG = _firmware_module("tr_config")
_ADC = _firmware_module("tr_adc")
DEFAULT_CONFIG: dict = _CFG.DEFAULT_CONFIG
OPTIONAL_KEYS: dict = _CFG.OPTIONAL_KEYS   # keys a definition may add: protocol, resolution
ACTUATOR_DEFAULTS: dict = _CFG.ACTUATOR_DEFAULTS
KIND_ACTUATOR: dict = _CFG.KIND_ACTUATOR
PORT_ADC_PINS: dict = _ADC.PORT_ADC_PINS
deep_merge = _CFG.deep_merge

Pin = Annotated[int, Field(ge=0, le=48)]

# GPIOs a carrier must not give a role (RP2040 datasheet 1.4.3 and the Pico datasheet
# 2.1: GP23 the SMPS power-save line, GP24 VBUS sense, GP25 the LED, GP29 VSYS/3, and no
# GPIO above 29; ESP32 datasheet 2.2: GPIO6..11 the SPI flash, 20, 24 and 28..31 absent).
RESERVED_PINS = {
    "rp2": {23: "the SMPS power-save line", 24: "VBUS sense", 25: "the LED",
            29: "the VSYS/3 supply monitor", **{n: "not a GPIO of the RP2040" for n in range(30, 49)}},
    "esp32": {**{n: "the SPI flash" for n in range(6, 12)},
              **{n: "not a GPIO of the ESP32" for n in (20, 24, 28, 29, 30, 31, *range(40, 49))}},
}
# ESP32 GPIO34..39 are inputs only (ESP32 datasheet 2.2, table 2-1): no driven role there.
INPUT_ONLY_PINS = {"rp2": frozenset(), "esp32": frozenset(range(34, 40))}
Ratio = Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=2, max_length=2)]


class BoardDefError(ValueError):
    """A board definition refused: ``file: field: problem (value ...)``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Nodes(_Strict):
    adc: Literal["ads131m04", "internal"]
    pins: list[Pin]
    samples: Annotated[int, Field(ge=1, le=1024)]
    scale: Ratio
    vref_uv: Annotated[int, Field(ge=1_000_000, le=5_000_000)]
    atten: Literal["0db", "2_5db", "6db", "11db"]
    spi_id: Annotated[int, Field(ge=0, le=3)]
    sck: Pin
    mosi: Pin
    miso: Pin
    cs: Pin
    drdy: Pin
    baudrate: Annotated[int, Field(ge=100_000, le=25_000_000)]


class X9C(_Strict):
    type: Literal["x9c"]
    cs: Pin
    ud: Pin
    inc: Pin
    n_taps: Annotated[int, Field(ge=2, le=256)]


class AD5245(_Strict):
    type: Literal["ad5245"]
    i2c_id: Annotated[int, Field(ge=0, le=1)]
    sda: Pin
    scl: Pin
    addr: Annotated[int, Field(ge=0x08, le=0x77)]
    n_taps: Annotated[int, Field(ge=2, le=256)]
    freq: Annotated[int, Field(ge=10_000, le=1_000_000)]


class Gate(_Strict):
    type: Literal["gate"]
    charge: Pin
    discharge: Pin
    readback: Pin
    readback_scale: Ratio
    readback_samples: Annotated[int, Field(ge=1, le=4096)]
    rc_us: Annotated[int, Field(ge=1, le=10_000_000)]
    rail_uv: Annotated[int, Field(ge=1_000_000, le=20_000_000)]
    max_pulse_us: Annotated[int, Field(ge=1, le=1_000_000)]
    settle_us: Annotated[int, Field(ge=0, le=100_000)]
    timer: Literal["pio", "rmt"] | None
    max_iterations: Annotated[int, Field(ge=1, le=64)]


Actuator = Annotated[Union[X9C, AD5245, Gate], Field(discriminator="type")]


class Learn(_Strict):
    pin: Pin
    pull: Literal["down", "up"] | None
    lockout_us: Annotated[int, Field(ge=0, le=1_000_000)]


class Uart(_Strict):
    id: Annotated[int, Field(ge=0, le=2)]
    baudrate: Annotated[int, Field(ge=1200, le=3_000_000)]
    tx: Pin
    rx: Pin
    de: Pin


class BoardConfig(_Strict):
    address: Annotated[int, Field(ge=1, le=247)]
    kind: Literal["digipot", "mosfet"]
    state_min: int | None
    state_max: int | None
    initial_state: int | None
    uid_hex: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{16}$")] | None
    port: Literal["rp2", "esp32"]
    nodes: Nodes
    actuator: Actuator
    learn: Learn
    uart: Uart
    wdt_ms: Annotated[int, Field(ge=0, le=8_388)]     # RP2040 watchdog: at most 8.3 s
    safe_mode: bool
    safe_mode_pin: Pin | None
    calibration_file: str
    gate_cal_file: str
    protocol: Literal[1, 2] | None = None            # None: the firmware's (2)
    resolution: Annotated[int, Field(ge=1)] | None = None   # protocol 2's actuator step

    def pin_roles(self) -> list[tuple[str, int, bool]]:
        """Every pin the board gives a role: (field, GPIO, driven by the board)."""
        roles: list[tuple[str, int, bool]] = []
        n = self.nodes
        if n.adc == "internal":
            roles += [("nodes.pins", p, False) for p in n.pins]
        else:
            roles += [("nodes.sck", n.sck, True), ("nodes.mosi", n.mosi, True),
                      ("nodes.miso", n.miso, False), ("nodes.cs", n.cs, True),
                      ("nodes.drdy", n.drdy, False)]
        a = self.actuator
        if isinstance(a, X9C):
            roles += [("actuator.cs", a.cs, True), ("actuator.ud", a.ud, True),
                      ("actuator.inc", a.inc, True)]
        elif isinstance(a, AD5245):
            roles += [("actuator.sda", a.sda, True), ("actuator.scl", a.scl, True)]
        else:
            roles += [("actuator.charge", a.charge, True), ("actuator.discharge", a.discharge, True),
                      ("actuator.readback", a.readback, False)]
        roles += [("learn.pin", self.learn.pin, False), ("uart.tx", self.uart.tx, True),
                  ("uart.rx", self.uart.rx, False), ("uart.de", self.uart.de, True)]
        if self.safe_mode_pin is not None:
            roles.append(("safe_mode_pin", self.safe_mode_pin, False))
        return roles

    @model_validator(mode="after")
    def _each_pin_has_one_role(self):
        reserved, inputs = RESERVED_PINS[self.port], INPUT_ONLY_PINS[self.port]
        seen: dict[int, str] = {}
        for field, pin, driven in self.pin_roles():
            if pin in reserved:
                raise _FieldError(field, f"GPIO{pin} is {reserved[pin]} on {self.port}", pin)
            if driven and pin in inputs:
                raise _FieldError(field, f"GPIO{pin} is input-only on {self.port}", pin)
            if pin in seen:
                raise _FieldError(field, f"GPIO{pin} is already {seen[pin]}", pin)
            seen[pin] = field
        return self

    @model_validator(mode="after")
    def _pins_fit_the_port(self):
        allowed = PORT_ADC_PINS[self.port]
        if self.nodes.adc == "internal":
            if len(self.nodes.pins) != 4:
                raise _FieldError("nodes.pins", "four ADC pins needed (a_F, b_F, a_C, b_C)",
                                  self.nodes.pins)
            for p in self.nodes.pins:
                if p not in allowed:
                    raise _FieldError("nodes.pins", f"not a usable ADC pin on {self.port} "
                                      f"(use {list(allowed)})", p)
        if isinstance(self.actuator, Gate):
            if self.actuator.readback not in allowed:
                raise _FieldError("actuator.readback", f"not a usable ADC pin on {self.port} "
                                  f"(use {list(allowed)})", self.actuator.readback)
            if self.kind != "mosfet":
                raise _FieldError("actuator.type", "a gate actuator is for a mosfet board", "gate")
        elif self.kind == "mosfet":
            raise _FieldError("actuator.type", "a mosfet board needs the gate actuator",
                              self.actuator.type)
        return self


class _FieldError(ValueError):
    def __init__(self, field: str, problem: str, value: Any):
        super().__init__(f"{field}: {problem}")
        self.field, self.problem, self.value = field, problem, value


def _lookup(d: Any, loc: tuple) -> Any:
    for k in loc:
        try:
            d = d[k]
        except (KeyError, IndexError, TypeError):
            return None
    return d


def resolve(user: dict, source: str = "<board definition>") -> dict:
    """``user`` deep-merged over the firmware's defaults (the actuator's defaults by its
    type), checked; the merged dict. Raises BoardDefError."""
    if not isinstance(user, dict):
        raise BoardDefError(f"{source}: a board definition is a table, not {user!r}")
    try:  # the firmware's own merge: the board resolves its config.json the same way
        cfg = _CFG.resolve(user, source)
    except _CFG.ConfigError as exc:
        raise BoardDefError(str(exc)) from None
    try:
        BoardConfig.model_validate(cfg)
    except ValidationError as exc:
        err = exc.errors()[0]
        ctx = err.get("ctx", {}).get("error")
        if isinstance(ctx, _FieldError):
            raise BoardDefError(f"{source}: {ctx.field}: {ctx.problem} (value {ctx.value!r})") from None
        loc = tuple(x for x in err["loc"] if x not in ("x9c", "ad5245", "gate"))
        field = ".".join(str(x) for x in loc)
        raise BoardDefError(f"{source}: {field}: {err['msg']} (value {_lookup(cfg, loc)!r})") from None
    return cfg


def load_board(path: str | Path) -> dict:
    """A board-definition TOML file, merged and checked."""
    path = Path(path)
    try:
        user = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BoardDefError(f"{path}: not TOML ({exc})") from None
    return resolve(user, str(path))


def config_json(cfg: dict) -> str:
    """The board's config.json for a resolved board definition."""
    return json.dumps(cfg, indent=1, sort_keys=True) + "\n"
