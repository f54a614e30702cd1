"""The simulated bench's NI-DAQmx system: the same attributes as nidaqmx's own classes, the
capability table's channels, DAQmx's error for an unknown device, and ``rig probe
--simulate`` going through the same DAQ checks as on the bench."""

from __future__ import annotations

import dataclasses
import re

import nidaqmx.errors
import pytest
from nidaqmx.system import System
from nidaqmx.system._collections.device_collection import DeviceCollection
from nidaqmx.system._collections.physical_channel_collection import PhysicalChannelCollection
from nidaqmx.system.device import Device

from instruments.daq import models
from instruments.probe import Finding, probe
from instruments.sim.bench import SimBench
from instruments.sim.simsystem import INVALID_DEVICE_ID, SimDevice, SimSystem
from instruments.wiring import default_wiring

GEN2 = default_wiring("gen2")
CHANNEL_ATTRIBUTES = ("ao_physical_chans", "ai_physical_chans", "co_physical_chans", "do_lines")


def test_the_simulated_system_answers_only_with_attributes_nidaqmx_has():
    system = SimSystem({"Dev1": "USB-6343"})
    assert isinstance(getattr(System, "devices"), property)
    assert isinstance(getattr(DeviceCollection, "device_names"), property)
    assert hasattr(DeviceCollection, "__getitem__")
    device = system.devices["Dev1"]
    for field in dataclasses.fields(SimDevice):
        assert hasattr(Device, field.name), f"nidaqmx's Device has no {field.name}"
    for attribute in CHANNEL_ATTRIBUTES:
        assert hasattr(PhysicalChannelCollection, "channel_names")
        assert isinstance(getattr(device, attribute).channel_names, list)


@pytest.mark.parametrize("model", sorted(models.MODELS))
def test_every_devices_channels_are_the_capability_tables(model):
    m = models.MODELS[model]
    device = SimSystem({"Dev7": model}).devices["Dev7"]
    assert device.product_type == model
    assert len(device.ao_physical_chans.channel_names) == m.n_ao
    assert len(device.ai_physical_chans.channel_names) == m.n_ai
    assert len(device.co_physical_chans.channel_names) == m.n_co
    assert device.do_lines.channel_names == list(m.physical_channels("Dev7", "do"))
    if m.n_ao:
        assert device.ao_physical_chans.channel_names[-1] == f"Dev7/ao{m.n_ao - 1}"


def test_a_usb_6343_has_four_outputs_and_32_inputs():
    device = SimSystem({"Dev1": "USB-6343"}).devices["Dev1"]
    assert device.ao_physical_chans.channel_names == ["Dev1/ao0", "Dev1/ao1", "Dev1/ao2", "Dev1/ao3"]
    assert device.ai_physical_chans.channel_names[-1] == "Dev1/ai31"
    assert "Dev1/ctr0" in device.co_physical_chans.channel_names


def test_a_model_the_table_does_not_know_has_no_channels():
    device = SimSystem({"Dev1": "PCI-1234"}).devices["Dev1"]
    assert all(getattr(device, a).channel_names == [] for a in CHANNEL_ATTRIBUTES)


def test_an_unknown_device_name_is_daqmxs_invalid_device_error():
    system = SimSystem({"Dev1": "USB-6343"})
    with pytest.raises(nidaqmx.errors.DaqError, match="Device identifier is invalid") as raised:
        system.devices["Dev2"]
    assert raised.value.error_code == INVALID_DEVICE_ID


def test_serial_numbers_count_up_in_order():
    system = SimSystem({"A": "PXIe-6738", "B": "PXIe-6363"}, first_serial=0x100)
    assert [system.devices[n].serial_num for n in system.devices.device_names] == [0x100, 0x101]


def test_the_simulated_daqs_system_has_the_serial_numbers_of_its_identity():
    bench = SimBench(GEN2)
    try:
        system = bench.daq.system()
        identity = bench.daq.identity()
    finally:
        bench.bus.close()
    for name in GEN2.daq_devices:
        serial = system.devices[name].serial_num
        assert f"{name} SN {serial:08X} (simulated)" in identity


def test_the_simulated_probe_names_each_device_with_its_serial_and_channel_count():
    bench = SimBench(GEN2)
    try:
        identity = bench.daq.identity()
    finally:
        bench.bus.close()
    found = [f for f in probe(GEN2, simulate=True) if f.part.startswith("daq")]
    assert [f.part for f in found] == [f"daq {n}" for n in GEN2.daq_devices]
    for f in found:
        assert f.ok
        serial = re.search(r"SN ([0-9A-F]{8})", f.message).group(1)
        assert f"SN {serial} (simulated)" in identity
        assert re.search(r"all \d+ channels present$", f.message)


def test_the_simulated_probe_goes_through_the_same_device_checks_as_the_bench(monkeypatch):
    """A simulated DAQ whose system shows another model than the wiring says fails the probe
    as the bench would: the simulated path runs the real DAQ checks, not a string match."""
    from instruments.sim import simdaq

    ao_device = next(iter(GEN2.daq_devices))
    swapped = {**GEN2.daq_devices, ao_device: "PXIe-6363"}
    monkeypatch.setattr(simdaq.SimDaq, "system", lambda self: SimSystem(swapped, 0x10))
    found = [f for f in probe(GEN2, simulate=True) if f.part == f"daq {ao_device}"]
    assert found == [Finding(f"daq {ao_device}", False, "is a PXIe-6363 (SN 00000010), wiring says PXIe-6738")]


def test_a_channel_the_simulated_device_lacks_fails_the_simulated_probe(monkeypatch):
    from instruments.sim import simdaq

    ao_device = next(iter(GEN2.daq_devices))
    # the same model, but a device that shows only its first analog output
    monkeypatch.setattr(simdaq.SimDaq, "system", lambda self: _with_only_ao0(SimSystem(GEN2.daq_devices), ao_device))
    (found,) = [f for f in probe(GEN2, simulate=True) if f.part == f"daq {ao_device}"]
    assert not found.ok and found.message.startswith("PXIe-6738 has no channel ")
    assert f"{ao_device}/ao1" in found.message and f"{ao_device}/ao0" not in found.message


def _with_only_ao0(system: SimSystem, name: str) -> SimSystem:
    device = system.devices[name]
    only = dataclasses.replace(device, ao_physical_chans=type(device.ao_physical_chans)([f"{name}/ao0"]))
    system.devices._by_name[name] = only
    return system
