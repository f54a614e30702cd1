"""The source-meter and the supply inside the safety layer: on the simulated bench's SMU and
supply (which keep a stale level and a tripped channel as the real parts do), and on the
pyvisa-sim 2450 and E36312A through their drivers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pyvisa

from instruments.interfaces import InstrumentError, PowerSupply, SourceMeter
from instruments.rig import open_rig
from instruments.safe_instruments import (
    DEFAULT_SMU_STEP_V,
    SafeSourceMeter,
    SafeSupply,
    SupplyChannel,
    driver_options,
    ramp_steps,
)
from instruments.safety import LimitError, SafetyGuard
from instruments.sim.bench import SimBench
from instruments.visa import SIM_BENCH, open_instrument

SIM_SMU = "smu (TWINRIG,SIM-2450,SIMBENCH,0.1)"
SIM_PSU = "psu (TWINRIG,SIM-E36312A,SIMBENCH,0.1)"


def volts_seen(smu) -> list[float]:
    return [v for *_, v in smu.applied]


@pytest.fixture
def bench():
    return SimBench(seed=3)


@pytest.fixture
def stale(bench):
    """The bench's SMU across edge 2, with 5 V left programmed from before (output off)."""
    smu = bench.probe_smu(2)
    smu.set_voltage(5.0)
    return smu


def safe_smu(smu, **kw) -> SafeSourceMeter:
    options = dict(max_v=0.45, max_step_v=0.05, compliance_a=1e-3) | kw
    return SafeSourceMeter(smu, **options)


# -- the source-meter --------------------------------------------------------------------------
def test_a_safe_source_meter_is_a_source_meter_and_a_safe_supply_a_power_supply(stale, bench):
    assert isinstance(safe_smu(stale), SourceMeter)
    assert isinstance(SafeSupply(bench.psu, {1: SupplyChannel(5.5, 0.5)}), PowerSupply)


def test_the_bare_simulated_smu_switches_on_at_its_stale_level(stale):
    stale.configure(1e-3)
    stale.output(True)
    assert volts_seen(stale) == [5.0]


def test_the_output_never_goes_on_before_the_level_is_set_and_the_limit_configured(stale):
    events = []
    smu = safe_smu(stale, on_event=events.append)
    smu.output(True)  # nothing configured yet: it configures first
    assert volts_seen(stale) == [0.0]
    assert (stale.compliance_a, stale.protection_v, stale.level_v) == (1e-3, 2.0, 0.0)
    assert events == ["smu: output off at 0 V, current limit 0.001 A, overvoltage protection covering 0.45 V"]


def test_every_level_change_is_ramped_within_the_step_and_timed(stale):
    waits = []
    smu = safe_smu(stale, step_delay_s=0.01, sleep=waits.append)
    smu.configure(1e-3)
    smu.output(True)
    current_a = smu.measure_current(0.45)
    seen = volts_seen(stale)
    assert seen[0] == 0.0 and seen[-1] == 0.45 and len(seen) == 10
    assert np.max(np.abs(np.diff(seen))) <= 0.05 * (1 + 1e-9)
    assert waits == [0.01] * 8 and current_a > 0
    smu.set_voltage(0.3)
    assert volts_seen(stale)[-3:] == pytest.approx([0.4, 0.35, 0.3])


@pytest.mark.parametrize("voltage_v, message", [
    (0.5, "0.5 V is above its limit 0.45 V"),
    (-0.1, "-0.1 V is below its limit 0 V"),
    (math.nan, "level nan V is not a number"),
])
def test_a_level_outside_the_limits_is_one_limit_error_naming_instrument_value_and_limit(stale, voltage_v, message):
    smu = safe_smu(stale)
    smu.output(True)
    for call in (smu.set_voltage, smu.measure_current):
        with pytest.raises(LimitError) as caught:
            call(voltage_v)
        assert str(caught.value) == f"{SIM_SMU}: {message}"
    assert volts_seen(stale) == [0.0] and stale.level_v == 0.0


def test_a_current_limit_above_the_compliance_limit_is_refused_before_anything_is_sent(stale):
    with pytest.raises(LimitError) as caught:
        safe_smu(stale).configure(2e-3)
    assert str(caught.value) == f"{SIM_SMU}: current limit 0.002 A is outside its limit (0, 0.001] A"
    assert stale.level_v == 5.0 and stale.compliance_a == 105e-6


