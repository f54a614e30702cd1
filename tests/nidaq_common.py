"""Shared constants, fixtures and helpers of the NI-DAQmx driver tests (tests/test_nidaq*.py)."""

from __future__ import annotations

import dataclasses

import nidaqmx.errors
import numpy as np
import pytest
from fake_nidaqmx import installed
from nidaqmx.error_codes import DAQmxErrors

from instruments.daq.nidaq import NidaqDaq
from instruments.wiring import Input, Output, Wiring, default_wiring


WIRING = default_wiring("gen2")
TIMING = WIRING.timing
AO_START = "/PXI1Slot2/ao/StartTrigger"
N_AO, N_AI = len(WIRING.outputs), len(WIRING.inputs)
SAFE_V = np.array([o.safe_v for o in WIRING.outputs])
MID_V = np.array([(o.min_v + o.max_v) / 2 for o in WIRING.outputs])


@pytest.fixture
def fake():
    with installed(WIRING) as fake:
        yield fake


@pytest.fixture
def daq(fake):
    daq = NidaqDaq(WIRING)
    fake.events.clear()
    yield daq
    daq.close()


def periods(duration_s: float, rate_hz: float) -> int:
    """The fewest sample periods (>= 1) that last ``duration_s``, short by less than a
    millionth of a period at most (float products of durations and rates are not exact)."""
    k = 1
    while k < duration_s * rate_hz - 1e-6:
        k += 1
    return k


def read_timeout() -> nidaqmx.errors.DaqReadError:
    return nidaqmx.errors.DaqReadError(
        "Some or all of the samples requested have not yet been acquired.",
        DAQmxErrors.SAMPLES_NOT_YET_AVAILABLE,
        samps_per_chan_read=0,
        task_name="gen2-sim-ai",
    )


def in_order(events: list[str], *expected: str) -> bool:
    """True when ``expected`` occur in ``events`` in this order (other events between)."""
    it = iter(events)
    return all(e in it for e in expected)




ROWS = np.array([SAFE_V, MID_V, np.full(N_AO, 0.4)])


DIGITAL = dataclasses.replace(WIRING, learn_line="PXI1Slot3/port0/line0")


@pytest.fixture
def task(fake):
    """A fresh AO task on the PXIe-6738 with two channels."""
    t = fake.Task("t")
    t.ao_channels.add_ao_voltage_chan("PXI1Slot2/ao0")
    t.ao_channels.add_ao_voltage_chan("PXI1Slot2/ao1")
    return t


def code(excinfo) -> int:
    return excinfo.value.error_code



def ao_levels(fake) -> np.ndarray:
    return np.array([fake.ao_levels[ch] for ch in WIRING.ao_channels])




def usb_wiring() -> Wiring:
    """The gen2 lattice with two sources and one target on one USB-6363 (3 outputs, 1 input)."""
    net = WIRING.network.with_roles(sources=["r0c0", "r2c2"], targets=["r1c1"], ground="r1c3")
    outputs = (Output("Dev1/ao0", "r0c0", "both", 0.0, 0.45), Output("Dev1/ao1", "r2c2", "both", 0.0, 0.45),
               Output("Dev1/ao2", "r1c1", "clamped", 0.0, 0.45))
    return Wiring(name="usb-bench", network=net, daq_devices={"Dev1": "USB-6363"}, outputs=outputs,
                  inputs=(Input("Dev1/ai0", "r1c1", "free", 1.0),), learn_line="Dev1/ctr0", boards=WIRING.boards,
                  timing=TIMING)




def ramped(wiring, step_v: float):
    return dataclasses.replace(wiring, outputs=tuple(dataclasses.replace(o, max_step_v=step_v) for o in wiring.outputs))


def static_writes(fake) -> np.ndarray:
    return np.array([data for method, data in fake.writes if method == "write_one_sample"])




def simulated(wiring, **kw):
    from instruments.sim.bench import DaqErrors, SimBench

    return SimBench(wiring, errors=DaqErrors.ideal(), **kw).daq
