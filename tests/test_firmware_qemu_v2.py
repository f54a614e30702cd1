"""Protocol 2's golden vectors on Cortex-M: the v2 core and board_sim2 bare-metal under
qemu-system-arm.

board_sim2 (firmware/c/board_sim2.c) and the core (tests/firmware_c2_lines.CORE_SOURCES_V2)
are compiled with arm-none-eabi-gcc -Os for the BBC micro:bit (nRF51822, Cortex-M0,
ARMv6-M like the RP2040's M0+; 16 KiB of RAM) and the MPS2 AN385 (Cortex-M3), linked with
firmware/c/arm/'s startup and linker scripts and newlib's semihosting stdio, exactly as
tests/test_firmware_qemu.py links protocol 1's. Every v2 vector set the native test feeds is
fed on both machines, one QEMU launch per set, and must match exactly; a negative control
shows a changed expected byte fails the check.

The micro:bit's 16 KiB cannot hold three boards (1,352 bytes of state each) and two 5 KiB
image slots at once, so board_sim2 is built twice per machine: `bus`, three boards with
1 KiB slots, for every set but the firmware updates, and `update`, two boards with 5 KiB
slots (the largest image of update.json is 5,000 bytes), their blocks in one shared pool.
The harness says so (exit status 3) rather than answer wrongly if a set outgrows them.

Runs are deterministic: the harness reads to the end of its input and exits; the subprocess
timeout only guards against a hang and fails the test. Skipped when the Arm toolchain or
QEMU is missing, except under CI=true.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import firmware_c2_lines as v2lines
from firmware_c_lines import C_DIR, M0PLUS, STRICT, require_newlib, require_tool

# machine -> (compiler flags, linker script, ELF Tag_CPU_arch the build must carry)
MACHINES = {
    "microbit": (M0PLUS, "microbit.ld", "v6S-M"),
    "mps2-an385": (["-mcpu=cortex-m3", "-mthumb"], "mps2-an385.ld", "v7"),
}
# board_sim2's capacity per build (the Makefile's QEMU_BUS2 and QEMU_UPD2)
BUILDS = {
    "bus": ["-DBOARD_SIM_LINE_MAX=1024", "-DSIM_BOARDS=3", "-DSIM_SLOT_BLOCKS=8", "-DSIM_POOL_PAGES=8"],
    "update": ["-DBOARD_SIM_LINE_MAX=512", "-DSIM_BOARDS=2", "-DSIM_SLOT_BLOCKS=40", "-DSIM_POOL_PAGES=42"],
}
UPDATE_BATCHES = {"update cases"}
HANG_GUARD_S = 120
BATCH_NAMES = [b.name for b in v2lines.golden_batches()]


def build_for(batch_name: str) -> str:
    return "update" if batch_name in UPDATE_BATCHES else "bus"


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    found = {name: require_tool(f"arm-none-eabi-{name}") for name in ("gcc", "readelf")}
    found["qemu"] = require_tool("qemu-system-arm")
    require_newlib(found["gcc"])
    return found


@pytest.fixture(scope="module")
def images(tools, tmp_path_factory) -> dict[tuple[str, str], Path]:
    """board_sim2.elf per (machine, build)."""
    out = tmp_path_factory.mktemp("firmware_qemu_v2")
    arm = C_DIR / "arm"
    sources = [str(C_DIR / s) for s in [*v2lines.CORE_SOURCES_V2, v2lines.HARNESS_V2]]
    elves = {}
    for machine, (flags, script, _) in MACHINES.items():
        for build, defines in BUILDS.items():
            elf = out / f"board_sim2-{machine}-{build}.elf"
            args = [tools["gcc"], *STRICT, *flags, "-Os", *defines, "-I", str(C_DIR), str(arm / "startup.c"),
                    *sources, "--specs=rdimon.specs", "-nostartfiles", "-L", str(arm), "-Wl,--gc-sections",
                    "-T", str(arm / script), "-o", str(elf)]
            res = subprocess.run(args, capture_output=True, text=True, timeout=HANG_GUARD_S)
            assert res.returncode == 0 and not res.stderr.strip(), f"{' '.join(args)}:\n{res.stdout}{res.stderr}"
            elves[machine, build] = elf
    return elves


def run_lines(tools: dict[str, str], machine: str, elf: Path, lines: list[str]) -> list[str]:
    args = [tools["qemu"], "-M", machine, "-display", "none", "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    try:
        res = subprocess.run(args, input="".join(line + "\n" for line in lines), capture_output=True, text=True,
                             timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{machine}: QEMU still running after {HANG_GUARD_S} s (hung)")
    assert res.returncode == 0, f"{machine}: board_sim2 exited {res.returncode}:\n{res.stderr[-4000:]}"
    return res.stdout.splitlines()


@pytest.mark.parametrize("machine", MACHINES)
def test_images_are_built_for_the_machine_s_architecture(tools, images, machine):
    """The micro:bit images are ARMv6-M code (what the RP2040 runs), the AN385 ones ARMv7-M."""
    for build in BUILDS:
        attrs = subprocess.run([tools["readelf"], "-A", str(images[machine, build])], capture_output=True,
                               text=True, timeout=HANG_GUARD_S, check=True).stdout
        assert f"Tag_CPU_arch: {MACHINES[machine][2]}\n" in attrs, attrs


@pytest.mark.parametrize("name", BATCH_NAMES)
@pytest.mark.parametrize("machine", MACHINES)
def test_golden_vectors_v2_under_qemu(tools, images, machine, name):
    batch, = [b for b in v2lines.golden_batches() if b.name == name]
    batch.verify(run_lines(tools, machine, images[machine, build_for(name)], batch.lines))


def _one_byte_changed(hex_str: str, at: int) -> str:
    b = bytearray.fromhex(hex_str)
    b[at] ^= 0x01
    return b.hex()


def test_one_changed_expected_byte_fails_the_check(tools, images):
    """Negative control: with one byte of a firmware update's recorded reply changed, the
    same run on the micro:bit no longer passes, and the failure names the case."""
    v = v2lines.load_all()
    case = v["update.json"]["cases"][0]
    reply = next(r for ex in case["exchanges"] if ex.get("replies") for r in ex["replies"])
    reply["reply_hex"] = _one_byte_changed(reply["reply_hex"], -3)
    batch, = [b for b in v2lines.golden_batches(v) if b.name == "update cases"]
    out = run_lines(tools, "microbit", images["microbit", "update"], batch.lines)
    with pytest.raises(AssertionError, match=case["name"]):
        batch.verify(out)


def test_a_session_too_big_for_the_harness_stops_it_with_status_3(tools, images):
    """The update sessions on the three-board build, whose image slots are 1 KiB: the
    harness stops with exit status 3 at the first fw_begin, never answers wrongly."""
    batch, = [b for b in v2lines.golden_batches() if b.name == "update cases"]
    args = [tools["qemu"], "-M", "microbit", "-display", "none", "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native", "-kernel", str(images["microbit", "bus"])]
    res = subprocess.run(args, input="".join(line + "\n" for line in batch.lines), capture_output=True, text=True,
                         timeout=HANG_GUARD_S)
    assert res.returncode == 3 and "smaller than the image" in res.stderr, res.stderr[-2000:]
