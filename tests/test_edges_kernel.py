"""The compiled MOSFET law of the kernels (kernels._mos) is the law of edges.Mosfet."""

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from instruments.sim.edges import GEN2_S_A_PER_V2, GEN2_VT_V, Mosfet
from instruments.sim.kernels import _mos


@given(st.floats(-0.5, 5.5), st.floats(0.0, 0.45), st.floats(0.0, 0.45), st.sampled_from([0.1, 0.05, 0.02, None]))
@example(vg=GEN2_VT_V + 0.05, va=0.05, vb=0.05, sub_v=0.1)
@example(vg=GEN2_VT_V + 0.05 + 0.2 / np.log(10), va=0.3, vb=0.05, sub_v=0.1)
@example(vg=GEN2_VT_V + 0.1, va=0.1, vb=0.3, sub_v=0.1)
@settings(max_examples=300, deadline=None)
def test_compiled_law_equals_the_device_model(vg, va, vb, sub_v):
    dev = Mosfet(1, subthreshold_v=sub_v)
    i, ga, gb = (float(x[0]) for x in dev.current([vg], [va], [vb]))
    ki, kga, kgb = _mos(GEN2_S_A_PER_V2, GEN2_VT_V, 0.0 if sub_v is None else sub_v, vg, va, vb)
    for want, got in ((i, ki), (ga, kga), (gb, kgb)):
        assert abs(got - want) <= 1e-13 * abs(want) + 1e-300


def test_compiled_law_on_a_grid_of_every_region():
    vg = np.linspace(GEN2_VT_V - 0.4, GEN2_VT_V + 0.8, 241)
    dev = Mosfet(1)
    for vds in (0.0, 1e-4, 0.02, 0.087, 0.3):
        for g in vg:
            want = [float(x[0]) for x in dev.current([g], [0.05 + vds], [0.05])]
            got = _mos(GEN2_S_A_PER_V2, GEN2_VT_V, 0.1, g, 0.05 + vds, 0.05)
            assert np.allclose(got, want, rtol=1e-13, atol=0.0)
