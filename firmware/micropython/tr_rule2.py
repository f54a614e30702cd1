# twinrig edge board: protocol 1.1's rule, computed without allocating (protocol 2).
#
# The arithmetic is tr_rule's (PROTOCOL-1.md "Drops and the rule", minor 1), exactly:
# xorshift32 seeded from the uid, the draw (r >> 16) < probability, the drops, the
# contrast clipped to +-2^38 uV^2, tap by the dead band, and
# sign(c) * floor((|c| * gain + 2^47) / 2^48) for gate_charging and continuous,
# clipped to the limits. On a 32-bit port every int of 2^30 or more is a heap object,
# so the learn path here keeps every value below 2^30: the generator in two 16-bit
# halves, the contrast and the gain in 15-bit limbs (each product of two limbs below
# 2^30, each column summed with its carry), the result formed only when it is below
# 2^29. Inputs outside that range (node voltages or offsets of 2^27 uV or more, limits
# beyond +-2^28) take tr_rule's exact big-integer path, which allocates.
#
#   r = Rule2(uid)
#   r.configure(rule, probability, gain, dead_band_uv2)
#   target = r.learn(nodes, offsets, target, state_min, state_max)   # r.updated 0/1

import tr_rule as R

_FAST = 0x8000000        # |node|, |offset| below 2^27: |drop| below 2^29
_LIMIT_FAST = 0x10000000  # |state_min|, |state_max| at most 2^28
_L = 0x7FFF              # one 15-bit limb


