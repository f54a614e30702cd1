"""The golden vectors on Cortex-M: the C core and board_sim bare-metal under qemu-system-arm.

board_sim (firmware/c/board_sim.c) and the core are compiled with arm-none-eabi-gcc for two
QEMU machines, the BBC micro:bit (nRF51822, Cortex-M0, ARMv6-M like the RP2040's M0+; 16 KiB
of RAM) and the MPS2 AN385 (Cortex-M3, ARMv7-M), with firmware/c/arm/'s startup and linker
script and newlib's semihosting stdio (librdimon): QEMU hands the harness this process's stdin
and stdout (`-semihosting-config enable=on,target=native`) and exits with its exit status.
Every vector set the native tests feed (tests/firmware_c_lines.py) is fed on both machines
and must match exactly; a negative control shows one changed expected byte fails the check.

Runs are deterministic: the harness reads to the end of its input and exits; the subprocess
timeout only guards against a hang and fails the test. Skipped when the Arm toolchain or QEMU
is missing, except under CI=true.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import firmware_c_lines as vectors
from firmware_c_lines import C_DIR, CORE_SOURCES, HARNESS_SOURCE, M0PLUS, STRICT, require_newlib, require_tool

# machine -> (compiler flags, linker script, ELF Tag_CPU_arch the build must carry)
MACHINES = {
    "microbit": (M0PLUS, "microbit.ld", "v6S-M"),
    "mps2-an385": (["-mcpu=cortex-m3", "-mthumb"], "mps2-an385.ld", "v7"),
}
LINE_MAX = 2048  # board_sim's longest non-send line on the 16 KiB micro:bit
HANG_GUARD_S = 120
BATCH_NAMES = [b.name for b in vectors.golden_batches()]


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    found = {name: require_tool(f"arm-none-eabi-{name}") for name in ("gcc", "readelf")}
    found["qemu"] = require_tool("qemu-system-arm")
    require_newlib(found["gcc"])
    return found


def _link(tools: dict[str, str], machine: str, sources: list[Path], out: Path, defines=()) -> Path:
    flags, script, _ = MACHINES[machine]
    arm = C_DIR / "arm"
    args = [tools["gcc"], *STRICT, *flags, "-Os", *defines, "-I", str(C_DIR), str(arm / "startup.c"),
            *map(str, sources), "--specs=rdimon.specs", "-nostartfiles", "-L", str(arm),
            "-Wl,--gc-sections", "-T", str(arm / script), "-o", str(out)]
    res = subprocess.run(args, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert res.returncode == 0 and not res.stderr.strip(), f"{' '.join(args)}:\n{res.stdout}{res.stderr}"
    return out


@pytest.fixture(scope="module")
def images(tools, tmp_path_factory) -> dict[str, Path]:
    """board_sim.elf per machine."""
    out = tmp_path_factory.mktemp("firmware_qemu")
    sources = [C_DIR / s for s in [*CORE_SOURCES, HARNESS_SOURCE]]
    return {m: _link(tools, m, sources, out / f"board_sim-{m}.elf", [f"-DBOARD_SIM_LINE_MAX={LINE_MAX}"])
            for m in MACHINES}


def _qemu(tools: dict[str, str], machine: str, elf: Path, stdin: str) -> subprocess.CompletedProcess:
    args = [tools["qemu"], "-M", machine, "-display", "none", "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    try:
        return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{machine}: QEMU still running after {HANG_GUARD_S} s (hung)")


def run_lines(tools: dict[str, str], machine: str, elf: Path, lines: list[str]) -> list[str]:
    res = _qemu(tools, machine, elf, "".join(line + "\n" for line in lines))
    assert res.returncode == 0, f"{machine}: board_sim exited {res.returncode}:\n{res.stderr[-4000:]}"
    return res.stdout.splitlines()


@pytest.mark.parametrize("machine", MACHINES)
def test_images_are_built_for_the_machine_s_architecture(tools, images, machine):
    """The micro:bit image is ARMv6-M code (what the RP2040 runs), the AN385 one ARMv7-M."""
    attrs = subprocess.run([tools["readelf"], "-A", str(images[machine])], capture_output=True, text=True,
                           timeout=HANG_GUARD_S, check=True).stdout
    assert f"Tag_CPU_arch: {MACHINES[machine][2]}\n" in attrs, attrs


@pytest.mark.parametrize("name", BATCH_NAMES)
@pytest.mark.parametrize("machine", MACHINES)
def test_golden_vectors_under_qemu(tools, images, machine, name):
    batch, = [b for b in vectors.golden_batches() if b.name == name]
    batch.verify(run_lines(tools, machine, images[machine], batch.lines))


def _change_one_byte(hex_str: str, at: int) -> str:
    b = bytearray.fromhex(hex_str)
    b[at] ^= 0x01
    return b.hex()


def _changed_vectors(which: str) -> dict[str, dict]:
    """The vectors with one expected byte changed: a command reply's CRC, a stream reply's
    status byte, or a valid frame's wire encoding."""
    v = vectors.load_all()
    if which == "command reply":
        ex = next(e for c in v["commands.json"]["cases"] for e in c["exchanges"] if e["reply_hex"])
        ex["reply_hex"] = _change_one_byte(ex["reply_hex"], -2)
    elif which == "stream reply":
        case = v["commands.json"]["streams"][0]
        case["replies_hex"][0] = _change_one_byte(case["replies_hex"][0], 6)
    else:
        frame = v["frames.json"]["valid"][0]
        frame["wire_hex"] = _change_one_byte(frame["wire_hex"], 3)
    return v


@pytest.mark.parametrize("which, batch_name", [("command reply", "command cases"),
                                               ("stream reply", "streams"),
                                               ("frame encoding", "frames valid")])
def test_one_changed_expected_byte_fails_the_check(tools, images, which, batch_name):
    """Negative control: with one expected byte changed, the same run on the micro:bit no
    longer passes, and the failure names the vector."""
    batch, = [b for b in vectors.golden_batches(_changed_vectors(which)) if b.name == batch_name]
    out = run_lines(tools, "microbit", images["microbit"], batch.lines)
    with pytest.raises(AssertionError):
        batch.verify(out)


@pytest.mark.parametrize("machine", MACHINES)
def test_a_processor_fault_stops_qemu_with_a_failure(tools, tmp_path, machine):
    """A fault (here an undefined instruction) ends the run at once with exit status 1 and a
    message, so a crash fails a test instead of hanging it."""
    src = tmp_path / "trap.c"
    src.write_text("int main(void);\nint main(void) { __builtin_trap(); }\n")
    elf = _link(tools, machine, [src], tmp_path / f"trap-{machine}.elf")
    res = _qemu(tools, machine, elf, "")
    assert res.returncode == 1, res.stderr
    assert "board_sim: processor fault" in res.stderr + res.stdout  # SYS_WRITE0's console


@pytest.mark.parametrize("machine", MACHINES)
def test_a_bad_line_is_one_clear_error(tools, images, machine):
    """board_sim on the machine refuses what it cannot parse with a message and exit status 2
    (QEMU passes the status through SYS_EXIT_EXTENDED)."""
    res = _qemu(tools, machine, images[machine], "crc 313233343536373839\nbogus 1\n")
    assert (res.returncode, res.stdout) == (2, "29b1\n")
    assert "unknown command bogus" in res.stderr
    res = _qemu(tools, machine, images[machine], f"crc {'00' * LINE_MAX}\n")
    assert res.returncode == 2 and f"line longer than {LINE_MAX - 1} bytes" in res.stderr
