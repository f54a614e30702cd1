"""Protocol 2's A/B firmware update on the RP2040 image, end to end in rp2040js.

``make -C firmware/rp2040 v2`` builds the boot loader (flash sector 0, after boot2), the
image linked for slot A and for slot B, and the package holding both
(build/twinrig-rp2040-v2.pkg, the file a bus update sends; firmware/rp2040/src/bootrec.h).
Here the emulated board is updated over the bus as PROTOCOL.md's "Firmware update" says
(store_state, fw_begin, fw_block for every block, fw_status, fw_verify, fw_swap) with the
package of another build: FW_VERSION_PATCH=1 (2.1.1), back again with 2.1.2, or FW_BROKEN=1,
an image that hangs at start-up, which the watchdog (the harness's model, datasheet 4.7)
resets so that the boot loader rolls back. Every reply is compared with
instruments.bus.v2.ReferenceBoard's to the same requests, byte for byte. A power cut in the
boot record's erase or program (the flash model's) leaves a board that boots the image it
ran. Every time is emulated.
"""

from __future__ import annotations

import struct

import pytest
from rp2040_emu import EmuBoard, build_image, build_v2_variant, config_image
from test_rp2040_emu_v2 import (
    ADDRESS, CONFIG_UID, FLASH_UID, GATE_TOL_UV, INITIAL_UV, Host, _boot, _events, _flash_ops, _reference,
    _same,
)

from instruments.bus.v2 import crc32, line_frame, quiet_ms, request_frame
from instruments.bus.v2.update import image_blocks

SLOT = (0x010000, 0x100000)
BOOT_RECORD = (0x1FA000, 0x1FB000)
RECORD_BYTES = 40  # 24 bytes and their CRC-32, then the markers running, confirmed, rolled
MARK = {"running": 28, "confirmed": 32, "rolled": 36}
WATCHDOG_CAUSE_TIMER = "timer"
BOOT_MAX_NS = 1_000_000_000  # PROTOCOL.md's BOOT_MAX_MS: a start that writes a marker takes 3 ms more


@pytest.fixture(scope="module")
def image():
    return build_image("v2")


@pytest.fixture(scope="module")
def packages(image):
    """The packages of the image as flashed (2.1.0) and of three other builds."""
    return {"2.1.0": image.with_suffix(".pkg").read_bytes(),
            "2.1.1": build_v2_variant("v2-patch1", FW_VERSION_PATCH=1).with_suffix(".pkg").read_bytes(),
            "2.1.2": build_v2_variant("v2-patch2", FW_VERSION_PATCH=2).with_suffix(".pkg").read_bytes(),
            "2.1.9 broken": build_v2_variant("v2-broken", FW_VERSION_PATCH=9, FW_BROKEN=1)
            .with_suffix(".pkg").read_bytes()}


@pytest.fixture
def config_uf2(image, tmp_path):
    return config_image(tmp_path / "board5.uf2", ADDRESS, CONFIG_UID, "mosfet", INITIAL_UV)


@pytest.fixture
def board(image, config_uf2):
    b = _boot(image.with_suffix(".uf2"), config_uf2)
    yield b
    b.close()


def _version(name: str) -> tuple[int, int, int]:
    return tuple(int(v) for v in name.split()[0].split("."))


def _send_update(host: Host, ref, pkg: bytes, version: tuple[int, int, int]) -> None:
    """fw_begin, every block, fw_status, fw_verify: all as the reference answers them."""
    crc = crc32(pkg)
    _same(host, ref, ADDRESS, "fw_begin", size=len(pkg), image_crc32=crc, fw_major=version[0],
          fw_minor=version[1], fw_patch=version[2])
    for n, data in enumerate(image_blocks(pkg)):
        _same(host, ref, ADDRESS, "fw_block", image_crc32=crc, block=n, block_crc32=crc32(data), data=data)
    assert host.request(ADDRESS, "fw_status")["missing"] == 0
    _same(host, ref, ADDRESS, "fw_status")
    _same(host, ref, ADDRESS, "fw_verify")


def _swap(host: Host, ref) -> None:
    """fw_swap (its reply as the reference's), then the rest of its quiet time."""
    start = host.board.now_ns
    _same(host, ref, ADDRESS, "fw_swap")
    host.board.call("run", ns=max(0, start + quiet_ms("fw_swap") * 1_000_000 - host.board.now_ns))


def _update(host: Host, ref, pkg: bytes, version) -> list[dict]:
    """The spec's whole update; the flash operations from fw_swap's on."""
    _same(host, ref, ADDRESS, "store_state")
    _send_update(host, ref, pkg, version)
    _events(host.board)
    _swap(host, ref)
    return _flash_ops(host.board)


