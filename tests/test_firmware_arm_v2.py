"""Protocol 2's C core built for the RP2040's Cortex-M0+: warning-free, within its flash and
RAM budget, needing nothing from outside itself but libgcc's helpers.

The core's six objects (tests/firmware_c2_lines.CORE_SOURCES_V2) are compiled as a firmware
build compiles them (``-mcpu=cortex-m0plus -mthumb -Os``; -O0 and -O2 as well for the symbol
check) with the strict flags plus -Wconversion -Wsign-conversion -Wshadow. The budget is
firmware/c/README.md's ("Size on Cortex-M0+ (protocol 2)"): arm-none-eabi-size for code and
statics, arm-none-eabi-nm -S on firmware/c/arm/sizes2.c for sizeof tr2_board and
tr2_reply, gcc's call-graph stack information for the deepest call chain. Skipped when the
toolchain is missing, except under CI=true.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_c2_lines import CORE_SOURCES_V2
from firmware_c_lines import C_DIR, EXTRA_WARNINGS, M0PLUS, STRICT, require_tool
from test_firmware_arm import _call_graph, _deepest, _run, outside_symbols

# Budget on Cortex-M0+ at -Os, with headroom over the measured figures (README.md).
TEXT_BUDGET = 7168    # bytes of code and constants of the six objects; measured 6380 (protocol 2.1)
BOARD_BUDGET = 1408   # sizeof(tr2_board), 960 bytes of it the update's block bitmap; measured 1352
REPLY_BUDGET = 264    # sizeof(tr2_reply): the longest wire (256 bytes), its length and start time
STACK_BUDGET = 448    # deepest call chain in the core, HAL callbacks and libgcc excluded; measured 344
RECEIVE_STACK_BUDGET = 384  # tr2_board_receive's deepest chain, what a port's bus task needs; measured 328

# What the core's objects may need from outside: libgcc's helpers, each for a reason.
LIBGCC_HELPERS = {
    "__aeabi_lmul": "64-bit multiply (the contrast, the rule's split product, a slot's numerator, "
                    "the gate slope's product)",
    "__aeabi_llsl": "64-bit shift left (the rule's rounding constant, the split)",
    "__aeabi_ldivmod": "signed 64-bit division (tr_floor_div_pow2)",
    "__aeabi_uldivmod": "unsigned 64-bit division (the contrast clip's bound, a slot rounded up, "
                        "the gate slope's quotient)",
    "__aeabi_uidiv": "32-bit division (COBS, char_us, the actuator's grid; ARMv6-M has no divider)",
    "__aeabi_uidivmod": "32-bit remainder (discover's h % slots, the actuator's grid)",
    "__gnu_thumb1_case_uhi": "Thumb-1 switch-table dispatch (the command switch, at -Os)",
}
OPT_LEVELS = ("-O0", "-Os", "-O2")


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    return {name: require_tool(f"arm-none-eabi-{name}") for name in ("gcc", "nm", "size")}


@pytest.fixture(scope="module")
def objects(tools, tmp_path_factory) -> dict[str, list[Path]]:
    """The core's objects per optimisation level; -Os also writes its call-graph info."""
    out = tmp_path_factory.mktemp("firmware_arm_v2")
    objs: dict[str, list[Path]] = {}
    for opt in OPT_LEVELS:
        objs[opt] = []
        for src in CORE_SOURCES_V2:
            obj = out / f"{Path(src).stem}{opt}.o"
            extra = ["-fcallgraph-info=su"] if opt == "-Os" else []
            _run([tools["gcc"], *STRICT, *EXTRA_WARNINGS, *M0PLUS, opt, *extra, "-c", str(C_DIR / src),
                  "-o", str(obj)], cwd=out)
            objs[opt].append(obj)
    return objs


def test_core_builds_warning_free_for_cortex_m0plus(objects):
    assert all(obj.stat().st_size > 0 for objs in objects.values() for obj in objs)


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_core_needs_only_libgcc_helpers(objects, tools, opt):
    """No memset, no memcpy, nothing from libc at any optimisation level: the outside
    symbols are a subset of the allow-list."""
    outside = outside_symbols(tools["nm"], objects[opt])
    assert outside <= LIBGCC_HELPERS.keys(), f"{opt} needs {sorted(outside - LIBGCC_HELPERS.keys())}"
    assert "__aeabi_uidivmod" in outside, "discover's slot is a 32-bit remainder: a helper is expected"


