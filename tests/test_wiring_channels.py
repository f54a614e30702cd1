"""The wiring check against the devices' capability table: channels that do not exist, more
channels than a device has, rates it cannot reach, a watchdog beyond its maximum, safe values
that break a cross-channel limit, and what the hardware watchdog guards. Each problem is one
message naming the channel or field and the value; every wiring the project ships is sound."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hostctl.cli import main
from hostctl.rigfile import dumps_builtin, load_rig
from instruments.sim.network import square_grid
from instruments.wiring import DEFAULT_WIRINGS, CrossLimit, Input, Output, Timing, Wiring, default_wiring

GEN2 = default_wiring("gen2")


def usb6343(**changes) -> Wiring:
    """A small sound bench on one USB-6343: two sources and one target (3 outputs, 1 input),
    the learn pulse on ctr0."""
    net = square_grid(2, 2, name="grid-2x2").with_roles(sources=["r0c0", "r0c1"], targets=["r1c1"], ground="r1c0")
    outputs = (Output("Dev1/ao0", "r0c0", "both", 0.0, 0.45), Output("Dev1/ao1", "r0c1", "both", 0.0, 0.45),
               Output("Dev1/ao2", "r1c1", "clamped", 0.0, 0.45))
    wiring = Wiring(name="usb-bench", network=net, daq_devices={"Dev1": "USB-6343"}, outputs=outputs,
                    inputs=(Input("Dev1/ai0", "r1c1", "free", 1.0),), learn_line="Dev1/ctr0",
                    boards={e + 1: e for e in range(net.n_edges)})
    return dataclasses.replace(wiring, **changes)


def two_output(model: str, range_v: float, **changes) -> Wiring:
    """A bench of one source and one target (2 outputs, 1 input) on one ``model`` as Dev1."""
    net = square_grid(2, 2, name="grid-2x2").with_roles(sources=["r0c0"], targets=["r1c1"], ground="r1c0")
    outputs = (Output("Dev1/ao0", "r0c0", "both", 0.0, 0.45), Output("Dev1/ao1", "r1c1", "clamped", 0.0, 0.45))
    wiring = usb6343(network=net, daq_devices={"Dev1": model}, outputs=outputs,
                     inputs=(Input("Dev1/ai0", "r1c1", "free", range_v),))
    return dataclasses.replace(wiring, **changes)


def with_output_channel(wiring: Wiring, k: int, channel: str) -> Wiring:
    outputs = list(wiring.outputs)
    outputs[k] = dataclasses.replace(outputs[k], channel=channel)
    return dataclasses.replace(wiring, outputs=tuple(outputs))


def about(problems: list[str], word: str) -> list[str]:
    return [p for p in problems if word in p]


# -- what ships is sound ---------------------------------------------------------------------------


def test_the_small_usb_6343_bench_is_sound():
    assert usb6343().problems() == []


@pytest.mark.parametrize("name", DEFAULT_WIRINGS)
def test_the_built_in_benches_are_sound(name):
    assert default_wiring(name).problems() == []


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "examples").glob("rig_*.toml")), ids=str)
def test_every_example_rig_file_is_sound(path):
    assert load_rig(str(path)).problems() == []


# -- channels that do not exist -----------------------------------------------------------------------


def test_an_output_the_device_does_not_have_is_named_with_what_it_has():
    problems = with_output_channel(usb6343(), 2, "Dev1/ao17").problems()
    assert about(problems, "ao17") == [
        "output Dev1/ao17 (r1c1, clamped): channel Dev1/ao17 does not exist on the USB-6343 Dev1 (it has ao0..ao3)"
    ]


def test_an_input_the_device_does_not_have_is_named():
    wiring = usb6343(inputs=(Input("Dev1/ai40", "r1c1", "free", 1.0),))
    assert wiring.problems() == [
        "input Dev1/ai40 (r1c1, free): channel Dev1/ai40 does not exist on the USB-6343 Dev1 (it has ai0..ai31)"
    ]


@pytest.mark.parametrize("line, has", [
    ("Dev1/ctr4", "ctr0..ctr3"),
    ("Dev1/port0/line32", "port0/line0..31, port1/line0..7, port2/line0..7"),
    ("Dev1/port1/line8", "port0/line0..31, port1/line0..7, port2/line0..7"),
    ("Dev1/port3/line0", "port0/line0..31, port1/line0..7, port2/line0..7"),
])
def test_a_learn_line_the_device_does_not_have_is_named(line, has):
    assert usb6343(learn_line=line).problems() == [
        f"learn line: channel {line} does not exist on the USB-6343 Dev1 (it has {has})"
    ]


@pytest.mark.parametrize("line", ["Dev1/ctr3", "Dev1/port0/line31", "Dev1/port1/line7", "Dev1/port2/line0"])
def test_a_learn_line_the_device_has_is_accepted(line):
    assert usb6343(learn_line=line).problems() == []


def test_a_usb_6001_has_no_counter_for_the_learn_pulse():
    wiring = two_output("USB-6001", 10.0, timing=Timing(sample_rate_hz=5e3))
    assert wiring.problems() == [
        "learn line: channel Dev1/ctr0 does not exist on the USB-6001 Dev1 (it has no counter that can generate a pulse)"
    ]


def test_an_input_on_the_output_only_pxie_6738_is_named():
    wiring = dataclasses.replace(GEN2, inputs=(dataclasses.replace(GEN2.inputs[0], channel="PXI1Slot2/ai0"),
                                               GEN2.inputs[1]))
    assert about(wiring.problems(), "PXI1Slot2/ai0") == [
        "input PXI1Slot2/ai0 (r1c1, free): channel PXI1Slot2/ai0 does not exist on the PXIe-6738 PXI1Slot2 "
        "(it has no analog inputs)"
    ]


def test_the_gen2_bench_needs_6_outputs_and_a_usb_6343_has_4():
    outputs = tuple(dataclasses.replace(o, channel=f"Dev1/ao{k}") for k, o in enumerate(GEN2.outputs))
    inputs = tuple(dataclasses.replace(i, channel=f"Dev1/ai{k}") for k, i in enumerate(GEN2.inputs))
    wiring = dataclasses.replace(GEN2, daq_devices={"Dev1": "USB-6343"}, outputs=outputs, inputs=inputs,
                                 learn_line="Dev1/ctr0")
    problems = wiring.problems()
    assert about(problems, "does not exist") == [
        f"output Dev1/ao{k} ({o.node}, {o.twin}): channel Dev1/ao{k} does not exist on the USB-6343 Dev1 "
        f"(it has ao0..ao3)" for k, o in list(enumerate(GEN2.outputs))[4:]
    ]
    assert "daq device Dev1: the wiring uses 6 analog outputs, the USB-6343 has 4" in problems


def test_outputs_on_two_devices_are_refused_naming_them():
    wiring = usb6343(daq_devices={"Dev1": "USB-6343", "Dev2": "USB-6343"})
    wiring = with_output_channel(wiring, 2, "Dev2/ao0")
    assert wiring.problems() == [
        "outputs: on devices Dev1, Dev2; the outputs are one task, and NI-DAQmx cannot time a task across "
        "devices on demand (error -201444), so put every output on one device"
    ]


# -- rates --------------------------------------------------------------------------------------------


def test_two_inputs_of_a_6363_share_its_1_msps_aggregate_rate():
    wiring = dataclasses.replace(GEN2, timing=dataclasses.replace(GEN2.timing, sample_rate_hz=600e3))
    assert wiring.problems() == [
        "timing.sample_rate_hz 600000 Hz x 2 inputs exceeds the PXIe-6363's 1e+06 S/s aggregate input rate on "
        "PXI1Slot3 (1.2e+06 S/s asked; 2e+06 S/s is for one input alone)"
    ]
    fast = dataclasses.replace(GEN2, timing=dataclasses.replace(GEN2.timing, sample_rate_hz=500e3))
    assert fast.problems() == []


def test_one_input_of_a_usb_6343_is_held_to_its_single_channel_rate():
    wiring = usb6343(timing=Timing(sample_rate_hz=600e3))
    assert about(wiring.problems(), "input rate") == [
        "timing.sample_rate_hz 600000 Hz x 1 input exceeds the USB-6343's 500000 S/s single-channel input rate on Dev1"
    ]


def test_the_outputs_are_held_to_the_devices_update_rate():
    wiring = usb6343(timing=Timing(sample_rate_hz=950e3))
    assert "timing.sample_rate_hz 950000 Hz exceeds the USB-6343's 900000 S/s output update rate on Dev1" in (
        wiring.problems())


# -- the watchdog --------------------------------------------------------------------------------------


def test_the_pxie_6738_watchdog_guards_the_outputs_and_nothing_guards_the_6363():
    assert GEN2.hardware_watchdog() == {"PXI1Slot2": "ao", "PXI1Slot3": None}
    assert GEN2.host_guarded() == {}
    assert GEN2.host_guarded_summary() is None


def test_the_outputs_of_a_usb_6343_are_guarded_by_the_host_only():
    wiring = usb6343()
    assert wiring.hardware_watchdog() == {"Dev1": None}
    assert wiring.host_guarded() == {"Dev1": ("ao",)}
    assert wiring.host_guarded_summary() == "the analog outputs of Dev1 (USB-6343)"


def test_a_digital_learn_line_on_an_x_series_device_is_guarded_by_its_watchdog():
    wiring = dataclasses.replace(GEN2, learn_line="PXI1Slot3/port0/line0")
    assert wiring.hardware_watchdog() == {"PXI1Slot2": "ao", "PXI1Slot3": "do"}
    assert wiring.host_guarded() == {}


def test_a_digital_learn_line_on_a_usb_6211_is_guarded_by_the_host_only():
    wiring = two_output("USB-6211", 1.0, learn_line="Dev1/port1/line0", timing=Timing(sample_rate_hz=50e3))
    assert wiring.problems() == []
    assert wiring.hardware_watchdog() == {"Dev1": None}
    assert wiring.host_guarded_summary() == "the analog outputs and digital learn line of Dev1 (USB-6211)"


def test_a_watchdog_timeout_beyond_the_devices_maximum_is_refused():
    wiring = dataclasses.replace(GEN2, timing=dataclasses.replace(GEN2.timing, watchdog_s=40.0))
    assert wiring.problems() == [
        "timing.watchdog_s 40 s exceeds the PXIe-6738's longest watchdog timeout 34.36 s on PXI1Slot2"
    ]
    assert dataclasses.replace(GEN2, timing=dataclasses.replace(GEN2.timing, watchdog_s=34.0)).problems() == []


def test_a_long_watchdog_is_no_problem_where_no_hardware_watchdog_runs():
    assert usb6343(timing=Timing(watchdog_s=600.0)).problems() == []


def test_a_pulse_shorter_than_two_counter_ticks_is_refused():
    wiring = usb6343(timing=Timing(pulse_s=10e-9))
    assert wiring.problems() == [
        "timing.pulse_s 1e-08 s is shorter than the USB-6343's shortest counter pulse 2e-08 s (two ticks of its "
        "1e+08 Hz timebase)"
    ]


# -- safe values against the cross-channel limits --------------------------------------------------------------


def test_safe_values_that_break_a_cross_channel_limit_are_refused():
    outputs = list(GEN2.outputs)
    outputs[2] = dataclasses.replace(outputs[2], safe_v=0.4)
    wiring = dataclasses.replace(GEN2, outputs=tuple(outputs),
                                 cross_limits=(CrossLimit("PXI1Slot2/ao2", "PXI1Slot2/ao3", 0.3),))
    assert wiring.problems() == [
        "cross limit PXI1Slot2/ao2 - PXI1Slot2/ao3: the safe values 0.4 V and 0 V differ by 0.4 V, more than "
        "max_diff_v 0.3 V (the open, the safe state and a watchdog expiry write them)"
    ]
    within = dataclasses.replace(wiring, cross_limits=(CrossLimit("PXI1Slot2/ao2", "PXI1Slot2/ao3", 0.4),))
    assert within.problems() == []


# -- the command line ---------------------------------------------------------------------------------------


def test_rig_check_refuses_a_channel_that_does_not_exist_by_name(tmp_path, capsys):
    path = tmp_path / "rig.toml"
    path.write_text(dumps_builtin("gen2").replace('"PXI1Slot2/ao5"', '"PXI1Slot2/ao40"'))
    assert main(["rig", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert (f"{path}: output PXI1Slot2/ao40 (r3c3, clamped): channel PXI1Slot2/ao40 does not exist on the "
            f"PXIe-6738 PXI1Slot2 (it has ao0..ao31)") in out
    assert out.strip().endswith("1 problem; the wiring is not sound")