def test_safe_state_ramps_to_0_v_then_switches_off(stale):
    smu = safe_smu(stale)
    smu.output(True)
    smu.set_voltage(0.2)
    stale.applied.clear()
    smu.safe_state()
    assert volts_seen(stale) == pytest.approx([0.15, 0.1, 0.05, 0.0])
    assert not smu.output_on and stale.level_v == 0.0
    with pytest.raises(InstrumentError, match="output off"):
        stale.measure_current(0.1)


def test_a_failing_write_cuts_the_ramp_short_and_the_output_still_goes_off(stale):
    events = []
    smu = safe_smu(stale, on_event=events.append)
    smu.output(True)
    smu.set_voltage(0.2)
    program = stale.set_voltage

    def failing(voltage_v):
        if voltage_v == pytest.approx(0.1):
            raise InstrumentError("SIM-2450: no answer")
        program(voltage_v)
    stale.set_voltage = failing
    smu.safe_state()
    assert smu.ramp_failure == "InstrumentError: SIM-2450: no answer"
    assert events[-1] == ("smu: the ramp to 0 V stopped at 0.15 V (InstrumentError: SIM-2450: no answer); "
                          "output switched off there")
    assert volts_seen(stale)[-2:] == pytest.approx([0.15, 0.0]) and not stale._on


def test_the_safety_guard_takes_a_safe_source_meter_down_its_ramp(stale):
    rig = open_rig(simulate=True)
    smu = safe_smu(rig.bench.probe_smu(0))
    smu.output(True)
    smu.set_voltage(0.1)
    rig.bench.smu.applied.clear()
    SafetyGuard(rig.daq, instruments=[smu]).shutdown()
    assert volts_seen(rig.bench.smu) == pytest.approx([0.05, 0.0])


def test_a_sweep_must_step_within_the_ramp_and_is_reached_by_a_ramp(stale):
    smu = safe_smu(stale)
    smu.output(True)
    with pytest.raises(LimitError) as caught:
        smu.sweep(np.array([0.1, 0.15, 0.3]))
    assert str(caught.value) == (f"{SIM_SMU}: sweep points 1 and 2 (0.15 V, 0.3 V) are 0.15 V apart, beyond its "
                                 "ramp limit 0.05 V per write")
    with pytest.raises(LimitError, match=r"0.5 V is above its limit 0.45 V \(sweep point 2\)"):
        smu.sweep(np.array([0.4, 0.45, 0.5]))
    assert volts_seen(stale) == [0.0]
    smu.sweep(np.array([0.1, 0.12, 0.14]))
    assert volts_seen(stale) == pytest.approx([0.0, 0.05, 0.1, 0.12, 0.14]) and smu.level_v == 0.14


def test_limits_that_cannot_be_kept_are_refused_naming_them(stale):
    with pytest.raises(ValueError, match=r"^max_step_v: 0 is outside \(0, inf\]$"):
        safe_smu(stale, max_step_v=0)
    with pytest.raises(ValueError, match=r"^min_v: 0.1 is outside \[-210, 0\]$"):
        safe_smu(stale, min_v=0.1)
    with pytest.raises(ValueError, match=r"^voltage_protection_v: 0.3 V does not cover the limits 0..0.45 V$"):
        safe_smu(stale, voltage_protection_v=0.3)

    class MeasureOnly:
        def configure(self, compliance_a, nplc=1.0): ...

    with pytest.raises(TypeError, match="programs its level without measuring"):
        safe_smu(MeasureOnly())


def test_a_safe_source_meter_is_built_from_a_wirings_options(stale):
    options = {"compliance_a": 1e-3, "nplc": 2.0, "max_step_v": 0.02}
    smu = SafeSourceMeter.from_options(stale, options, max_v=0.45)
    assert (smu.max_v, smu.min_v, smu.max_step_v, smu.compliance_a, smu.nplc) == (0.45, 0.0, 0.02, 1e-3, 2.0)
    assert SafeSourceMeter.from_options(stale, {"compliance_a": 1e-3, "max_v": 1.0}).max_step_v == DEFAULT_SMU_STEP_V
    with pytest.raises(ValueError, match="max_v is required"):
        SafeSourceMeter.from_options(stale, {"compliance_a": 1e-3})
    with pytest.raises(ValueError, match="compliance_a is required"):
        SafeSourceMeter.from_options(stale, {"max_v": 1.0})
    assert driver_options("smu", {"compliance_a": 1e-3, "max_v": 1, "min_v": 0, "max_step_v": 0.1,
                                  "voltage_protection_v": 2}) == {"compliance_a": 1e-3, "voltage_protection_v": 2}


