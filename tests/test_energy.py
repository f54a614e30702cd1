"""Power and energy (instruments.sim.energy): each edge's I * dV, each source's V * I, equal
in total (Tellegen) and equal to what ngspice's source currents give, on random RC and MOSFET
networks; the inference, update and per-parameter energies from them."""

from __future__ import annotations

import os

import numpy as np
import pytest

from instruments.sim import ngspice
from instruments.sim.circuit import solve_dc
from instruments.sim.edges import Mosfet, Resistor
from instruments.sim.energy import edge_power_w, energy, source_power_w
from instruments.sim.network import random_connected
from instruments.sim.ngspice_tran import source_currents

needs_ngspice = pytest.mark.skipif(not ngspice.available() and os.environ.get("CI") != "true",
                                   reason="ngspice is not installed")


def _case(kind, seed):
    rng = np.random.default_rng(seed)
    net = random_connected(9, 16, seed=seed)
    if kind == "resistor":
        dev, state = Resistor(net.n_edges), 1.0 / rng.uniform(1e3, 50e3, net.n_edges)
    else:
        dev, state = Mosfet(net.n_edges, subthreshold_v=None), rng.uniform(1.5, 3.0, net.n_edges)
    fixed = {net.nodes[0]: 0.45, net.nodes[4]: 0.1, net.nodes[7]: 0.0}
    v = solve_dc(net, dev, state, fixed)
    return net, dev, state, fixed, v


def _deck(net, kind, state, fixed) -> str:
    lines = ["* energy", ".options reltol=1e-9 abstol=1e-15 vntol=1e-12"]
    for k, (a, b) in enumerate(net.edges):
        if kind == "resistor":
            lines.append(f"R{k} n{a} n{b} {1.0 / state[k]:.15g}")
        else:
            lines += [f"VG{k} g{k} 0 DC {state[k]:.15g}", f"M{k} n{a} g{k} n{b} 0 NMOD W=1u L=1u"]
    if kind == "mosfet":
        lines.append(".model NMOD NMOS (LEVEL=1 KP=8.5e-4 VTO=0.7 LAMBDA=0 GAMMA=0)")
    for name, val in fixed.items():
        lines.append(f"VS{net.index(name)} n{net.index(name)} 0 DC {val:.15g}")
    return "\n".join(lines) + "\n.end\n"


@pytest.mark.parametrize("kind", ["resistor", "mosfet"])
@pytest.mark.parametrize("seed", [1, 2])
def test_the_edges_dissipate_what_the_sources_deliver(kind, seed):
    net, dev, state, fixed, v = _case(kind, seed)
    p_edges = edge_power_w(net, dev, state, v)
    idx = [net.index(n) for n in fixed]
    p_sources = source_power_w(net, dev, state, v, idx)
    assert np.all(p_edges >= -1e-18)  # passive devices
    assert p_edges.sum() > 1e-6
    assert abs(p_edges.sum() - p_sources.sum()) <= 1e-9 * p_edges.sum()


@needs_ngspice
@pytest.mark.parametrize("kind", ["resistor", "mosfet"])
def test_the_power_agrees_with_ngspices_source_currents(kind):
    net, dev, state, fixed, v = _case(kind, 3)
    currents = source_currents(_deck(net, kind, state, fixed))
    # SPICE's sign: a source delivering power carries a negative current
    spice_p = sum(-val * currents[f"vs{net.index(name)}"] for name, val in fixed.items())
    ours = edge_power_w(net, dev, state, v).sum()
    assert abs(ours - spice_p) <= 1e-6 * ours, (ours, spice_p)


def test_inference_update_and_per_parameter_energy():
    net, dev, state, fixed, v_free = _case("mosfet", 4)
    clamped = dict(fixed, **{net.nodes[2]: 0.3})
    v_clamped = solve_dc(net, dev, state, clamped)
    e = energy(net, dev, state, v_free, v_clamped, t_inference_s=1e-5, t_pulse_s=1e-4,
               gate_c_f=2.2e-6, gate_source_v=6.6, gate_change_v=np.full(net.n_edges, 1e-5))
    p = edge_power_w(net, dev, state, v_free, 0).sum() + edge_power_w(net, dev, state, v_clamped, 1).sum()
    assert e.power_free_w > 0 and e.power_clamped_w > 0
    assert np.isclose(e.inference_j, p * 1e-5, rtol=1e-12)
    assert np.isclose(e.update_j, p * 1e-4 + 2.2e-6 * 6.6 * 1e-5 * net.n_edges, rtol=1e-12)
    assert np.isclose(e.per_parameter_inference_j, e.inference_j / net.n_edges, rtol=1e-12)
    assert set(e.to_dict()) == {"power_free_w", "power_clamped_w", "inference_j", "update_j",
                                "per_parameter_inference_j", "n_parameters"}
