"""``hostctl firmware update`` and ``hostctl firmware provision`` (hostctl/fwupdate.py), and
``hostctl firmware emulate --protocol/--timing``, against emulated protocol-2 boards.

The headline: 247 emulated boards on one bus are updated in one ``hostctl firmware
update`` command, a board whose blocks were lost is sent those blocks alone, a board
whose new image fails its trial boot rolls back and is named, and the summary line gives
the emulated bus time the whole update took. Then two buses in one command, provisioning
by unique id with a board definition, and bad input as one error line.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hostctl.cli import main
from instruments.bus import reference as v1_reference
from instruments.bus.v2 import Kind, Phase, image_blocks, onwire
from instruments.bus.v2.constants import ADDR_BROADCAST, ADDR_UNASSIGNED

ROOT = Path(__file__).resolve().parents[1]
PICO = ROOT / "firmware" / "boards" / "pico.toml"




def _image(tmp_path: Path, name: str = "twinrig-2.1.0.bin", size: int = 4096, seed: int = 7) -> Path:
    path = tmp_path / name
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def _bus_time_s(summary: str) -> float:
    m = re.search(r"bus time (\d+\.\d) s$", summary)
    assert m, summary
    return float(m.group(1))


def test_247_boards_are_updated_over_the_bus_in_one_command(serve, tmp_path, capsys):
    boards = onwire.make_boards(247, seed=2026)
    lossy = onwire.LossyBoard.like(boards[16], lose={0, 9, 31})  # board 17
    plain = onwire.LossyBoard.like(boards[199], lose=())         # board 200, logs what it hears
    boards[16], boards[199] = lossy, plain
    boards[100].firmware.self_test = lambda image: False          # board 101 fails its trial boot
    image = _image(tmp_path)
    em = serve(boards)
    rc = main(["firmware", "update", "--port", em.port, str(image)])
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert rc == 1  # not every board confirmed
    assert lines[:-1] == [f"{em.port} board 101 (uid {boards[100].uid.hex()}): rolled back, firmware "
                          "2.0.0 -> 2.0.0 (the new image failed its trial boot; runs 2.0.0 again)"]
    summary = lines[-1]
    assert summary.startswith(f"247 board(s) on 1 bus(es) updated to 2.1.0: 246 confirmed, 1 rolled back "
                              f"({em.port} board 101), 3 block(s) resent; bus time ")
    assert "Traceback" not in err and "32/32" in err  # the progress bar went to stderr
    n = len(image_blocks(image.read_bytes()))
    assert lossy.blocks_heard == [(ADDR_BROADCAST, b) for b in range(n) if b not in (0, 9, 31)] + \
        [(17, 0), (17, 9), (17, 31)]  # only its lost blocks, to it alone
    assert plain.blocks_heard == [(ADDR_BROADCAST, b) for b in range(n)]
    data = image.read_bytes()
    for b in boards:
        if b is boards[100]:
            assert b.fw_version == (2, 0, 0) and b.firmware.phase == Phase.ROLLED_BACK
        else:
            assert b.fw_version == (2, 1, 0) and b.firmware.running.data == data
            assert b.firmware.phase == Phase.CONFIRMED
    bus_s = _bus_time_s(summary)
    # the protocol's own waits bound it from below: the probe of 247 addresses, two identify
    # passes before and after, the erase of one sector, 32 blocks, fw_status twice, the
    # verify and the swap
    assert bus_s >= 0.8 + 4 * 0.627 + 0.4 + 32 * 0.003 + 2 * 0.808 + 1.0 + 2.403
    # and from above: no extra pass, status round or resend beyond the three blocks (12.6 s)
    assert bus_s <= 14.0
    print(f"\n247 boards, {n} blocks of {len(data)} bytes at 115200 baud: emulated bus time {bus_s} s")


def test_two_buses_are_updated_in_one_command(serve, tmp_path, capsys):
    a = serve(onwire.make_boards(20, seed=1))
    b = serve(onwire.make_boards(15, seed=2))
    image = _image(tmp_path, "fw.bin", size=1500)
    assert main(["firmware", "update", "--port", a.port, "--port", b.port, "--version", "2.4.0",
                 "--quiet", str(image)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith("35 board(s) on 2 bus(es) updated to 2.4.0: 35 confirmed, 0 block(s) resent")
    assert {x.board.fw_version for em in (a, b) for x in em.boards} == {(2, 4, 0)}


@pytest.mark.parametrize("baud", [230400, 921600])
def test_a_faster_bus_is_updated_in_less_bus_time(serve, tmp_path, capsys, baud):
    image = _image(tmp_path, size=4096)
    times = {}
    for rate in (115200, baud):
        boards = onwire.make_boards(30, seed=9, baud=rate)
        em = serve(boards, baud=rate)
        assert main(["firmware", "update", "--port", em.port, "--baud", str(rate), "--quiet", str(image)]) == 0
        times[rate] = _bus_time_s(capsys.readouterr().out.strip())
        assert {b.fw_version for b in boards} == {(2, 1, 0)}
    assert times[baud] < times[115200]


def test_an_update_with_a_protocol_1_board_is_refused_by_name(serve, tmp_path, capsys):
    old = v1_reference.ReferenceBoard(5, bytes.fromhex("4a1c00e3b2770f01"), Kind.MOSFET)
    boards = onwire.make_boards(4)
    em = serve(boards, [old])
    assert main(["firmware", "update", "--port", em.port, "--quiet", str(_image(tmp_path))]) == 1
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err == (f"hostctl: error: {em.port}: board 5 (uid 4a1c00e3b2770f01, firmware 1.2.0) speaks "
                       "protocol 1.1; this host speaks protocol 2: update its firmware, see MIGRATION.md\n")
    assert all(b.firmware.phase == Phase.IDLE for b in boards)


def test_an_update_of_a_bus_with_two_boards_at_one_address_names_them_and_writes_nothing(serve, tmp_path, capsys):
    boards = onwire.make_boards(6, seed=10)
    boards[4].address = 2
    em = serve(boards)
    assert main(["firmware", "update", "--port", em.port, "--quiet", str(_image(tmp_path))]) == 1
    err = capsys.readouterr().err
    pair = ", ".join(sorted([boards[1].uid.hex(), boards[4].uid.hex()]))
    assert err == (f"hostctl: error: {em.port}: address 2 is shared by boards {pair}: give one of each its "
                   "own address (hostctl firmware provision) before updating\n")
    assert all(b.firmware.phase == Phase.IDLE for b in boards)


def test_provision_assigns_the_address_and_writes_the_board_definition_by_uid(serve, tmp_path, capsys):
    boards = onwire.make_boards(3, unassigned=True, seed=5)
    em = serve(boards)
    uid = boards[1].uid.hex()
    rc = main(["firmware", "provision", "--port", em.port, "--uid", uid.upper(), "--address", "7",
               "--board-definition", str(PICO), "--config-dir", str(tmp_path / "boards")])
    out = capsys.readouterr().out
    assert rc == 0
    assert boards[1].address == 7 and {b.address for b in (boards[0], boards[2])} == {ADDR_UNASSIGNED}
    assert boards[1].target == 3_000_000 and boards[1].store.generation == 1  # pico.toml's initial_state
    cfg = __import__("json").loads((tmp_path / "boards" / f"{uid}.json").read_text())
    assert cfg["address"] == 7 and cfg["uid_hex"] == uid and cfg["kind"] == "mosfet"
    assert f"board {uid} (mosfet, firmware 2.0.0) at address 7" in out and "generation 1" in out
    # the same board again, without a definition: only the address
    assert main(["firmware", "provision", "--port", em.port, "--uid", uid, "--address", "8"]) == 0
    assert boards[1].address == 8


def test_provision_refuses_an_address_another_board_holds(serve, capsys):
    boards = onwire.make_boards(2, seed=6)
    em = serve(boards)
    rc = main(["firmware", "provision", "--port", em.port, "--uid", boards[0].uid.hex(), "--address", "2"])
    err = capsys.readouterr().err
    assert rc == 1 and err == f"hostctl: error: --address 2: taken by board {boards[1].uid.hex()} on {em.port}\n"
    assert boards[0].address == 1


def test_provision_of_a_uid_no_board_has_is_one_error(serve, capsys):
    em = serve(onwire.make_boards(2, seed=6))
    assert main(["firmware", "provision", "--port", em.port, "--uid", "00112233445566ff", "--address", "9"]) == 1
    assert capsys.readouterr().err == (f"hostctl: error: --uid 00112233445566ff: no board with this unique id "
                                       f"answers on {em.port}\n")


def test_provision_refuses_a_definition_of_another_kind(serve, tmp_path, capsys):
    boards = onwire.make_boards(1, unassigned=True, seed=8, kind=Kind.DIGIPOT)
    em = serve(boards)
    rc = main(["firmware", "provision", "--port", em.port, "--uid", boards[0].uid.hex(), "--address", "3",
               "--board-definition", str(PICO), "--config-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and "kind: 'mosfet', but board" in err and "is a digipot board" in err
    assert err.count("\n") == 1
    assert boards[0].address == ADDR_UNASSIGNED  # a refused provision leaves the address as it was


@pytest.mark.parametrize("extra, message", [
    ("resolution = 5000\n", "resolution: 5000, but the board's is 1"),
    ("protocol = 1\n", "protocol: 1, but board {uid} speaks protocol 2"),
    ("state_min = 1500000\n", "state_min: 1500000, but the board's is 1000000"),
])
def test_provision_refuses_a_definition_the_board_contradicts(serve, tmp_path, capsys, extra, message):
    boards = onwire.make_boards(1, unassigned=True, seed=8)
    em = serve(boards)
    uid = boards[0].uid.hex()
    definition = tmp_path / "board.toml"
    definition.write_text(extra + PICO.read_text())
    rc = main(["firmware", "provision", "--port", em.port, "--uid", uid, "--address", "3",
               "--board-definition", str(definition), "--config-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1 and err == f"hostctl: error: --board-definition {definition}: {message.format(uid=uid)}\n"
    assert not (tmp_path / "out").exists() and boards[0].store.generation == 0
    assert boards[0].address == ADDR_UNASSIGNED


def test_a_refused_definition_puts_an_assigned_board_back_at_its_address(serve, tmp_path, capsys):
    boards = onwire.make_boards(2, seed=9)                    # at 1 and 2
    em = serve(boards)
    definition = tmp_path / "board.toml"
    definition.write_text("resolution = 5000\n" + PICO.read_text())
    rc = main(["firmware", "provision", "--port", em.port, "--uid", boards[1].uid.hex(), "--address", "9",
               "--board-definition", str(definition), "--config-dir", str(tmp_path / "out")])
    assert rc == 1 and "resolution: 5000" in capsys.readouterr().err
    assert [b.address for b in boards] == [1, 2]


@pytest.mark.parametrize("argv, field", [
    (["update", "--port", "{missing}", "{image}"], "--port {missing}: no such port"),
    (["update", "--port", "{port}", "{tmp}/nothing.bin"], "IMAGE {tmp}/nothing.bin: cannot read it"),
    (["update", "--port", "{port}", "{empty}"], "IMAGE {empty}: an image is 1..983,040 bytes, this one is 0"),
    (["update", "--port", "{port}", "--version", "2.x.0", "{image}"], "--version 2.x.0: a firmware version is"),
    (["update", "--port", "{port}", "{noversion}"], "IMAGE {noversion}: no MAJOR.MINOR.PATCH in its name"),
    (["provision", "--port", "{port}", "--uid", "12345", "--address", "3"],
     "argument --uid: a unique id is 16 hex digits, got '12345'"),
    (["provision", "--port", "{port}", "--uid", "zz11223344556677", "--address", "3"],
     "argument --uid: a unique id is 16 hex digits, got 'zz11223344556677'"),
    (["provision", "--port", "{port}", "--uid", "0011223344556677", "--address", "248"],
     "argument --address: must be 1..247, got 248"),
    (["provision", "--port", "{port}", "--uid", "0011223344556677", "--address", "0"],
     "argument --address: must be 1..247, got 0"),
    (["provision", "--port", "{port}", "--uid", "0011223344556677", "--address", "4",
      "--board-definition", "{badtoml}"], "--board-definition {badtoml}: not TOML"),
    (["provision", "--port", "{port}", "--uid", "0011223344556677", "--address", "4",
      "--board-definition", "{badfield}"], "--board-definition {badfield}: wdt_ms:"),
    (["provision", "--port", "{missing}", "--uid", "0011223344556677", "--address", "4"],
     "--port {missing}: no such port"),
    (["emulate", "--protocol", "2", "--timing", "v1"], "--timing v1: protocol-2 boards time their own replies"),
    (["emulate", "--protocol", "3"], "argument --protocol: must be 1..2, got 3"),
])
def test_bad_input_is_one_error_line_naming_the_field(serve, tmp_path, capsys, argv, field):
    em = serve(onwire.make_boards(1))
    (tmp_path / "empty-2.0.0.bin").write_bytes(b"")
    (tmp_path / "bad.toml").write_text("address = [1,\n")
    (tmp_path / "field.toml").write_text(PICO.read_text().replace("wdt_ms = 2000", "wdt_ms = 999999"))
    names = {"missing": str(tmp_path / "ttyUSB9"), "image": str(_image(tmp_path)), "port": em.port,
             "tmp": str(tmp_path), "empty": str(tmp_path / "empty-2.0.0.bin"),
             "noversion": str(_image(tmp_path, "firmware.bin")), "badtoml": str(tmp_path / "bad.toml"),
             "badfield": str(tmp_path / "field.toml")}
    argv = [a.format(**names) for a in argv]
    try:
        rc = main(["firmware", *argv])
    except SystemExit as exc:  # argparse: usage, then one error line
        rc = exc.code
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert field.format(**names) in last, err
    assert last.startswith("hostctl")


def test_a_separate_emulator_is_updated_in_real_time(tmp_path):
    """``hostctl firmware emulate --protocol 2`` in its own process, updated by ``hostctl
    firmware update`` from another: the host cannot see that emulator, so it waits the
    protocol's windows in real time (plus its latency), and the wire takes it to
    wait so."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "hostctl", "firmware", "emulate", "--protocol", "2",
                             "--boards", "2", "--seed", "3"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        port = proc.stdout.readline().strip()
        image = _image(tmp_path, size=700)
        # a latency well above the emulator process's worst lag on a loaded 2-core machine:
        # it is waited only after a window whose replies do not all come, so it costs little
        out = subprocess.run([sys.executable, "-m", "hostctl", "firmware", "update", "--port", port, "--quiet",
                              "--latency", "0.2", str(image)], capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("2 board(s) on 1 bus(es) updated to 2.1.0: 2 confirmed, 0 block(s) resent")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("flag, policy", [("v1", "V1Timing"), ("v2", "V2Timing"), (None, "V2Timing")])
def test_emulate_protocol_1_takes_the_timing_asked_for(monkeypatch, capsys, flag, policy):
    """``--timing v1|v2`` gives protocol-1 boards protocol 1's or protocol 2's reply timing
    (the emulator is built, its port printed, and its serving interrupted at once)."""
    from instruments.bus import wire
    from instruments.bus.emulator import BusEmulator

    made = []

    def serve_once(self):
        made.append(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(BusEmulator, "serve", serve_once)
    extra = [] if flag is None else ["--timing", flag]
    assert main(["firmware", "emulate", "--boards", "3", "--runtime", "reference", *extra]) == 0
    assert made and all(type(n.policy) is getattr(wire, policy) for n in made[0].wire.nodes)
    cap = capsys.readouterr()
    assert cap.out.startswith("/dev/") and f"protocol {flag or 'v2'} timing" in cap.err


def test_provision_to_a_config_dir_it_cannot_write_touches_no_board(serve, tmp_path, capsys):
    boards = onwire.make_boards(1, unassigned=True, seed=10)
    em = serve(boards)
    blocked = tmp_path / "file"
    blocked.write_text("")
    rc = main(["firmware", "provision", "--port", em.port, "--uid", boards[0].uid.hex(), "--address", "3",
               "--board-definition", str(PICO), "--config-dir", str(blocked / "boards")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"hostctl: error: --config-dir {blocked / 'boards'}: cannot write")
    assert boards[0].address == ADDR_UNASSIGNED and boards[0].store.generation == 0


def test_a_bus_failure_after_the_move_puts_the_board_back(serve, tmp_path, capsys, monkeypatch):
    from instruments.bus.v2.client import Bus, BusTimeout

    boards = onwire.make_boards(2, seed=11)
    em = serve(boards)

    request = Bus.request

    def lost(self, address, command, **kw):  # the board moved, then its read_actuator is lost
        if command == "read_actuator":
            raise BusTimeout(f"{self.name}: board {address}: {command}: no reply")
        return request(self, address, command, **kw)

    monkeypatch.setattr(Bus, "request", lost)
    rc = main(["firmware", "provision", "--port", em.port, "--uid", boards[1].uid.hex(), "--address", "9",
               "--board-definition", str(PICO), "--config-dir", str(tmp_path / "out")])
    assert rc == 1 and "read_actuator: no reply" in capsys.readouterr().err
    assert [b.address for b in boards] == [1, 2]
