"""The C core built for the RP2040's Cortex-M0+: warning-free, within its flash and RAM budget,
and needing nothing from outside itself but libgcc's arithmetic helpers.

The core's three objects are compiled with Debian's arm-none-eabi-gcc as a firmware build
compiles them (``-mcpu=cortex-m0plus -mthumb -Os``, also -O0 and -O2 for the symbol check),
with the native build's strict flags plus -Wconversion -Wsign-conversion -Wshadow. The budget
(firmware/c/README.md, "Size on Cortex-M0+") is checked with arm-none-eabi-size (code, data,
bss), arm-none-eabi-nm -S (sizeof tr_board and tr_reply, from firmware/c/arm/sizes.c) and
gcc's call-graph stack information (the deepest call chain). Skipped when the toolchain is
missing, except under CI=true.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from firmware_c_lines import (C_DIR, CORE_SOURCES, EXTRA_WARNINGS, M0PLUS, STRICT, require_tool)

# Budget on Cortex-M0+ at -Os, with headroom over the measured figures (README.md).
TEXT_BUDGET = 3584            # bytes of code and constants; measured 2858
BOARD_BUDGET = 224            # sizeof(tr_board): all of a board's state; measured 184
REPLY_BUDGET = 80             # sizeof(tr_reply): the caller's reply buffer; measured 76
STACK_BUDGET = 512            # deepest call chain in the core, HAL callbacks excluded; measured 384

# What the core's objects may need from outside: libgcc's helpers, each for a reason.
LIBGCC_HELPERS = {
    "__aeabi_lmul": "64-bit multiply (the contrast, the rule's split product)",
    "__aeabi_llsl": "64-bit shift left (the rule's rounding constant, the split)",
    "__aeabi_ldivmod": "signed 64-bit division (tr_floor_div_pow2)",
    "__aeabi_uldivmod": "unsigned 64-bit division (the contrast clip's bound)",
    "__aeabi_uidiv": "32-bit division (COBS's block count; ARMv6-M has no divide instruction)",
    "__gnu_thumb1_case_uhi": "Thumb-1 switch-table dispatch (the command switch)",
}
OPT_LEVELS = ("-O0", "-Os", "-O2")
TIMEOUT_S = 120


def _run(args: list[str], cwd: Path | None = None) -> str:
    res = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert res.returncode == 0 and not res.stderr.strip(), (
        f"{' '.join(args)} failed or warned:\n{res.stdout}{res.stderr}")
    return res.stdout


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    return {name: require_tool(f"arm-none-eabi-{name}") for name in ("gcc", "nm", "size")}


@pytest.fixture(scope="module")
def objects(tools, tmp_path_factory) -> dict[str, list[Path]]:
    """The core's objects per optimisation level; -Os also writes its call-graph info."""
    out = tmp_path_factory.mktemp("firmware_arm")
    objs: dict[str, list[Path]] = {}
    for opt in OPT_LEVELS:
        objs[opt] = []
        for src in CORE_SOURCES:
            obj = out / f"{Path(src).stem}{opt}.o"
            extra = ["-fcallgraph-info=su"] if opt == "-Os" else []
            _run([tools["gcc"], *STRICT, *EXTRA_WARNINGS, *M0PLUS, opt, *extra, "-c",
                  str(C_DIR / src), "-o", str(obj)], cwd=out)
            objs[opt].append(obj)
    return objs


def outside_symbols(nm: str, objs: list[Path]) -> set[str]:
    """Symbols the objects use but none of them defines."""
    undefined, defined = set(), set()
    for obj in objs:
        for line in _run([nm, str(obj)]).splitlines():
            kind, name = line.split()[-2:]
            (undefined if kind == "U" else defined).add(name)
    return undefined - defined


def test_core_builds_warning_free_for_cortex_m0plus(objects):
    assert all(obj.stat().st_size > 0 for objs in objects.values() for obj in objs)


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_core_needs_only_libgcc_helpers(objects, tools, opt):
    """No memset, no memcpy, nothing from libc at any optimisation level: the outside
    symbols are a subset of the allow-list."""
    outside = outside_symbols(tools["nm"], objects[opt])
    assert outside <= LIBGCC_HELPERS.keys(), f"{opt} needs {sorted(outside - LIBGCC_HELPERS.keys())}"
    assert outside, "the core uses 64-bit arithmetic: some helper is expected"


