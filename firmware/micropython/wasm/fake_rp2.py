# A stand-in for MicroPython's `rp2` (tests only): asm_pio assembles a program the way
# MicroPython's does (the function runs with the instruction names in its globals) and
# StateMachine executes it cycle by cycle at its clock (RP2040 datasheet §3.4, §3.5.1:
# side-set takes effect when an instruction issues, also while it stalls). Only the
# instructions the firmware uses: pull(block), mov(x, osr), jmp(x_dec, label), nop,
# side-set and delays. The pin levels go to fake_machine's pins with their times.

import fake_machine as fm

SYS_HZ = 125000000


class PIO:
    OUT_LOW = 0
    OUT_HIGH = 1


class _Ins:
    def __init__(self, op, a=None, b=None):
        self.op = op
        self.a = a
        self.b = b
        self.side_v = None
        self.delay = 0

    def side(self, v):
        self.side_v = v
        return self

    def __getitem__(self, d):
        self.delay = d
        return self


class Program:
    def __init__(self, sideset_init):
        self.sideset_init = sideset_init
        self.ins = []
        self.labels = {}
        self.wrap_target = 0
        self.wrap = None


_NAMES = ("wrap_target", "wrap", "label", "pull", "mov", "jmp", "nop", "block", "x",
          "osr", "x_dec")


def asm_pio(sideset_init=None, **kw):
    def dec(f):
        prog = Program(sideset_init)

        def emit(op, a=None, b=None):
            i = _Ins(op, a, b)
            prog.ins.append(i)
            return i

        def wt():
            prog.wrap_target = len(prog.ins)

        def wr():
            prog.wrap = len(prog.ins) - 1

        def lab(name):
            prog.labels[name] = len(prog.ins)

        names = {"wrap_target": wt, "wrap": wr, "label": lab,
                 "pull": lambda a=None: emit("pull", a), "mov": lambda a, b: emit("mov", a, b),
                 "jmp": lambda a, b: emit("jmp", a, b), "nop": lambda: emit("nop"),
                 "block": "block", "x": "x", "osr": "osr", "x_dec": "x_dec"}
        g = f.__globals__
        saved = {k: g[k] for k in _NAMES if k in g}
        g.update(names)
        try:
            f()
        finally:
            for k in _NAMES:
                del g[k]
            g.update(saved)
        if len(prog.ins) > 32:
            raise ValueError("PIO program longer than 32 instructions")
        if prog.wrap is None:
            prog.wrap = len(prog.ins) - 1
        return prog
    return dec


class StateMachine:
    def __init__(self, id, prog, freq=SYS_HZ, sideset_base=None):
        if not 0 <= id <= 7:
            raise ValueError("state machine 0..7")
        div = SYS_HZ / freq
        if not 1 <= div <= 65536:
            raise ValueError("freq out of range")
        self.prog = prog
        self.ns_per_cycle = 1e9 * div / SYS_HZ
        self.pin = sideset_base.id if sideset_base is not None else None
        self.busy_until_ns = 0
        self.on = False
        self.level = prog.sideset_init or 0

    def active(self, v=None):
        if v is not None:
            self.on = bool(v)
        return self.on

    def _set(self, t_ns, level):
        if level == self.level:
            return
        self.level = level
        g = fm.GATE[0]
        t_us = int(t_ns // 1000)
        if g is not None and self.pin in g.levels:
            g.transition(t_us, self.pin, level)
        fm.EVENTS.append(("pio", self.pin, level, t_us))

    @fm.part
    def put(self, value, _=None):
        if not self.on:
            raise RuntimeError("state machine not active")
        value &= 0xFFFFFFFF
        t = max(fm.CLOCK.now * 1000, self.busy_until_ns)
        p = self.prog
        pc = p.wrap_target
        x = 0
        osr = None
        cyc = 0
        while True:
            i = p.ins[pc]
            if i.op == "pull":
                if osr is not None:      # stalls on an empty FIFO: done
                    if i.side_v is not None:
                        self._set(t + cyc * self.ns_per_cycle, i.side_v)
                    break
                osr = value
            if i.side_v is not None:
                self._set(t + cyc * self.ns_per_cycle, i.side_v)
            nxt = pc + 1
            if i.op == "mov":
                x = osr
            elif i.op == "jmp" and i.a == "x_dec":
                target = p.labels[i.b]
                if target == pc:         # a countdown in place: X + 1 passes
                    cyc += (x + 1) * (1 + i.delay)
                    x = 0xFFFFFFFF
                    pc = pc + 1
                    if pc > p.wrap:
                        pc = p.wrap_target
                    continue
                if x != 0:
                    nxt = target
                x = (x - 1) & 0xFFFFFFFF
            cyc += 1 + i.delay
            pc = p.wrap_target if pc == p.wrap else nxt
        self.busy_until_ns = t + cyc * self.ns_per_cycle

    def tx_fifo(self):
        return 0