def _after(host: Host, ref) -> dict:
    """identify, fw_status, read_state as the reference's; the telemetry's cause and flags.
    Returns the running version, the update's phase, version and blocks, cause and flags."""
    for cmd in ("identify", "fw_status", "read_state"):
        _same(host, ref, ADDRESS, cmd)
    t = host.request(ADDRESS, "read_telemetry")
    r = ref.feed(line_frame(request_frame(ADDRESS, host.seq, "read_telemetry")))
    assert r and (t["reset_cause"], t["flags"]) == (int(ref.reset_cause), ref.flags)
    i, st = host.request(ADDRESS, "identify"), host.request(ADDRESS, "fw_status")
    return {"version": (i["fw_major"], i["fw_minor"], i["fw_patch"]), "phase": st["phase"],
            "update": (st["fw_major"], st["fw_minor"], st["fw_patch"]), "blocks": st["blocks"],
            "reset_cause": t["reset_cause"], "flags": t["flags"]}


def _restored(host: Host, target_uv: int) -> None:
    """The board's target is ``target_uv`` (restored from the store) and its gate, read back,
    is there within the read-back's error (the gate is driven in closed loop)."""
    st = host.request(ADDRESS, "read_state")
    assert st["state"] + st["residue"] == target_uv and abs(st["state"] - target_uv) <= GATE_TOL_UV, st


def _record_ops(ops, sector: int) -> list[tuple[str, int, int]]:
    return [(e["op"], e["addr"], e["len"]) for e in ops if BOOT_RECORD[sector] <= e["addr"] < BOOT_RECORD[sector] + 4096]