def test_through_the_2450_driver_the_output_goes_on_only_after_0_v_and_the_protection():
    rm = pyvisa.ResourceManager(f"{SIM_BENCH.parent / 'keithley2450.yaml'}@sim")
    driver = open_instrument("keithley2450", "USB0::0x05E6::0x2450::04096331::INSTR", rm, timeout_s=0.05,
                             record=True)
    driver.set_voltage(20.0)  # a stale level
    driver.transport.exchanges.clear()
    smu = SafeSourceMeter(driver, max_v=0.45, max_step_v=0.2, compliance_a=1e-3)
    smu.output(True)
    smu.set_voltage(0.45)
    commands = [c for c, _ in driver.transport.exchanges if not c.startswith(":SYST:ERR")]
    assert commands[:3] == [":OUTP OFF", ":OUTP OFF", ":SOUR:FUNC VOLT"]
    on = commands.index(":OUTP ON")
    assert ":SOUR:VOLT:PROT PROT2" in commands[:on] and commands[on - 1] == ":SOUR:VOLT:PROT PROT2"
    assert commands[on - 2] == ":SOUR:VOLT 0.0"
    assert commands[on + 1:] == [":SOUR:VOLT 0.15", ":SOUR:VOLT 0.3", ":SOUR:VOLT 0.45"]
    assert driver.settings()["voltage_protection_v"] == 2.0
    smu.close()
    assert driver.transport.closed


@pytest.mark.parametrize("from_v, to_v, step_v, n_steps", [
    (0.0, 0.45, 0.05, 9), (0.45, 0.0, 0.05, 9), (0.0, 0.3, 0.1, 3), (0.1, 0.1, 0.05, 0), (-0.2, 0.7, 0.3, 3),
    (0.0, 0.31, 0.1, 4), (0.0, 1.0, math.inf, 1),
])
def test_ramp_steps_are_the_fewest_equal_steps_within_the_limit_ending_exactly(from_v, to_v, step_v, n_steps):
    steps = ramp_steps(from_v, to_v, step_v)
    assert len(steps) == n_steps and (not steps or steps[-1] == to_v)
    assert all(abs(b - a) <= step_v * (1 + 1e-9) for a, b in zip([from_v] + steps, steps))


# -- the supply --------------------------------------------------------------------------------
def board_supply(bench, **kw) -> SafeSupply:
    return SafeSupply(bench.psu, {1: SupplyChannel(max_v=5.5, max_current_a=0.5, max_step_v=1.0)}, **kw)


@pytest.mark.parametrize("call, message", [
    (lambda s: s.set_voltage(1, 6.0), "channel 1: 6 V is above its limit 5.5 V"),
    (lambda s: s.set_voltage(1, -1.0), "channel 1: -1.0 V is not a voltage of 0 V or more"),
    (lambda s: s.set_current_limit(1, 0.8), "channel 1: current limit 0.8 A is outside its limit (0, 0.5] A"),
    (lambda s: s.set_voltage(2, 1.0), "channel 2 is not under the safety layer (channels 1)"),
    (lambda s: s.output(3, True), "channel 3 is not under the safety layer (channels 1)"),
])
def test_a_supply_setting_outside_its_limits_is_one_limit_error(bench, call, message):
    before = bench.psu.settings()
    with pytest.raises(LimitError) as caught:
        call(board_supply(bench))
    assert str(caught.value) == f"{SIM_PSU}: {message}"
    assert bench.psu.settings() == before


def test_a_supply_channel_is_switched_on_only_once_its_voltage_and_limit_are_set(bench):
    supply = SafeSupply(bench.psu, {2: SupplyChannel(max_v=12.0, max_current_a=0.2)})
    with pytest.raises(LimitError, match="channel 2 cannot be switched on before its current limit is set"):
        supply.output(2, True)  # it reads back 0 V, but the 1 A limit is beyond 0.2 A
    supply.set_current_limit(2, 0.1)
    supply.output(2, True)
    assert bench.psu.on[2]


