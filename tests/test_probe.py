"""``hostctl rig probe``: every part of a wiring asked whether it is what the wiring says.

The DAQ side runs against NI-DAQmx objects autospecced from the installed nidaqmx (a device
of the wrong type, a missing device, a channel the device does not have); the bus side
against the simulated boards behind the real bus client; the command line on this machine,
which has neither NI-DAQmx nor a VISA library, so the one-line errors are the real ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from unittest import mock

import nidaqmx.errors
import pytest
from nidaqmx.system import Device, System
from nidaqmx.system._collections.device_collection import DeviceCollection
from nidaqmx.system._collections.physical_channel_collection import PhysicalChannelCollection

from hostctl.cli import main
from instruments.probe import Finding, probe
from instruments.sim.bench import BenchFaults, SimBench
from instruments.wiring import default_wiring

WIRING = default_wiring("gen2")
# what a PXIe-6738 and a PXIe-6363 list (NI-DAQmx names every physical channel in full)
CHANNELS = {
    "PXIe-6738": {"ao": 32, "ai": 0, "ctr": 4, "port": 0},
    "PXIe-6363": {"ao": 4, "ai": 32, "ctr": 4, "port": 32},
}


def spec(cls):
    return mock.create_autospec(cls, instance=True, spec_set=True)


def channel_list(names):
    collection = spec(PhysicalChannelCollection)
    collection.channel_names = list(names)
    return collection


def nidaq_system(devices: dict[str, str], channels=CHANNELS):
    """An autospecced ``System`` whose devices are ``{name: product type}``."""
    made = {}
    for k, (name, product) in enumerate(devices.items()):
        device = spec(Device)
        device.name = name
        device.product_type = product
        device.serial_num = 0x01E0C0DE + k
        n = channels.get(product, {"ao": 0, "ai": 0, "ctr": 0, "port": 0})
        device.ao_physical_chans = channel_list(f"{name}/ao{i}" for i in range(n["ao"]))
        device.ai_physical_chans = channel_list(f"{name}/ai{i}" for i in range(n["ai"]))
        device.co_physical_chans = channel_list(f"{name}/ctr{i}" for i in range(n["ctr"]))
        device.do_lines = channel_list(f"{name}/port0/line{i}" for i in range(n["port"]))
        made[name] = device
    collection = spec(DeviceCollection)
    collection.device_names = list(made)
    collection.__getitem__.side_effect = lambda name: made[name]
    system = spec(System)
    system.devices = collection
    return system


def daq_findings(wiring, system):
    bare = replace(wiring, smu=None, dmm=None, psu=None, bus_port=None, boards={})
    return [f for f in probe(bare, system=system) if f.part.startswith("daq")]


# -- the DAQ -----------------------------------------------------------------------------------


def test_devices_as_wired_pass_and_name_their_serial_numbers():
    found = daq_findings(WIRING, nidaq_system(WIRING.daq_devices))
    assert [f.ok for f in found] == [True, True]
    assert found[0].line() == "daq PXI1Slot2: ok, NI PXIe-6738 SN 01E0C0DE, all 6 channels present"


def test_a_device_of_another_type_is_named_with_what_it_is():
    system = nidaq_system({"PXI1Slot2": "PXIe-6738", "PXI1Slot3": "PXIe-6341"})
    (bad,) = [f for f in daq_findings(WIRING, system) if not f.ok]
    assert bad.line() == "daq PXI1Slot3: is a PXIe-6341 (SN 01E0C0DF), wiring says PXIe-6363"


def test_a_missing_device_is_named_with_what_is_present():
    system = nidaq_system({"PXI1Slot2": "PXIe-6738", "Dev1": "USB-6343"})
    found = daq_findings(WIRING, system)
    assert Finding("daq PXI1Slot3", False, "not found (wiring says PXIe-6363); present: Dev1, PXI1Slot2") in found
    assert Finding("daq Dev1", True, "present, not in the wiring") in found


def test_a_channel_the_device_does_not_have_is_named():
    few = {**CHANNELS, "PXIe-6363": {"ao": 4, "ai": 1, "ctr": 4, "port": 32}}
    found = daq_findings(WIRING, nidaq_system(WIRING.daq_devices, few))
    (bad,) = [f for f in found if not f.ok]
    assert bad.line() == "daq PXI1Slot3: PXIe-6363 has no channel PXI1Slot3/ai1"


def test_no_ni_daqmx_driver_is_one_finding():
    system = spec(System)
    type(system).devices = mock.PropertyMock(side_effect=nidaqmx.errors.DaqNotFoundError("Could not find NI-DAQmx"))
    (found,) = daq_findings(WIRING, system)
    assert not found.ok and found.message.startswith("NI-DAQmx is not installed on this machine")


# -- the bus -----------------------------------------------------------------------------------


def bus_findings(wiring, **bench_options):
    return [f for f in probe(wiring, simulate=True, **bench_options) if f.part == "bus"]


def test_every_board_answering_passes():
    (found,) = bus_findings(WIRING)
    assert found.line() == "bus: ok, all 32 boards answered (mosfet, firmware 1.2.0)"


def test_boards_that_do_not_answer_are_named_as_address_runs():
    (found,) = bus_findings(WIRING, faults=BenchFaults(mute={3, 4, 5, 9}))
    assert found.line() == "bus: 4 of 32 boards did not answer: 3-5, 9"


def test_a_board_the_wiring_does_not_name_is_named():
    boards = {a: e for a, e in WIRING.boards.items() if a != 7}
    wiring = replace(WIRING, boards=boards)
    # the simulated bench has a board per edge of the wiring; probe the full bench's bus
    bench = SimBench(WIRING)
    found = probe(replace(wiring, smu=None, dmm=None, psu=None, bus_port="sim"), system=nidaq_system(WIRING.daq_devices),
                  open_bus=lambda port: bench.bus)
    assert Finding("bus", False, "boards the wiring does not name answered: 7") in found


# -- the command line --------------------------------------------------------------------------


def test_probing_a_builtin_bench_finds_every_part_as_wired(capsys):
    assert main(["rig", "probe", "--builtin", "gen2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["simulated"]
    assert [f["part"] for f in out["findings"]] == ["daq PXI1Slot2", "daq PXI1Slot3", "smu", "dmm", "psu", "bus"]


def test_probing_without_any_hardware_gives_one_line_per_part_and_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "hostctl", "rig", "probe", "examples/rig_gen2.toml"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("examples/rig_gen2.toml: daq: NI-DAQmx is not installed")
    assert any(line.startswith("examples/rig_gen2.toml: bus: cannot open the bus port /dev/ttyUSB0") for line in lines)
    assert lines[-1].endswith("not as wired")


def test_the_simulated_bench_of_a_rig_file_is_probed_the_same_way(capsys):
    assert main(["rig", "probe", "examples/rig_gen2.toml", "--simulate"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "examples/rig_gen2.toml: every part is as wired (simulated bench)"


@pytest.mark.parametrize("argv, words", [
    (["rig", "probe"], "give a rig file or --builtin"),
    (["rig", "probe", "examples/rig_gen2.toml", "--builtin", "gen2"], "not both"),
    (["rig", "probe", "no/such/rig.toml"], "cannot read the rig file"),
])
def test_bad_probe_arguments_are_one_line(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_rig_check_says_how_far_away_the_safe_state_is_at_worst(tmp_path, capsys):
    text = open("examples/rig_gen2.toml").read().replace("max_step_v = 0.45", "max_step_v = 0.1")
    (tmp_path / "rig.toml").write_text(text)
    assert main(["rig", "check", str(tmp_path / "rig.toml")]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    # 0.45 V from the safe 0 V at 0.1 V a write: 0.35, 0.25, 0.15, 0.05, then the safe value
    # PXIe devices: about 10 us a software-timed write
    assert last.endswith("the safe state is at most 5 writes away (about 5e-05 s at 10 us a software-timed write, "
                         "an estimate); a watchdog expiry goes there in one step")


# -- settings ----------------------------------------------------------------------------------


def test_a_rig_reports_every_instruments_settings_and_names_one_that_cannot_answer():
    from instruments.rig import open_rig

    rig = open_rig(WIRING, simulate=True)
    try:
        class Mute:
            def settings(self):
                raise TimeoutError("VI_ERROR_TMO (-1073807339):\n Timeout expired")

        class Plain:  # an instrument that cannot tell its settings
            pass

        rig.dmm, rig.psu = Mute(), Plain()
        out = rig.settings()
        assert out["dmm"] == {"unreadable": "TimeoutError: VI_ERROR_TMO (-1073807339): Timeout expired"}
        assert "psu" not in out
    finally:
        rig.dmm = rig.psu = None
        rig.close()


# -- SCPI instruments on pyvisa-sim --------------------------------------------------------------


def scpi_findings(**roles):
    from instruments.visa import sim_resource_manager
    from instruments.wiring import Instrument

    chosen = {role: None for role in ("smu", "dmm", "psu")}
    chosen.update({role: Instrument(kind, address) for role, (kind, address) in roles.items()})
    wiring = replace(WIRING, bus_port=None, boards={}, **chosen)
    return [f for f in probe(wiring, system=nidaq_system(WIRING.daq_devices), resource_manager=sim_resource_manager())
            if not f.part.startswith("daq")]


def test_instruments_that_answer_as_their_kind_pass_with_their_identity():
    found = scpi_findings(smu=("keithley2450", "USB0::0x05E6::0x2450::04096331::INSTR"),
                          dmm=("keysight34465a", "USB0::0x2A8D::0x0101::MY57503317::INSTR"),
                          psu=("keysight_e36312a", "USB0::0x2A8D::0x1102::MY59001234::INSTR"))
    assert [(f.part, f.ok) for f in found] == [("smu", True), ("dmm", True), ("psu", True)]
    assert "2450" in found[0].message and "04096331" in found[0].message


def test_a_2450_in_its_tsp_command_set_is_named_with_how_to_switch():
    (found,) = scpi_findings(smu=("keithley2450", "USB0::0x05E6::0x2450::04099999::INSTR"))
    assert not found.ok
    assert found.message == ("USB0::0x05E6::0x2450::04099999::INSTR is in its TSP command set; switch it to SCPI "
                             "(MENU > System > Settings > Command Set) and power-cycle it")


def test_another_instrument_at_the_address_is_named_with_what_it_says():
    (found,) = scpi_findings(dmm=("keysight34465a", "USB0::0x2A8D::0x1102::MY59001234::INSTR"))
    assert not found.ok and "not a 34465A (keysight34465a)" in found.message


def test_an_address_nothing_answers_at_is_one_finding():
    # pyvisa-sim opens any address and answers nothing there with an empty message
    with pytest.warns(UserWarning, match="termination"):
        (found,) = scpi_findings(psu=("keysight_e36312a", "USB0::0x2A8D::0x1102::NOSUCH::INSTR"))
    assert not found.ok
    assert found.message == ("USB0::0x2A8D::0x1102::NOSUCH::INSTR gives an empty reply to *IDN?: nothing there "
                             "answers as a E36312A")
