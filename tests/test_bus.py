"""The host's bus client against emulated boards on a real pseudo-terminal."""

import json
import subprocess
import sys

import pytest

from instruments.bus import protocol as p
from instruments.bus.client import BoardError, BusClient, BusError, BusTimeout, ProtocolMismatch
from instruments.bus.emulator import BusEmulator, Faults, make_boards


@pytest.fixture
def bus():
    def open_bus(n=3, faults=None, boards=None, **client_kw):
        em = BusEmulator(boards if boards is not None else make_boards(n), faults)
        em.start()
        client = BusClient(em.port, **client_kw)
        opened.append((em, client))
        return em, client

    opened = []
    yield open_bus
    for em, client in opened:
        client.close()
        em.close()


def test_scan_lists_every_board_with_its_identity(bus):
    em, client = bus(4)
    boards = client.scan()
    assert [b.address for b in boards] == [1, 2, 3, 4]
    assert [b.uid for b in boards] == [bd.uid.hex() for bd in em.boards]
    assert {b.kind for b in boards} == {"mosfet"}
    assert all(b.protocol == p.PROTOCOL_VERSION and b.firmware == "1.2.0" for b in boards)
    assert all(b.protocol_minor == p.PROTOCOL_MINOR == 1 for b in boards)


def test_all_states_come_back_in_one_broadcast(bus):
    em, client = bus(3)
    client.request(2, "set_state", state=2_500_000)
    before = em.chunks_seen
    assert client.read_states() == {1: 1_000_000, 2: 2_500_000, 3: 1_000_000}
    assert em.chunks_seen == before + 1


def test_a_refused_request_names_the_board_and_the_reason(bus):
    _, client = bus(2)
    with pytest.raises(BoardError, match="board 1: set_state refused: out_of_range") as info:
        client.request(1, "set_state", state=9_000_000)
    assert info.value.status == p.Error.OUT_OF_RANGE
    assert client.request(1, "read_state")["state"] == 1_000_000


def test_learn_applies_the_rule_once(bus):
    _, client = bus(1)
    client.request(1, "set_state", state=2_000_000)
    client.request(1, "configure_rule", rule=p.Rule.GATE_CHARGING, probability=p.PROBABILITY_ONE,
                   gain=2**23, dead_band_uv2=0)
    drops = client.request(1, "sample_drops")
    c = drops["dv_free_uv"] ** 2 - drops["dv_clamped_uv"] ** 2
    reply = client.request(1, "learn")
    assert reply["updated"] == 1
    assert reply["state"] == 2_000_000 + (c * 2**23) // 2**48 > 2_000_000


def test_flipped_bits_in_replies_are_retried_for_safe_commands(bus):
    _, client = bus(2, Faults(flip_bit=0.5, seed=3), retries=8)
    for _ in range(10):
        assert client.request(2, "read_state")["state"] == 1_000_000
    assert client.stats.corrupted > 0
    assert client.stats.retries >= client.stats.corrupted


def test_dropped_bytes_in_replies_are_retried_for_safe_commands(bus):
    _, client = bus(2, Faults(drop_byte=0.5, seed=4), retries=8)
    for _ in range(10):
        assert client.request(1, "identify")["protocol"] == p.PROTOCOL_VERSION
    assert client.stats.corrupted > 0


def test_a_board_that_stops_answering_is_reported_after_the_retries(bus):
    _, client = bus(2, Faults(mute={2}), retries=2, timeout_s=0.02)
    with pytest.raises(BusTimeout, match="board 2: read_state: no reply after 3 attempt"):
        client.request(2, "read_state")
    assert client.request(1, "read_state")["status"] == 0


def test_a_lost_learn_reply_is_reported_not_repeated(bus):
    em, client = bus(1, Faults(mute={1}), retries=5, timeout_s=0.02)
    before = em.chunks_seen
    with pytest.raises(BusTimeout, match="not retried"):
        client.request(1, "learn")
    assert em.chunks_seen == before + 1