def test_a_supply_on_beyond_its_limits_is_refused_at_once(bench):
    with pytest.raises(LimitError) as caught:
        SafeSupply(bench.psu, {1: SupplyChannel(max_v=4.0, max_current_a=0.5)})
    assert str(caught.value) == f"{SIM_PSU}: channel 1 is on at 5 V, above its limit 4 V"


def test_a_supply_voltage_change_with_the_output_on_is_ramped(bench):
    written = []
    program = bench.psu.set_voltage
    bench.psu.set_voltage = lambda channel, v: (written.append(v), program(channel, v))
    supply = board_supply(bench)
    supply.set_voltage(1, 5.5)
    supply.set_voltage(1, 3.0)
    assert written == pytest.approx([5.5, 4.666667, 3.833333, 3.0])  # from the 5 V it holds


def test_a_tripped_channel_stays_off_until_its_protection_is_cleared_on_purpose_and_reported(bench):
    events = []
    supply = board_supply(bench, on_event=events.append)
    bench.trip_psu()
    with pytest.raises(InstrumentError, match="stays off until it is cleared"):
        supply.output(1, True)
    assert supply.clear_protection(1) is True
    assert events == ["psu: channel 1 protection cleared (it had tripped its over-current protection); "
                      "its output stays off until switched on"]
    assert not bench.boards.powered
    supply.output(1, True)
    assert bench.boards.powered and not supply.over_current(1)


def test_the_supplys_safe_state_ramps_down_then_switches_every_output_off(bench):
    written = []
    program = bench.psu.set_voltage
    bench.psu.set_voltage = lambda channel, v: (written.append(v), program(channel, v))
    supply = board_supply(bench)
    supply.safe_state()
    assert written == pytest.approx([4.0, 3.0, 2.0, 1.0, 0.0])
    assert not any(bench.psu.on.values()) and not bench.boards.powered


def test_a_safe_supply_is_built_from_a_wirings_options(bench):
    supply = SafeSupply.from_options(bench.psu, {"channel": 1, "voltage_v": 5.0, "current_limit_a": 0.5})
    assert supply.channels == {1: SupplyChannel(max_v=5.0, max_current_a=0.5)}
    rated = SafeSupply.from_options(bench.psu, {"channel": 2, "max_step_v": 0.5})
    assert rated.channels == {2: SupplyChannel(max_v=25.0, max_current_a=1.0, max_step_v=0.5)}
    assert driver_options("psu", {"channel": 2, "voltage_v": 5.0, "max_v": 6.0, "max_current_a": 1.0}) == {
        "channel": 2, "voltage_v": 5.0}


def test_the_supply_driver_clears_protection_only_through_the_safe_supply_and_reports_it():
    rm = pyvisa.ResourceManager(f"{SIM_BENCH.parent / 'keysight_e36312a.yaml'}@sim")
    driver = open_instrument("keysight_e36312a", "USB0::0x2A8D::0x1102::MY59005678::INSTR", rm, timeout_s=0.05)
    events = []
    supply = SafeSupply(driver, {2: SupplyChannel(max_v=12.0, max_current_a=1.0)}, on_event=events.append)
    assert supply.over_current(2)
    assert supply.clear_protection(2) is True and not supply.over_current(2)
    assert events[0].startswith("psu: channel 2 protection cleared (it had tripped")
    driver.close()


# -- the simulated parts, as strict as the real ones -------------------------------------------
def test_the_simulated_smu_keeps_its_level_across_configure_and_only_a_reset_zeroes_it(stale):
    stale.configure(1e-3, nplc=2.0)
    assert stale.source_voltage() == 5.0
    stale.reset()
    assert (stale.source_voltage(), stale.compliance_a, stale.protection_v) == (0.0, 105e-6, None)


def test_the_simulated_smu_holds_its_output_at_the_overvoltage_protection(stale):
    stale.set_voltage_protection(0.45)  # PROT2
    stale.output(True)
    assert volts_seen(stale) == [2.0]
    assert stale.settings()["voltage_protection_tripped"] is True
    with pytest.raises(InstrumentError, match="voltage_protection_v: 300.0 V is outside 0..210 V"):
        stale.set_voltage_protection(300.0)