def test_the_allowed_helpers_are_libgcc_s(tools):
    """Every allowed name is defined by the Cortex-M0+ libgcc (so none can come from libc)."""
    libgcc = _run([tools["gcc"], *M0PLUS, "-print-libgcc-file-name"]).strip()
    defined = {line.split()[-1] for line in _run([tools["nm"], "--defined-only", libgcc]).splitlines()
               if " T " in line}
    assert LIBGCC_HELPERS.keys() <= defined, sorted(LIBGCC_HELPERS.keys() - defined)


def test_the_symbol_check_catches_a_cleared_bitmap(tools, tmp_path):
    """Control: the bitmap clear a plain loop would be (gcc turns it into a memset call at
    -Os) is caught, which is why tr2_update.c clears it through a volatile pointer."""
    src = tmp_path / "bitmap.c"
    src.write_text("#include <stdint.h>\n"
                   "typedef struct { uint8_t have[960]; } update;\n"
                   "void forget(update *u);\n"
                   "void forget(update *u) { unsigned i; for (i = 0; i < sizeof u->have; i++) u->have[i] = 0; }\n")
    obj = tmp_path / "bitmap.o"
    _run([tools["gcc"], *STRICT, *M0PLUS, "-Os", "-c", str(src), "-o", str(obj)])
    assert "memset" in outside_symbols(tools["nm"], [obj]) - LIBGCC_HELPERS.keys()


def test_code_size_is_within_budget(objects, tools):
    """Code and constants within TEXT_BUDGET at -Os; no initialised or zeroed statics (all
    state lives in the caller's tr2_board)."""
    rows = _run([tools["size"], *map(str, objects["-Os"])]).splitlines()[1:]
    text, data, bss = (sum(int(r.split()[i]) for r in rows) for i in range(3))
    assert (data, bss) == (0, 0)
    assert 0 < text <= TEXT_BUDGET, text


def test_board_and_reply_fit_the_ram_budget(tools, tmp_path):
    obj = tmp_path / "sizes2.o"
    _run([tools["gcc"], *STRICT, *M0PLUS, "-Os", "-I", str(C_DIR), "-c", str(C_DIR / "arm" / "sizes2.c"),
          "-o", str(obj)])
    sizes = {}
    for line in _run([tools["nm"], "-S", str(obj)]).splitlines():
        _, size, _, name = line.split()
        sizes[name] = int(size, 16)
    assert 0 < sizes["tr2_size_of_board"] <= BOARD_BUDGET, sizes
    assert 256 < sizes["tr2_size_of_reply"] <= REPLY_BUDGET, sizes


def test_stack_depth_is_within_budget(objects):
    """The deepest chain of all (tr2_frame_decode's, whose decoder is on the stack) and the
    receiver's (the request is read where it was decoded and the reply sealed where it is
    sent from: no frame buffer on the stack)."""
    frames, calls = _call_graph([obj.with_suffix(".ci") for obj in objects["-Os"]])
    assert {"tr2_board_receive", "tr2_board_learn", "tr_rule_apply"} <= frames.keys()
    deepest = _deepest(frames, calls)
    assert frames["tr2_board_receive"] < deepest <= STACK_BUDGET, deepest
    receive = _deepest({fn: n for fn, n in frames.items() if fn == "tr2_board_receive" or _reached(
        calls, "tr2_board_receive", fn)}, calls)
    assert frames["tr2_board_receive"] < receive <= RECEIVE_STACK_BUDGET, receive


def _reached(calls: dict[str, set[str]], root: str, fn: str) -> bool:
    """Whether root calls fn, directly or not."""
    seen, todo = set(), [root]
    while todo:
        for c in calls.get(todo.pop(), ()):
            if c == fn:
                return True
            if c not in seen:
                seen.add(c)
                todo.append(c)
    return False