def test_an_update_over_the_bus_swaps_to_the_new_version_confirms_it_and_keeps_the_learned_state(
        board, packages):
    ref = _reference()
    host = Host(board)
    _same(host, ref, ADDRESS, "set_state", state=3_217_000)
    (ops, events) = _update(host, ref, packages["2.1.1"], (2, 1, 1))
    # the boot record written by fw_swap (erase, program), then the loader's marker
    # running and the new image's confirmed: one page program each, no erase
    rec = BOOT_RECORD[0]
    assert _record_ops(ops, 0) == [("erase", rec, 4096), ("program", rec, RECORD_BYTES),
                                   ("program", rec + MARK["running"], 4), ("program", rec + MARK["confirmed"], 4)]
    assert [e["cause"] for e in events if e["type"] == "chip_reset"] == ["trigger"]
    got = _after(host, ref)
    assert got["version"] == got["update"] == (2, 1, 1)
    assert got["reset_cause"] == 4 and got["phase"] == 3  # firmware_swap, confirmed
    assert got["blocks"] == -(-len(packages["2.1.1"]) // 128)
    _restored(host, 3_217_000)  # restored from the store
    # the new image runs from slot B: its variant there is the one linked for slot B
    pkg = packages["2.1.1"]
    assert bytes.fromhex(board.call("flash_read", addr=SLOT[1], len=len(pkg))["data"]) == pkg
    # a restart keeps the outcome (until the next fw_begin)
    _same(host, ref, ADDRESS, "reset", mode=0)
    host.board.call("run", ns=quiet_ms("reset", mode=0) * 1_000_000)
    got = _after(host, ref)
    assert (got["reset_cause"], got["phase"], got["version"]) == (1, 3, (2, 1, 1))
    _events(board)


def test_a_second_update_goes_back_from_slot_b_into_slot_a(board, packages):
    ref = _reference()
    host = Host(board)
    _update(host, ref, packages["2.1.1"], (2, 1, 1))
    _same(host, ref, ADDRESS, "set_state", state=2_500_000)
    ops, _ = _update(host, ref, packages["2.1.2"], (2, 1, 2))
    # fw_begin erased slot A (the inactive one now); the second record went to sector 1
    rec = BOOT_RECORD[1]
    assert _record_ops(ops, 1) == [("erase", rec, 4096), ("program", rec, RECORD_BYTES),
                                   ("program", rec + MARK["running"], 4), ("program", rec + MARK["confirmed"], 4)]
    got = _after(host, ref)
    assert (got["version"], got["reset_cause"], got["phase"]) == ((2, 1, 2), 4, 3)
    _restored(host, 2_500_000)
    pkg = packages["2.1.2"]
    assert bytes.fromhex(board.call("flash_read", addr=SLOT[0], len=len(pkg))["data"]) == pkg
    generation = struct.unpack("<I", bytes.fromhex(board.call("flash_read", addr=rec + 4, len=4)["data"]))[0]
    assert generation == 2
    _events(board)


def test_a_trial_that_hangs_is_reset_by_the_watchdog_and_rolled_back(board, packages):
    ref = _reference(self_test=lambda image: image.version != (2, 1, 9))
    host = Host(board)
    _same(host, ref, ADDRESS, "set_state", state=2_750_000)
    ops, events = _update(host, ref, packages["2.1.9 broken"], (2, 1, 9))
    rec = BOOT_RECORD[0]
    assert _record_ops(ops, 0) == [("erase", rec, 4096), ("program", rec, RECORD_BYTES),
                                   ("program", rec + MARK["running"], 4), ("program", rec + MARK["rolled"], 4)]
    resets = [e for e in events if e["type"] == "watchdog_reset"]
    assert [e["cause"] for e in resets] == ["trigger", WATCHDOG_CAUSE_TIMER]
    # the trial's watchdog: 500 ms from the loader's start of it (the ROSC's tick at first)
    assert 400e6 < resets[1]["atNs"] - resets[0]["atNs"] < 700e6
    got = _after(host, ref)
    assert got["version"] == (2, 1, 0) and got["update"] == (2, 1, 9)  # the old image answers
    assert got["reset_cause"] == 5 and got["flags"] & 0x04 and got["phase"] == 4  # rollback, rolled_back
    assert got["blocks"] == -(-len(packages["2.1.9 broken"]) // 128)
    _restored(host, 2_750_000)
    # a later start keeps rolled_back, with the chip's own cause; fw_begin ends it
    _same(host, ref, ADDRESS, "reset", mode=0)
    host.board.call("run", ns=quiet_ms("reset", mode=0) * 1_000_000)
    assert (_after(host, ref)["phase"], ref.reset_cause) == (4, 1)
    pkg = packages["2.1.1"]
    _same(host, ref, ADDRESS, "fw_begin", size=len(pkg), image_crc32=crc32(pkg), fw_major=2, fw_minor=0, fw_patch=1)
    _same(host, ref, ADDRESS, "identify")  # the flag rolled_back is gone
    _same(host, ref, ADDRESS, "reset", mode=0)
    host.board.call("run", ns=quiet_ms("reset", mode=0) * 1_000_000)
    assert _after(host, ref)["phase"] == 0  # the restart dropped the update: idle
    _events(board)


@pytest.mark.parametrize("cut_after_ms", [200, 402])  # in the record's erase; in its program
def test_a_power_cut_while_fw_swap_writes_the_boot_record_leaves_a_bootable_board(
        image, board, packages, tmp_path, cut_after_ms):
    ref = _reference()
    host = Host(board)
    pkg = packages["2.1.1"]
    _same(host, ref, ADDRESS, "store_state")
    _send_update(host, ref, pkg, (2, 1, 1))
    _events(board)
    host.send(request_frame(ADDRESS, 200, "fw_swap"))
    board.call("run", ns=cut_after_ms * 1_000_000)
    saved = tmp_path / "cut.bin"
    assert board.call("flash_save", path=str(saved))["busy"]
    ref.power_cycle()  # the swap never happened: the update is dropped
    again = EmuBoard("--flash-uid", FLASH_UID.hex(), "--flash-image", str(saved))  # the flash alone
    try:
        again.call("run", ns=BOOT_MAX_NS)
        host2 = Host(again)
        got = _after(host2, ref)
        assert (got["version"], got["reset_cause"], got["phase"]) == ((2, 1, 0), 0, 0)
        # and the update can be done again from there
        _send_update(host2, ref, pkg, (2, 1, 1))
        _swap(host2, ref)
        assert _after(host2, ref)["version"] == (2, 1, 1)
        _events(again)
    finally:
        again.close()



def test_a_trial_that_fails_its_self_test_resets_at_once_and_is_rolled_back(board, packages):
    """A package whose header gives the slot-B variant a wrong CRC-32 (the file's own CRC-32,
    which fw_verify checks, is right): the trial image finds itself corrupt before it
    answers anything, resets the chip (CTRL.TRIGGER) and the loader rolls back."""
    pkg = bytearray(packages["2.1.1"])
    struct.pack_into("<I", pkg, 28, struct.unpack_from("<I", pkg, 28)[0] ^ 1)  # crc[1]
    struct.pack_into("<I", pkg, 32, crc32(bytes(pkg[:32])))  # the header's own CRC
    ref = _reference(self_test=lambda image: False)
    host = Host(board)
    ops, events = _update(host, ref, bytes(pkg), (2, 1, 1))
    rec = BOOT_RECORD[0]
    assert _record_ops(ops, 0)[-2:] == [("program", rec + MARK["running"], 4), ("program", rec + MARK["rolled"], 4)]
    resets = [e for e in events if e["type"] == "watchdog_reset"]
    assert [e["cause"] for e in resets] == ["trigger", "trigger"]
    assert resets[1]["atNs"] - resets[0]["atNs"] < 50e6  # no wait for the watchdog
    got = _after(host, ref)
    assert (got["version"], got["reset_cause"], got["phase"], got["flags"] & 0x04) == ((2, 1, 0), 5, 4, 4)
    _events(board)


def test_flashing_the_uf2_again_over_an_updated_board_starts_the_flashed_image(
        image, board, packages, config_uf2, tmp_path):
    """The first-flashing .uf2 blanks the boot record's sectors, so a board that ran slot B
    starts the image flashed into slot A, whatever its boot record said."""
    ref = _reference()
    host = Host(board)
    _update(host, ref, packages["2.1.1"], (2, 1, 1))
    assert _after(host, ref)["version"] == (2, 1, 1)
    saved = tmp_path / "updated.bin"
    board.call("flash_save", path=str(saved))
    again = EmuBoard("--flash-uid", FLASH_UID.hex(), "--flash-image", str(saved), image.with_suffix(".uf2"),
                     config_uf2)
    try:
        again.call("run", ns=BOOT_MAX_NS)
        host2 = Host(again)
        i, t = host2.request(ADDRESS, "identify"), host2.request(ADDRESS, "read_telemetry")
        assert ((i["fw_major"], i["fw_minor"], i["fw_patch"]), t["reset_cause"]) == ((2, 1, 0), 0)
        assert host2.request(ADDRESS, "fw_status")["phase"] == 0
        blank = bytes.fromhex(again.call("flash_read", addr=BOOT_RECORD[0], len=RECORD_BYTES)["data"])
        assert blank == b"\xff" * RECORD_BYTES
        _events(again)
    finally:
        again.close()


def test_a_power_cut_while_the_loader_marks_the_trial_running_rolls_back(board, packages, tmp_path):
    """The marker running cut part-way counts as written: the trial is taken to have run and
    not confirmed, so the next start rolls back (the board boots, the old image answers)."""
    ref = _reference()
    host = Host(board)
    _send_update(host, ref, packages["2.1.1"], (2, 1, 1))
    _events(board)
    host.send(request_frame(ADDRESS, 201, "fw_swap"))
    board.call("run", ns=405_900_000)  # the record by 403.4 ms, the reset 404.3, the marker 404.4..407.4
    saved = tmp_path / "cut.bin"
    assert board.call("flash_save", path=str(saved))["busy"]
    ops, events = _flash_ops(board)
    assert [e["cause"] for e in events if e["type"] == "chip_reset"] == ["trigger"]
    marker = saved.read_bytes()[BOOT_RECORD[0] + MARK["running"]:][:4]
    assert marker not in (b"\xff" * 4, b"\0" * 4)  # programmed in part
    again = EmuBoard("--flash-uid", FLASH_UID.hex(), "--flash-image", str(saved))
    try:
        again.call("run", ns=BOOT_MAX_NS)
        host2 = Host(again)
        i, t = host2.request(ADDRESS, "identify"), host2.request(ADDRESS, "read_telemetry")
        st = host2.request(ADDRESS, "fw_status")
        assert ((i["fw_major"], i["fw_minor"], i["fw_patch"]), t["reset_cause"], st["phase"]) == ((2, 1, 0), 5, 4)
        _events(again)
    finally:
        again.close()


@pytest.mark.parametrize("name, outcome", [("2.1.1", "confirmed"), ("2.1.9 broken", "rolled_back")])
def test_the_hosts_update_of_a_bus_updates_the_emulated_board(board, packages, name, outcome):
    """instruments.bus.v2.host_update (what ``hostctl firmware update`` runs) on the emulated
    board: broadcasts with their quiet times, resends of what fw_status lists, the swap, and
    the board reported confirmed with the new version, or rolled back to the old."""
    from test_rp2040_training import EmuPort

    from instruments.bus.v2.client import Bus
    from instruments.bus.v2.host_update import update_bus

    rep = update_bus(Bus(EmuPort(board)), packages[name], _version(name))
    (b,) = rep.boards.values()
    assert (b.address, b.outcome) == (ADDRESS, outcome)
    assert b.version == ("2.1.1" if outcome == "confirmed" else "2.1.0")
    assert b.reset_cause == ("firmware_swap" if outcome == "confirmed" else "rollback")
    # the broadcast fw_begin after the broadcast store_state was heard, and every broadcast
    # block (each within its quiet time: fw_block's 4 ms are the block's checks and tPP max)
    assert rep.blocks_resent == 0
    print(f"{name}: {rep.blocks} blocks, {rep.blocks_resent} resent, {rep.bus_time_us / 1e6:.1f} s of bus time")
    _events(board)