def test_the_allowed_helpers_are_libgcc_s(tools):
    """Every allowed name is defined by the Cortex-M0+ libgcc (so none can come from libc)."""
    libgcc = _run([tools["gcc"], *M0PLUS, "-print-libgcc-file-name"]).strip()
    defined = {line.split()[-1] for line in _run([tools["nm"], "--defined-only", libgcc]).splitlines()
               if re.match(r"^[0-9a-f]+ T ", line)}
    assert LIBGCC_HELPERS.keys() <= defined


def test_the_symbol_check_catches_a_memset(tools, tmp_path):
    """Control: the pattern the core used to have (a local array zeroed by an initialiser
    list, which gcc turns into a memset call at -Os) is caught."""
    src = tmp_path / "zero.c"
    src.write_text("#include <stdint.h>\n"
                   "void read_nodes(int32_t node_uv[4]);\n"
                   "void drops(void);\n"
                   "void drops(void) { int32_t node_uv[4] = {0, 0, 0, 0}; read_nodes(node_uv); }\n")
    obj = tmp_path / "zero.o"
    _run([tools["gcc"], *STRICT, *M0PLUS, "-Os", "-c", str(src), "-o", str(obj)])
    assert "memset" in outside_symbols(tools["nm"], [obj]) - LIBGCC_HELPERS.keys()


def test_code_size_is_within_budget(objects, tools):
    """Code and constants within TEXT_BUDGET at -Os; no initialised or zeroed statics (all
    state lives in the caller's tr_board)."""
    rows = _run([tools["size"], *map(str, objects["-Os"])]).splitlines()[1:]
    text, data, bss = (sum(int(r.split()[i]) for r in rows) for i in range(3))
    assert (data, bss) == (0, 0)
    assert 0 < text <= TEXT_BUDGET, text


def test_board_and_reply_fit_the_ram_budget(tools, tmp_path):
    obj = tmp_path / "sizes.o"
    _run([tools["gcc"], *STRICT, *M0PLUS, "-Os", "-I", str(C_DIR), "-c", str(C_DIR / "arm" / "sizes.c"),
          "-o", str(obj)])
    sizes = {}
    for line in _run([tools["nm"], "-S", str(obj)]).splitlines():
        _, size, _, name = line.split()
        sizes[name] = int(size, 16)
    assert 0 < sizes["tr_size_of_board"] <= BOARD_BUDGET, sizes
    assert 0 < sizes["tr_size_of_reply"] <= REPLY_BUDGET, sizes


def _call_graph(ci_files: list[Path]) -> tuple[dict[str, int], dict[str, set[str]]]:
    """Frame sizes and call edges from gcc's -fcallgraph-info=su files (VCG format). A
    static function's node is titled "file:name", a global one "name"."""
    frames: dict[str, int] = {}
    calls: dict[str, set[str]] = {}
    for ci in ci_files:
        text = ci.read_text()
        for title, label in re.findall(r'node: \{ title: "([^"]+)" label: "([^"]*)"', text):
            m = re.search(r"\\n(\d+) bytes \((static|dynamic[^)]*)\)", label)
            if m:
                assert m.group(2) == "static", f"{title} has a {m.group(2)} frame"
                frames[title] = int(m.group(1))
        for src, dst in re.findall(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"', text):
            calls.setdefault(src, set()).add(dst)
    return frames, calls


def _deepest(frames: dict[str, int], calls: dict[str, set[str]]) -> int:
    """The largest sum of frames along any call chain (the core does not recurse). Calls
    to libgcc helpers and through the HAL's function pointers are the port's to add."""
    memo: dict[str, int] = {}

    def depth(fn: str, path: tuple[str, ...]) -> int:
        assert fn not in path, f"recursion through {fn}"
        if fn not in memo:
            memo[fn] = frames.get(fn, 0) + max((depth(c, (*path, fn)) for c in calls.get(fn, ())), default=0)
        return memo[fn]

    return max(depth(fn, ()) for fn in frames)


def test_stack_depth_is_within_budget(objects):
    frames, calls = _call_graph([obj.with_suffix(".ci") for obj in objects["-Os"]])
    assert {"tr_board_receive", "tr_board_learn", "tr_rule_apply"} <= frames.keys()
    deepest = _deepest(frames, calls)
    assert frames["tr_board_receive"] < deepest <= STACK_BUDGET, deepest