def test_a_late_duplicate_reply_is_never_taken_for_the_next_answer(bus):
    _, client = bus(2, Faults(late_duplicate={1}))
    client.request(1, "set_state", state=3_000_000)
    # the echo of the set_state reply arrives first, with the old sequence number
    assert client.request(1, "read_state")["state"] == 3_000_000
    assert client.request(1, "sample_drops")["dv_free_uv"] == 20_000
    assert client.stats.stray >= 2


class _FutureBoard:
    """A board that claims a protocol version this host does not speak."""

    address = 1

    def handle(self, chunk):
        frame = p.decode_frame(chunk)
        if frame.dst not in (1, p.ADDR_BROADCAST) or frame.cmd != p.Cmd.IDENTIFY:
            return None
        return p.encode_frame(p.reply_frame(1, frame.seq, "identify", uid=bytes(8), fw_major=9,
                                            fw_minor=0, fw_patch=0, kind=2, protocol=2, minor=0))


def test_a_board_of_another_protocol_version_is_refused_by_name(bus):
    _, client = bus(boards=[_FutureBoard()])
    with pytest.raises(ProtocolMismatch, match="board 1 .*firmware 9.0.0.* speaks protocol version 2; this host speaks 1"):
        client.scan()


def test_a_missing_port_is_a_clear_error(tmp_path):
    with pytest.raises(BusError, match="cannot open the bus port"):
        BusClient(str(tmp_path / "no-such-port"))


@pytest.mark.parametrize("runtime", ["c", "micropython", "reference"])
def test_emulate_and_scan_from_the_command_line(runtime):
    em = subprocess.Popen([sys.executable, "-m", "hostctl", "firmware", "emulate", "--boards", "3",
                           "--runtime", runtime], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = em.stdout.readline().strip()
        assert port.startswith("/dev/")
        out = subprocess.run([sys.executable, "-m", "hostctl", "bus", "scan", "--port", port, "--json"],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        boards = json.loads(out.stdout)
        assert [b["address"] for b in boards] == [1, 2, 3]
        assert {b["kind"] for b in boards} == {"mosfet"}
    finally:
        em.terminate()
        em.wait()


def test_scan_of_a_missing_port_is_one_error_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "hostctl", "bus", "scan", "--port", str(tmp_path / "ttyX")],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "cannot open the bus port" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("runtime", ["c", "micropython"])
def test_boards_running_the_firmware_answer_like_the_reference(bus, runtime):
    if runtime == "c" and __import__("shutil").which("gcc") is None:
        pytest.skip("gcc is not on PATH")
    _, ref = bus(boards=make_boards(3, "reference"))
    _, c = bus(boards=make_boards(3, runtime))
    assert c.scan() == ref.scan()
    for client in (ref, c):
        client.request(3, "set_state", state=4_000_000)
        client.request(3, "configure_rule", rule=p.Rule.GATE_CHARGING, probability=p.PROBABILITY_ONE,
                       gain=2**23, dead_band_uv2=0)
    assert c.request(3, "learn") == ref.request(3, "learn")
    assert c.read_states() == ref.read_states()


def test_deploy_without_a_board_is_one_error_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "hostctl", "firmware", "deploy", "--port", str(tmp_path / "ttyACM9")],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.startswith("hostctl: error: ") and out.stderr.count("\n") == 1


@pytest.mark.parametrize("runtime", ["c", "micropython"])
def test_a_missing_firmware_runtime_is_one_clear_error(monkeypatch, tmp_path, capsys, runtime):
    from hostctl.cli import main
    from instruments.bus import runtimes

    monkeypatch.setattr(runtimes, "FIRMWARE_DIR", tmp_path)
    assert main(["firmware", "emulate", "--boards", "2", "--runtime", runtime]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hostctl: error: --runtime {runtime}: ") and err.count("\n") == 1