class Rule2:
    """The board's rule configuration and generator; ``learn`` allocates nothing on
    the fast path (see above)."""

    def __init__(self, uid):
        self.uid = bytes(uid)
        self.configure(R.RULE_NONE, 0, 0, 0)
        self.reseed()

    def reseed(self):
        s = R.seed_from_uid(self.uid)
        self.r_hi = s >> 16
        self.r_lo = s & 0xFFFF
        self.updated = 0

    def draw(self):
        """The generator's state (the last draw), as one int."""
        return (self.r_hi << 16) | self.r_lo

    def configure(self, rule, probability, gain, dead_band_uv2):
        self.rule = rule
        self.probability = probability
        self.gain = gain
        self.dead_band_uv2 = dead_band_uv2
        g = gain
        self.g0 = g & _L
        self.g1 = (g >> 15) & _L
        self.g2 = (g >> 30) & _L        # gain < 2^40: below 2^10
        d = dead_band_uv2
        if d > R.CONTRAST_LIMIT_UV2:
            d = R.CONTRAST_LIMIT_UV2
        self.d0 = d & _L
        self.d1 = (d >> 15) & _L
        self.d2 = d >> 30               # at most 2^8

    def _next(self):
        # xorshift32 (13, 17, 5) on (hi, lo), 16 bits each
        hi = self.r_hi
        lo = self.r_lo
        nlo = lo ^ ((lo << 13) & 0xFFFF)
        nhi = hi ^ (((hi << 13) | (lo >> 3)) & 0xFFFF)
        nlo ^= nhi >> 1
        lo = nlo ^ ((nlo << 5) & 0xFFFF)
        hi = nhi ^ (((nhi << 5) | (nlo >> 11)) & 0xFFFF)
        self.r_hi = hi
        self.r_lo = lo
        return hi                       # draw >> 16

    def learn(self, nodes, offsets, target, state_min, state_max):
        """One learn on the four node voltages (a buffer) with the four offsets: one
        draw always; returns the new target (clipped to the limits); ``updated`` says
        whether the rule ran."""
        top = self._next()
        rule = self.rule
        if rule == R.RULE_NONE or top >= self.probability:
            self.updated = 0
            return target
        self.updated = 1
        n0 = nodes[0]
        n1 = nodes[1]
        n2 = nodes[2]
        n3 = nodes[3]
        c0 = offsets[0]
        c1 = offsets[1]
        c2 = offsets[2]
        c3 = offsets[3]
        if not (-_FAST < n0 < _FAST and -_FAST < n1 < _FAST and -_FAST < n2 < _FAST
                and -_FAST < n3 < _FAST and -_FAST < c0 < _FAST and -_FAST < c1 < _FAST
                and -_FAST < c2 < _FAST and -_FAST < c3 < _FAST
                and -_LIMIT_FAST <= state_min and state_max <= _LIMIT_FAST):
            return self._slow(nodes, offsets, target, state_min, state_max)
        a = (n0 - c0) - (n1 - c1)
        b = (n2 - c2) - (n3 - c3)
        if a < 0:
            a = -a
        if b < 0:
            b = -b
        # |c| = |a - b| * (a + b), sign of a - b; both factors below 2^30
        u = a - b
        neg = u < 0
        if neg:
            u = -u
        v = a + b
        u0 = u & _L
        u1 = u >> 15
        v0 = v & _L
        v1 = v >> 15
        t = u0 * v0
        m0 = t & _L
        k = t >> 15
        x = u1 * v0
        y = u0 * v1
        t = k + (x & _L) + (y & _L)
        m1 = t & _L
        k = (t >> 15) + (x >> 15) + (y >> 15)
        x = u1 * v1
        t = k + (x & _L)
        m2 = t & _L
        m3 = (t >> 15) + (x >> 15)
        # clip to 2^38 = 256 * 2^30
        if m3 or m2 > 256 or (m2 == 256 and (m1 or m0)):
            m2 = 256
            m1 = 0
            m0 = 0
        if rule == R.RULE_TAP:
            d2 = self.d2
            d1 = self.d1
            if m2 > d2 or (m2 == d2 and (m1 > d1 or (m1 == d1 and m0 > self.d0))):
                target = target - 1 if neg else target + 1
        else:
            g0 = self.g0
            g1 = self.g1
            g2 = self.g2
            t = m0 * g0
            k = t >> 15                          # column 0 is below 2^47: only its carry
            x = m0 * g1
            y = m1 * g0
            t = k + (x & _L) + (y & _L)
            k = (t >> 15) + (x >> 15) + (y >> 15)
            x = m0 * g2
            y = m1 * g1
            z = m2 * g0
            t = k + (x & _L) + (y & _L) + (z & _L)
            k = (t >> 15) + (x >> 15) + (y >> 15) + (z >> 15)
            x = m1 * g2
            y = m2 * g1
            t = k + (x & _L) + (y & _L) + 4      # + 2^47: bit 2 of column 3
            l3 = t & _L
            k = (t >> 15) + (x >> 15) + (y >> 15)
            x = m2 * g2
            t = k + (x & _L)
            l4 = t & _L
            l5 = (t >> 15) + (x >> 15)
            # q = floor(P / 2^48) = (l3 >> 3) + l4 * 2^12 + l5 * 2^27
            if l5 >= 4:                          # 2^29 or more: past any fast range
                return state_min if neg else state_max
            q = (l3 >> 3) + (l4 << 12) + (l5 << 27)
            target = target - q if neg else target + q
        if target < state_min:
            return state_min
        if target > state_max:
            return state_max
        return target

    def _slow(self, nodes, offsets, target, state_min, state_max):
        node_uv = [nodes[0], nodes[1], nodes[2], nodes[3]]
        dvf, dvc = R.drops_uv(node_uv, offsets)
        c = R.contrast_uv2(dvf, dvc)
        return R.apply_rule(self.rule, target, c, self.gain, self.dead_band_uv2,
                            state_min, state_max)


def drops_into(nodes, offsets, out):
    """The calibrated drops (dv_free_uv, dv_clamped_uv) into ``out[0]``, ``out[1]``,
    saturated to i32; no allocation while every value is below 2^27."""
    n0 = nodes[0]
    n1 = nodes[1]
    n2 = nodes[2]
    n3 = nodes[3]
    c0 = offsets[0]
    c1 = offsets[1]
    c2 = offsets[2]
    c3 = offsets[3]
    if (-_FAST < n0 < _FAST and -_FAST < n1 < _FAST and -_FAST < n2 < _FAST
            and -_FAST < n3 < _FAST and -_FAST < c0 < _FAST and -_FAST < c1 < _FAST
            and -_FAST < c2 < _FAST and -_FAST < c3 < _FAST):
        out[0] = (n0 - c0) - (n1 - c1)
        out[1] = (n2 - c2) - (n3 - c3)
        return
    dvf, dvc = R.drops_uv([n0, n1, n2, n3], offsets)
    out[0] = dvf
    out[1] = dvc
