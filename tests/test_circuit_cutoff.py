"""Nodes held only by cut-off edges have no unique voltage: named, never returned silently."""

import numpy as np
import pytest

from instruments.sim.circuit import CutOffNodeError, DCSolver, FloatingNodeError, Tolerances, solve_dc
from instruments.sim.edges import MixedEdges, Mosfet, Resistor
from instruments.sim.network import from_edge_list


def chain():
    """in -- M1 -- mid -- M2 -- gnd, plus a resistor leg in -- r -- out -- gnd."""
    return from_edge_list([("in", "mid"), ("mid", "gnd"), ("in", "out"), ("out", "gnd")])


def level1(n):
    return Mosfet(n, subthreshold_v=None, state_min=-np.inf, state_max=np.inf)


def test_node_held_only_by_cut_off_mosfets_is_named():
    net = from_edge_list([("in", "mid"), ("mid", "gnd")])
    with pytest.raises(CutOffNodeError) as info:
        solve_dc(net, level1(2), [0.5, 0.5], {"in": 0.45, "gnd": 0.0})
    assert info.value.nodes == ["mid"]
    assert info.value.conductances_s == [0.0]
    assert "mid (0 S)" in str(info.value) and "cut-off" in str(info.value)
    assert isinstance(info.value, FloatingNodeError)  # callers that catch floating nodes catch it


def test_only_the_cut_off_nodes_are_named_in_a_mixed_network():
    net = chain()
    dev = MixedEdges(4, parts=((level1(2), [0, 1]), (Resistor(2), [2, 3])))
    with pytest.raises(CutOffNodeError) as info:
        solve_dc(net, dev, [0.6, 0.6, 1e-3, 1e-3], {"in": 0.45, "gnd": 0.0})
    assert info.value.nodes == ["mid"]
    # one gate on: mid is held, the network solves
    v = solve_dc(net, dev, [0.6, 2.0, 1e-3, 1e-3], {"in": 0.45, "gnd": 0.0})
    assert v[net.index("mid")] == pytest.approx(0.0, abs=1e-12)
    assert v[net.index("out")] == pytest.approx(0.225, rel=1e-14)


def test_zero_conductance_resistors_cut_a_node_off():
    net = from_edge_list([("in", "mid"), ("mid", "gnd")])
    with pytest.raises(CutOffNodeError) as info:
        solve_dc(net, Resistor(2, state_min=0.0), [0.0, 0.0], {"in": 0.45, "gnd": 0.0})
    assert info.value.nodes == ["mid"]


def test_subthreshold_edges_hold_a_node():
    # deep below threshold the edges still conduct ~1e-14 S: the node is determined
    net = from_edge_list([("in", "mid"), ("mid", "gnd")])
    v = solve_dc(net, Mosfet(2, state_min=0.0), [0.5, 0.5], {"in": 0.45, "gnd": 0.0})
    assert 0.0 < v[1] < 0.45


def test_a_shunt_to_ground_determines_the_node():
    net = from_edge_list([("in", "mid"), ("mid", "gnd")])
    solver = DCSolver(net, [0, 2])
    v = solver.solve(level1(2), [0.5, 0.5], np.array([0.45, 0.0]), shunt_s=np.full(3, 1e-12))
    assert v[1] == pytest.approx(0.0, abs=1e-6)  # abs_a / GMIN
    # and the floor is the caller's to choose
    loose = DCSolver(net, [0, 2], Tolerances(cutoff_s=0.0))
    v = loose.solve(level1(2), [0.5, 0.5], np.array([0.45, 0.0]))
    assert np.isfinite(v[1])


def test_shunt_must_be_a_conductance():
    net = from_edge_list([("in", "mid"), ("mid", "gnd")])
    with pytest.raises(ValueError, match="shunt_s"):
        DCSolver(net, [0, 2]).solve(level1(2), [2.0, 2.0], np.array([0.45, 0.0]), shunt_s=-1.0)


def test_compiled_mosfet_solver_names_cut_off_nodes_too():
    from instruments.sim.kernels import MosfetTwinSolver

    net = from_edge_list([("in", "mid"), ("mid", "gnd"), ("in", "m2"), ("m2", "gnd")])
    dev = level1(4)
    fixed, targets = np.array([0, 2]), np.array([3])
    for dense_max in (200, 0):
        m = MosfetTwinSolver.from_device(net, dev, fixed, targets, dense_max=dense_max)
        with pytest.raises(CutOffNodeError) as info:
            m.solve_free(np.array([0.5, 0.5, 2.0, 2.0]), np.array([0.45, 0.0]))
        assert info.value.nodes == ["mid"]
        on = np.array([2.0, 2.0, 2.0, 2.0])
        v = m.solve_free(on, np.array([0.45, 0.0]))
        ref = DCSolver(net, fixed).solve(dev, on, np.array([0.45, 0.0]))
        assert np.allclose(v, ref, rtol=0, atol=1e-12)


def test_injected_current_into_a_resistor_divider():
    # 1 mA into mid, held by 1 kOhm to in (0.4 V) and 1 kOhm to ground: 0.2 V + 0.5 V
    net = from_edge_list([("in", "mid"), ("mid", "gnd")])
    v = solve_dc(net, Resistor(2), [1e-3, 1e-3], {"in": 0.4, "gnd": 0.0}, inject_a=np.array([5.0, 1e-3, 7.0]))
    assert v[1] == pytest.approx(0.7, rel=1e-14)


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_a_twin_networks_free_state_names_a_cut_off_node(backend):
    from instruments.sim.network import Role
    from instruments.sim.twin import TwinNetwork

    net = from_edge_list([("in", "mid"), ("mid", "gnd"), ("in", "out"), ("out", "gnd")],
                         {"in": Role.SOURCE, "gnd": Role.GROUND, "out": Role.TARGET})
    dev = Mosfet(4, subthreshold_v=None, state_min=0.0)
    twin = TwinNetwork(net, dev, np.array([0.5, 0.5, 2.0, 2.0]), backend=backend)
    with pytest.raises(CutOffNodeError) as info:
        twin.free_state([0.45])
    assert info.value.nodes == ["mid"]
