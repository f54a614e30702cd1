# A stand-in for MicroPython's `machine` module (tests only): lets hal.MachineHAL run
# on the WebAssembly port and under CPython. Pins, the UART and the watchdog record
# what the HAL does to them in EVENTS; ADC readings come from ADC_UV.

EVENTS = []
ADC_UV = {}        # pin id -> microvolts read_uv() returns
PINS = {}          # pin id -> Pin
UNIQUE_ID = b"\x10\x20\x30\x40\x50\x60"
RX = bytearray()   # bytes the UART will receive


def reset():
    global RX
    EVENTS.clear()
    ADC_UV.clear()
    PINS.clear()
    RX = bytearray()


def unique_id():
    return UNIQUE_ID


def disable_irq():
    return 1


def enable_irq(state):
    pass


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=None, pull=None, value=None):
        self.id = id
        self.mode = mode
        self.level = 0 if value is None else value
        self.handler = None
        PINS[id] = self
        if mode == Pin.OUT and value is not None:
            EVENTS.append(("pin", id, value))

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = 1 if v else 0
        EVENTS.append(("pin", self.id, self.level))

    def irq(self, trigger=None, handler=None):
        self.handler = handler
        EVENTS.append(("irq", self.id, trigger))


class ADC:
    def __init__(self, pin):
        self.pin = pin.id if isinstance(pin, Pin) else pin

    def read_uv(self):
        return ADC_UV.get(self.pin, 0)

    def read_u16(self):
        return ADC_UV.get(self.pin, 0) * 65535 // 3300000


class UART:
    def __init__(self, id, baudrate=9600, tx=None, rx=None, timeout=0, rxbuf=256):
        self.id = id
        self.baudrate = baudrate
        EVENTS.append(("uart_init", id, baudrate))

    def any(self):
        return len(RX)

    def read(self, n=-1):
        global RX
        if n < 0:
            n = len(RX)
        data = bytes(RX[:n])
        RX = RX[n:]
        return data or None

    def write(self, data):
        EVENTS.append(("uart_write", bytes(data)))
        return len(data)

    def flush(self):
        EVENTS.append(("uart_flush",))

    def txdone(self):
        return True


class WDT:
    def __init__(self, id=0, timeout=5000):
        EVENTS.append(("wdt_init", timeout))

    def feed(self):
        EVENTS.append(("wdt_feed",))