def _driver_settings(kind, address, **options):
    rm = pyvisa.ResourceManager(f"{SIM_BENCH}@sim")
    driver = open_instrument(kind, address, rm, timeout_s=0.05, **options)
    try:
        return driver.settings()
    finally:
        driver.close()


def test_each_simulated_part_reports_its_settings_under_its_drivers_names(bench):
    smu = _driver_settings("keithley2450", "USB0::0x05E6::0x2450::04096331::INSTR", compliance_a=1e-3)
    dmm = _driver_settings("keysight34465a", "USB0::0x2A8D::0x0101::MY57503317::INSTR")
    psu = _driver_settings("keysight_e36312a", "USB0::0x2A8D::0x1102::MY59001234::INSTR")
    bench.smu.configure(1e-3)
    for driver, sim in ((smu, bench.smu), (dmm, bench.dmm), (psu, bench.psu)):
        settings = sim.settings()
        assert settings.keys() == driver.keys()
        assert {k: type(v) for k, v in settings.items() if v is not None} == {
            k: type(v) for k, v in driver.items() if v is not None and settings[k] is not None}
    assert bench.psu.settings()["ch1_output_on"] is True and bench.psu.settings()["ch1_voltage_v"] == 5.0


def test_the_simulated_meter_loads_a_node_through_10_mohm_and_not_through_impedance_auto(bench):
    bench.daq.write(np.full(bench.layout.n_ao, 0.3))
    node = "r0c1"  # a hidden node, some hundred ohms from the driven ones
    truth = bench.node_voltages("free")[bench.network.index(node)]
    dmm = bench.probe_dmm(node=node)
    dmm.configure_dc_volts(1.0, nplc=100, input_impedance="10M")
    loaded = dmm.measure_dc_volts()
    dmm.configure_dc_volts(1.0, nplc=100)
    assert dmm.settings()["input_impedance"] == "10G"
    assert abs(dmm.measure_dc_volts() - truth) < 2e-6
    assert truth - loaded > 5e-6  # the 10 MOhm draws the node down
    source = bench.probe_dmm(node=bench.network.nodes[int(bench.network.sources[0])])
    source.configure_dc_volts(1.0, nplc=100, input_impedance="10M")
    assert abs(source.measure_dc_volts() - bench.node_voltages("free")[bench.network.sources[0]]) < 2e-6


def test_the_simulated_meter_raises_an_overload_naming_range_and_reading(bench):
    bench.daq.write(np.full(bench.layout.n_ao, 0.3))
    dmm = bench.probe_dmm(node="r0c0")
    dmm.configure_dc_volts(0.1)
    with pytest.raises(InstrumentError) as caught:
        dmm.measure_dc_volts()
    assert str(caught.value) == ("SIM-34465A: overload on the 0.1 V range: READ? gave +9.90000000E+37 "
                                 "(the input is beyond 120 % of the range)")


@pytest.mark.parametrize("options, message", [
    ({"range_v": 3.0}, "range_v 3.0 V is not one of 0.1, 1.0, 10.0, 100.0, 1000.0"),
    ({"nplc": 0.5}, "nplc 0.5 is not one of"),
    ({"aperture_s": 5.0}, r"aperture_s 5.0 s is outside 2e-05..1 s"),
    ({"autozero": "AUTO"}, "autozero 'AUTO' is not one of ON, OFF, ONCE"),
    ({"input_impedance": "1G"}, "input_impedance '1G' is not one of auto, 10M"),
])
def test_the_simulated_meter_takes_only_the_34465as_settings(bench, options, message):
    before = bench.dmm.settings()
    with pytest.raises(InstrumentError, match=message):
        bench.dmm.configure_dc_volts(**options)
    assert bench.dmm.settings() == before


def test_the_simulated_meter_reads_back_aperture_and_autozero_once_as_the_meter_does(bench):
    bench.dmm.configure_dc_volts(10.0, aperture_s=0.1, autozero="ONCE", input_impedance="10M")
    settings = bench.dmm.settings()
    assert (settings["aperture_enabled"], settings["aperture_s"], settings["nplc"]) == (True, 0.1, 5.0)
    assert (settings["autozero"], settings["autorange"], settings["input_impedance"]) == (False, False, "10M")
