"""Emulated edge boards as arrays: the firmware's rule, vectorised over every board.

:class:`SimBoards` holds E edge boards as numpy arrays in address order: identity (address,
uid, kind), the learned integer state and its limits, the rule configuration, the xorshift32
generator, the stored calibration offsets, the telemetry counters and each board's ADC.
:meth:`SimBoards.learn` runs the rule of ``firmware/protocol/PROTOCOL-1.md`` on all boards at
once in one compiled loop; it is the third implementation of that rule, after
:func:`instruments.bus.protocol.learn_step` and the firmware, and is checked against both
and against the golden vectors (tests/test_sim_boards.py).

The bus side (frames, commands, statuses) lives in :mod:`instruments.sim.loopback`; the
physics each board sits on lives in :mod:`instruments.sim.bench`. What joins them here:

* the ADC: a board reads its four terminals (free twin a, b; clamped twin a, b) as integer
  microvolts, ``round(v * 1e6 + offset_uv + noise_uv * N(0, 1))`` saturated to i32;
* the physical device each board drives: :meth:`SimBoards.device_state` converts the board
  states to device units (gate volts, taps) in edge order, except for stuck devices, which
  stay where they stuck;
* a constant per-board update bias (state units per update, the imperfection of
  arXiv:2505.22887), added whenever the board updates, fractions carried over exactly.

Faults: ``mute`` (addresses whose replies are lost on the bus; the boards still act),
``storage_fails`` (addresses whose calibration store fails), :meth:`SimBoards.stick` (a
device that no longer follows its board) and ``powered`` (no power: no bus, no learning;
power coming back restarts every board).

Units: node voltages and drops in integer uV, contrasts in uV^2, states in taps or gate uV.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numba import njit

from ..bus import protocol as p

_M32 = 0xFFFFFFFF
#: Device units per state unit for each kind: a tap is a tap; a gate state is in uV.
DEVICE_UNIT = {p.Kind.DIGIPOT: 1.0, p.Kind.MOSFET: 1e-6}


# -- compiled kernels ----------------------------------------------------------------------


@njit(cache=True, inline="always")
def _sat_i32(v):
    if v < -2147483648:
        return -2147483648
    if v > 2147483647:
        return 2147483647
    return v


@njit(cache=True, inline="always")
def _adc_uv(v, offset_uv, noise_uv, normal):
    x = np.floor(v * 1e6 + offset_uv + noise_uv * normal + 0.5)
    # saturate in float first: a wild float must not wrap when it becomes an integer
    if x < -2147483648.0:
        x = -2147483648.0
    elif x > 2147483647.0:
        x = 2147483647.0
    return np.int64(x)


@njit(cache=True)
def _adc(v_free, v_clamped, terminals, offset_uv, noise_uv, normals, noisy, out):
    """Node voltages (V) -> the four readings of every board (uV, i32)."""
    for i in range(terminals.shape[0]):
        a = terminals[i, 0]
        b = terminals[i, 1]
        sig = noise_uv[i] if noisy else 0.0
        out[i, 0] = _adc_uv(v_free[a], offset_uv[i, 0], sig, normals[i, 0] if noisy else 0.0)
        out[i, 1] = _adc_uv(v_free[b], offset_uv[i, 1], sig, normals[i, 1] if noisy else 0.0)
        out[i, 2] = _adc_uv(v_clamped[a], offset_uv[i, 2], sig, normals[i, 2] if noisy else 0.0)
        out[i, 3] = _adc_uv(v_clamped[b], offset_uv[i, 3], sig, normals[i, 3] if noisy else 0.0)


@njit(cache=True, inline="always")
def gain_delta(c, gain, minor=p.PROTOCOL_MINOR):
    """``c * gain / 2^48`` as a board of protocol minor version ``minor`` rounds it, in int64,
    for ``|c| <= 2^38``, ``0 <= gain < 2^40``: the split of
    :func:`instruments.bus.protocol.gain_delta_int64` (the product needs 79 bits).

    Minor 1: to nearest, halves away from zero, on ``m = |c|`` (every term non-negative,
    the sum below 2^63), the sign put back last. Minor 0: the floor; ``>>`` on int64 is an
    arithmetic shift (floor), ``& (2^24 - 1)`` the remainder mod 2^24."""
    if minor >= 1:
        m = -c if c < 0 else c
        a = m * (gain >> 24)  # < 2^54
        q = (a >> 24) + ((((a & 0xFFFFFF) << 24) + m * (gain & 0xFFFFFF) + 140737488355328) >> 48)
        return -q if c < 0 else q
    a = c * (gain >> 24)  # |a| < 2^54
    return (a >> 24) + ((((a & 0xFFFFFF) << 24) + c * (gain & 0xFFFFFF)) >> 48)  # sum < 2^63


@njit(cache=True)
def _learn(index, node_uv, cal, cfg, state, prng, bias, residue, updated, updates):
    """The firmware's ``learn`` on the boards in ``index``; returns how many states changed.

    ``cfg`` columns: rule, probability, gain, dead band (uV^2), state_min, state_max,
    protocol minor version (how the rule rounds, :func:`gain_delta`).
    """
    changed = 0
    for k in range(index.shape[0]):
        i = index[k]
        x = prng[i]
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        prng[i] = x
        dvf = _sat_i32((node_uv[i, 0] - cal[i, 0]) - (node_uv[i, 1] - cal[i, 1]))
        dvc = _sat_i32((node_uv[i, 2] - cal[i, 2]) - (node_uv[i, 3] - cal[i, 3]))
        c = dvf * dvf - dvc * dvc
        if c > 274877906944:
            c = 274877906944
        elif c < -274877906944:
            c = -274877906944
        rule = cfg[i, 0]
        if rule == 0 or (x >> 16) >= cfg[i, 1]:
            updated[i] = 0
            continue
        s = state[i]
        if rule == 1:
            if c > cfg[i, 3]:
                s += 1
            elif c < -cfg[i, 3]:
                s -= 1
        else:
            s += gain_delta(c, cfg[i, 2], cfg[i, 6])  # |change| <= 2^30, clipped below
        lo = cfg[i, 4]
        hi = cfg[i, 5]
        s = lo if s < lo else hi if s > hi else s
        if bias[i] != 0.0:
            acc = residue[i] + bias[i]
            whole = np.floor(acc)
            residue[i] = acc - whole
            s += np.int64(whole)
            s = lo if s < lo else hi if s > hi else s
        if s != state[i]:
            changed += 1
        state[i] = s
        updated[i] = 1
        updates[i] = (updates[i] + 1) & 0xFFFFFFFF
    return changed


@njit(cache=True)
def _device_state(state, edges, unit, stuck, held, out):
    for i in range(state.shape[0]):
        out[edges[i]] = (held[i] if stuck[i] else state[i]) * unit[i]


@njit(cache=True)
def _pulse(v_free, v_clamped, terminals, adc, normals, noisy, node_uv, cal, cfg, state, prng, bias,
           residue, updated, updates, index):
    """The learn line: every board samples its terminals, then learns."""
    _adc(v_free, v_clamped, terminals, adc[:, :4], adc[:, 4], normals, noisy, node_uv)
    return _learn(index, node_uv, cal, cfg, state, prng, bias, residue, updated, updates)


# -- the boards ----------------------------------------------------------------------------


def uid_for(seed: int, address: int) -> bytes:
    """A board's 8-byte unique id, fixed by ``seed`` and ``address`` (so adding boards to a
    bench leaves the others' ids, and so their generators, unchanged)."""
    return np.random.default_rng((int(seed), int(address))).bytes(8)


def _per_board(value, n: int, dtype, name: str, shape=()) -> np.ndarray:
    arr = np.asarray(value)
    try:
        return np.broadcast_to(arr, (n, *shape)).astype(dtype)
    except ValueError:
        raise ValueError(f"{name} must be a scalar or have shape {(n, *shape)}, got {arr.shape}") from None


class SimBoards:
    """E emulated edge boards, in address order.

    Args:
        addresses: bus addresses 1..247, distinct (sorted here).
        kind: ``"digipot"``, ``"mosfet"``, a :class:`~instruments.bus.protocol.Kind`, or one
            per board.
        seed: fixes the uids (:func:`uid_for`) and the ADC noise.
        uids: explicit 8-byte uids, one per board (overrides ``seed`` for the ids).
        state_min, state_max: state limits (taps, or gate uV), scalar or per board; default
            per kind (taps 0..99, gate 1,000,000..5,500,000 uV).
        initial_state: power-on state, scalar or per board; default ``state_min``.
        edges: the edge each board carries, per board (default 0..E-1 in address order).
        terminals: ``(E, 2)`` network node indices (a, b) of each board's edge; needed by
            :meth:`sample` and :meth:`pulse`.
        fw_version: (major, minor, patch) of the identify reply (default the reference's,
            :data:`~instruments.bus.protocol.FIRMWARE_VERSION`, 1.2.0). It fixes the protocol
            minor version the boards emulate (``protocol_minor``,
            :func:`~instruments.bus.protocol.minor_for_firmware`): 1.2.0 boards round the
            rule's change to nearest and report ``protocol_minor``; 1.1.0 boards take the
            floor and their identify reply ends before that field.
        adc_offset_uv: ADC offset of each terminal (uV), scalar or ``(E, 4)`` in the order
            free a, free b, clamped a, clamped b; 0 for an ideal ADC.
        adc_noise_uv: ADC noise per reading (uV, standard deviation), scalar or per board.
        update_bias: added to the state on every update (state units, may be fractional),
            scalar or per board.
        uptime_ms: the uptime every board reports when there is no ``clock_ms`` (ms, scalar
            or per board): time stands still, as in the golden vectors.
        clock_ms: a callable giving the time of the simulated world (ms); then a board's
            uptime is the time since its last (re)start.
        nodes_uv: what the ADCs read for ``sample_drops`` and a ``learn`` over the bus:
            ``(E, 4)`` integer uV, or a callable returning one.
    """

    def __init__(self, addresses, kind="mosfet", *, seed: int = 0, uids=None, state_min=None,
                 state_max=None, initial_state=None, edges=None, terminals=None,
                 fw_version: tuple[int, int, int] = p.FIRMWARE_VERSION, adc_offset_uv=0.0, adc_noise_uv=0.0,
                 update_bias=0.0, uptime_ms=0, clock_ms: Callable[[], int] | None = None,
                 nodes_uv=None):
        addr = np.asarray(addresses, dtype=np.int64).ravel()
        order = np.argsort(addr, kind="stable")
        addr = addr[order]
        n = addr.size
        if n == 0:
            raise ValueError("need at least one board")
        if addr[0] < p.ADDR_BOARD_MIN or addr[-1] > p.ADDR_BOARD_MAX:
            raise ValueError(f"board addresses must be {p.ADDR_BOARD_MIN}..{p.ADDR_BOARD_MAX}, got {addr.tolist()}")
        if np.any(np.diff(addr) == 0):
            raise ValueError(f"duplicate board address in {addr.tolist()}")
        self.n = n
        self.address = addr
        self._index_of = np.full(256, -1, np.int64)
        self._index_of[addr] = np.arange(n)

        def board_order(value, dtype, name, shape=()):
            arr = np.asarray(value)
            if arr.ndim > len(shape):  # given per board in the caller's order
                arr = _per_board(arr, n, dtype, name, shape)[order]
            return _per_board(arr, n, dtype, name, shape)

        if isinstance(kind, (str, p.Kind, int)):
            kind = [kind] * n
        self.kind = board_order([int(p.KINDS[k]) if isinstance(k, str) else int(p.Kind(k)) for k in kind],
                                np.int64, "kind")
        if uids is None:
            self.uid = np.frombuffer(b"".join(uid_for(seed, a) for a in addr), np.uint8).reshape(n, 8).copy()
        else:
            raw = [bytes(u) for u in uids]
            if len(raw) != n or any(len(u) != 8 for u in raw):
                raise ValueError(f"uids must be {n} values of 8 bytes")
            self.uid = np.frombuffer(b"".join(raw), np.uint8).reshape(n, 8)[order].copy()
        lo_default = np.array([p.DEFAULT_LIMITS[p.Kind(k)][0] for k in self.kind])
        hi_default = np.array([p.DEFAULT_LIMITS[p.Kind(k)][1] for k in self.kind])
        self.state_min = lo_default if state_min is None else board_order(state_min, np.int64, "state_min")
        self.state_max = hi_default if state_max is None else board_order(state_max, np.int64, "state_max")
        if (np.any(self.state_min > self.state_max) or self.state_min.min() < p.I32_MIN
                or self.state_max.max() > p.I32_MAX):
            raise ValueError("need state_min <= state_max within i32 on every board")
        self.initial_state = (self.state_min.copy() if initial_state is None
                              else board_order(initial_state, np.int64, "initial_state"))
        bad = np.flatnonzero((self.initial_state < self.state_min) | (self.initial_state > self.state_max))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"board {addr[i]}: initial_state {self.initial_state[i]} is outside "
                             f"{self.state_min[i]}..{self.state_max[i]}")
        self.edges = np.arange(n) if edges is None else board_order(edges, np.int64, "edges")
        if not np.array_equal(np.sort(self.edges), np.arange(n)):
            raise ValueError(f"edges must give each board its own edge 0..{n - 1}, got {self.edges.tolist()}")
        self.terminals = None if terminals is None else board_order(terminals, np.int64, "terminals", (2,))
        self.fw_version = tuple(int(v) for v in fw_version)
        self.protocol_minor = p.minor_for_firmware(self.fw_version)
        # ADC offsets (4 columns) and noise (column 4), packed for one kernel argument
        self._adc = np.empty((n, 5))
        self._adc[:, :4] = board_order(adc_offset_uv, float, "adc_offset_uv", (4,))
        self._adc[:, 4] = board_order(adc_noise_uv, float, "adc_noise_uv")
        if np.any(self._adc[:, 4] < 0):
            raise ValueError("adc_noise_uv must be >= 0")
        self._noisy = bool(np.any(self._adc[:, 4] > 0))
        self.update_bias = board_order(update_bias, float, "update_bias")
        self.device_unit = np.array([DEVICE_UNIT[p.Kind(k)] for k in self.kind])
        self._uptime_fixed = board_order(uptime_ms, np.int64, "uptime_ms")
        self._started_ms = np.zeros(n, np.int64)
        self.nodes_uv = nodes_uv
        self.rng = np.random.default_rng((int(seed), 0xADC))

        self.seed = np.array([p.seed_from_uid(bytes(u)) for u in self.uid], np.int64)
        self.state = self.initial_state.copy()
        # rule, probability, gain, dead band, state_min, state_max, minor: one kernel argument
        self._cfg = np.zeros((n, 7), np.int64)
        self._cfg[:, 4] = self.state_min
        self._cfg[:, 5] = self.state_max
        self._cfg[:, 6] = self.protocol_minor
        self.prng = self.seed.copy()
        self.calibration_uv = np.zeros((n, 4), np.int64)
        self.frames_ok = np.zeros(n, np.int64)
        self.frames_bad = np.zeros(n, np.int64)
        self.updates = np.zeros(n, np.int64)
        self.last_error = np.zeros(n, np.int64)
        self.updated = np.zeros(n, np.int64)
        self._residue = np.zeros(n)
        self._stuck = np.zeros(n, np.bool_)
        self._held = np.zeros(n, np.int64)
        self._node_uv = np.zeros((n, 4), np.int64)
        self._normals = np.zeros((n, 4))
        self._all = np.arange(n)
        self.mute: set[int] = set()
        self.storage_fails: set[int] = set()
        self._powered = True
        #: Incremented whenever a state (or what a device follows) may have changed.
        self.state_version = 0
        self._clock_ms = None
        self.restart()
        # set after the first restart: the boards power on at time 0 of the clock
        self._clock_ms = clock_ms

    # -- configuration views ---------------------------------------------------------------
    @property
    def rule(self) -> np.ndarray:
        """Rule code of every board (:class:`~instruments.bus.protocol.Rule`), read-only."""
        return self._readonly(self._cfg[:, 0])

    @property
    def probability(self) -> np.ndarray:
        """Update probability of every board, in 1/65536, read-only."""
        return self._readonly(self._cfg[:, 1])

    @property
    def gain(self) -> np.ndarray:
        """Gain of every board (state units per uV^2 times 2^48), read-only."""
        return self._readonly(self._cfg[:, 2])

    @property
    def dead_band_uv2(self) -> np.ndarray:
        """Dead band half-width of every board (uV^2), read-only."""
        return self._readonly(self._cfg[:, 3])

    @staticmethod
    def _readonly(a: np.ndarray) -> np.ndarray:
        v = a.view()
        v.flags.writeable = False
        return v

    def index(self, address: int) -> int:
        """Position (0..E-1) of the board at ``address``; -1 when there is none."""
        return int(self._index_of[address]) if 0 <= address <= 255 else -1

    def _positions(self, addresses) -> np.ndarray:
        if addresses is None:
            return self._all
        idx = np.array([self.index(a) for a in np.atleast_1d(addresses)], np.int64)
        if np.any(idx < 0):
            missing = [int(a) for a, i in zip(np.atleast_1d(addresses), idx) if i < 0]
            raise ValueError(f"no board at address {missing[0]}")
        return idx

    # -- direct control (what the bus does, without frames) ----------------------------------
    def configure(self, rule, probability: int = p.PROBABILITY_ONE, gain: int = 0,
                  dead_band_uv2: int = 0, addresses=None) -> None:
        """Set the rule of the boards at ``addresses`` (all when None), as ``configure_rule``
        would; ValueError naming the field for values the firmware refuses."""
        rule = p.RULES[rule] if isinstance(rule, str) else int(rule)
        if rule not in p.RULES.values():
            raise ValueError(f"rule must be one of {sorted(p.RULES)}, got {rule!r}")
        if not 0 <= probability <= p.PROBABILITY_ONE:
            raise ValueError(f"probability must be 0..{p.PROBABILITY_ONE}, got {probability}")
        if not 0 <= gain < p.GAIN_LIMIT:
            raise ValueError(f"gain must be 0..{p.GAIN_LIMIT - 1}, got {gain}")
        if dead_band_uv2 < 0:
            raise ValueError(f"dead_band_uv2 must be >= 0, got {dead_band_uv2}")
        idx = self._positions(addresses)
        allowed = [int(k) for k in p.RULE_KINDS[p.Rule(rule)]]
        wrong = idx[~np.isin(self.kind[idx], allowed)]
        if wrong.size:
            raise ValueError(f"board {self.address[wrong[0]]}: rule {p.Rule(rule).name.lower()} does not apply "
                             f"to a {p.Kind(self.kind[wrong[0]]).name.lower()} board")
        self._cfg[idx, :4] = rule, probability, gain, dead_band_uv2

    def set_config(self, index: np.ndarray, rule: int, probability: int, gain: int, dead_band_uv2: int) -> None:
        """Store an already validated rule configuration on the boards at positions ``index``."""
        self._cfg[index, :4] = rule, probability, gain, dead_band_uv2

    def set_states(self, states, addresses=None) -> None:
        """Set the states of the boards at ``addresses`` (all when None), as ``set_state``
        would; ValueError naming the first board whose value is outside its limits."""
        idx = self._positions(addresses)
        s = np.broadcast_to(np.asarray(states, np.int64), idx.shape)
        bad = np.flatnonzero((s < self.state_min[idx]) | (s > self.state_max[idx]))
        if bad.size:
            j = int(bad[0])
            i = idx[j]
            raise ValueError(f"board {self.address[i]}: state {s[j]} is outside "
                             f"{self.state_min[i]}..{self.state_max[i]}")
        self.state[idx] = s
        self.state_version += 1

    def restart(self, index=None) -> None:
        """Power-on / ``reset`` of the boards at positions ``index`` (all when None): state,
        rule, counters and generator back to power-on; calibration kept."""
        idx = self._all if index is None else np.asarray(index, np.int64)
        self.state[idx] = self.initial_state[idx]
        self._cfg[idx, :4] = 0
        self.frames_ok[idx] = 0
        self.frames_bad[idx] = 0
        self.updates[idx] = 0
        self.last_error[idx] = 0
        self.prng[idx] = self.seed[idx]
        self._residue[idx] = 0.0
        if self._clock_ms is not None:
            self._started_ms[idx] = self._clock_ms()
        self.state_version += 1

    @property
    def powered(self) -> bool:
        """False while the boards have no supply: they neither answer nor learn."""
        return self._powered

    @powered.setter
    def powered(self, on: bool) -> None:
        if on and not self._powered:
            self._powered = True
            self.restart()
        self._powered = bool(on)

    # -- faults --------------------------------------------------------------------------------
    def stick(self, address: int, state: int | None = None) -> None:
        """From now on the device of board ``address`` stays at ``state`` (board units;
        default its present state) whatever the board commands."""
        i = self._positions(address)[0]
        self._held[i] = self.state[i] if state is None else int(state)
        self._stuck[i] = True
        self.state_version += 1

    def unstick(self, address: int) -> None:
        """The device of board ``address`` follows its board again."""
        self._stuck[self._positions(address)[0]] = False
        self.state_version += 1

    @property
    def stuck(self) -> dict[int, int]:
        """Address -> the state (board units) each stuck device is held at."""
        return {int(self.address[i]): int(self._held[i]) for i in np.flatnonzero(self._stuck)}

    # -- checkpoints -----------------------------------------------------------------------------
    def save_state(self) -> dict:
        """Everything the boards hold that changes while they run, as numpy arrays and plain
        values: states, rule configuration, generators, calibration offsets, telemetry
        counters, update-bias residues, stuck devices, faults, power, restart times and the
        ADC noise generator's state. :meth:`load_state` on boards built with the same
        arguments continues exactly from there."""
        return {
            "address": self.address.copy(),
            "state": self.state.copy(),
            "config": self._cfg[:, :6].copy(),  # the minor version follows fw_version
            "prng": self.prng.copy(),
            "calibration_uv": self.calibration_uv.copy(),
            "frames_ok": self.frames_ok.copy(),
            "frames_bad": self.frames_bad.copy(),
            "updates": self.updates.copy(),
            "last_error": self.last_error.copy(),
            "updated": self.updated.copy(),
            "residue": self._residue.copy(),
            "stuck": self._stuck.copy(),
            "held": self._held.copy(),
            "started_ms": self._started_ms.copy(),
            "mute": sorted(int(a) for a in self.mute),
            "storage_fails": sorted(int(a) for a in self.storage_fails),
            "powered": self._powered,
            "state_version": self.state_version,
            "adc_rng": self.rng.bit_generator.state,
        }

    def load_state(self, saved: dict) -> None:
        """Restore what :meth:`save_state` returned (numpy arrays, or the lists a JSON round
        trip makes of them). ValueError when it comes from other boards."""
        address = np.asarray(saved["address"], np.int64)
        if not np.array_equal(address, self.address):
            raise ValueError(f"saved boards are at addresses {address.tolist()}, these at {self.address.tolist()}")
        arrays = []
        for name, target in (
                ("state", self.state), ("config", self._cfg[:, :6]), ("prng", self.prng),
                ("calibration_uv", self.calibration_uv), ("frames_ok", self.frames_ok),
                ("frames_bad", self.frames_bad), ("updates", self.updates), ("last_error", self.last_error),
                ("updated", self.updated), ("residue", self._residue), ("stuck", self._stuck),
                ("held", self._held), ("started_ms", self._started_ms)):
            value = np.asarray(saved[name], target.dtype)
            if value.shape != target.shape:
                raise ValueError(f"saved boards' {name} has shape {value.shape}, these boards need {target.shape}")
            arrays.append((target, value))
        for target, value in arrays:  # only once everything fits
            target[...] = value
        self.mute.clear()
        self.mute.update(int(a) for a in saved["mute"])
        self.storage_fails.clear()
        self.storage_fails.update(int(a) for a in saved["storage_fails"])
        self._powered = bool(saved["powered"])  # not the setter: power coming back would restart them
        self.state_version = int(saved["state_version"])
        self.rng.bit_generator.state = saved["adc_rng"]

    # -- the rule ------------------------------------------------------------------------------
    def learn(self, node_uv, index=None) -> tuple[np.ndarray, np.ndarray]:
        """One ``learn`` on the boards at positions ``index`` (all when None).

        Args:
            node_uv: ``(E, 4)`` integer node readings (uV, i32): free a, free b, clamped a,
                clamped b of every board (rows of boards outside ``index`` are ignored).

        Each board draws one number from its generator, then updates when its rule is not
        ``none`` and ``(draw >> 16) < probability``, exactly as the firmware. Returns the
        states and the updated flags (0/1) of every board, as copies.
        """
        nodes = np.ascontiguousarray(node_uv, dtype=np.int64)
        if nodes.shape != (self.n, 4):
            raise ValueError(f"node_uv must have shape ({self.n}, 4), got {nodes.shape}")
        idx = self._all if index is None else np.ascontiguousarray(index, dtype=np.int64)
        if _learn(idx, nodes, self.calibration_uv, self._cfg, self.state, self.prng, self.update_bias,
                  self._residue, self.updated, self.updates):
            self.state_version += 1
        return self.state.copy(), self.updated.copy()

    def drops_uv(self, node_uv, index) -> np.ndarray:
        """Calibrated drops ``(len(index), 2)`` (uV, saturated to i32) of the boards at
        positions ``index``, from ``(E, 4)`` readings."""
        nodes = np.asarray(node_uv, np.int64)[index]
        cal = self.calibration_uv[index]
        d = (nodes[:, 0::2] - cal[:, 0::2]) - (nodes[:, 1::2] - cal[:, 1::2])
        return np.clip(d, p.I32_MIN, p.I32_MAX)

    # -- the ADC and the learn line --------------------------------------------------------------
    def _draw_normals(self) -> bool:
        if self._noisy:
            self.rng.standard_normal(out=self._normals)
        return self._noisy

    def _need_terminals(self) -> np.ndarray:
        if self.terminals is None:
            raise ValueError("these boards have no terminals: give SimBoards(terminals=...)")
        return self.terminals

    def sample(self, v_free: np.ndarray, v_clamped: np.ndarray) -> np.ndarray:
        """Every board's four ADC readings ``(E, 4)`` (uV) of the node voltages of the free
        and the clamped twin (V, shape (N,) each), as a new array."""
        terminals = self._need_terminals()
        out = np.empty((self.n, 4), np.int64)
        noisy = self._draw_normals()
        _adc(np.asarray(v_free, float), np.asarray(v_clamped, float), terminals, self._adc[:, :4],
             self._adc[:, 4], self._normals, noisy, out)
        return out

    def pulse(self, v_free: np.ndarray, v_clamped: np.ndarray) -> int:
        """The learn line: every board reads its terminals from the node voltages (V, (N,))
        of both twins and learns. Nothing happens without power. Returns how many states
        changed."""
        if not self._powered:
            return 0
        terminals = self._need_terminals()
        noisy = self._draw_normals()
        changed = _pulse(v_free, v_clamped, terminals, self._adc, self._normals, noisy, self._node_uv,
                         self.calibration_uv, self._cfg, self.state, self.prng, self.update_bias,
                         self._residue, self.updated, self.updates, self._all)
        if changed:
            self.state_version += 1
        return changed

    def read_nodes_uv(self) -> np.ndarray:
        """The ``(E, 4)`` readings (uV) the boards take for a bus command, from ``nodes_uv``."""
        if self.nodes_uv is None:
            raise ValueError("these boards have no node voltages: give SimBoards(nodes_uv=...)")
        v = self.nodes_uv() if callable(self.nodes_uv) else self.nodes_uv
        return np.broadcast_to(np.asarray(v, np.int64), (self.n, 4))

    def uptime_ms(self, i: int) -> int:
        """Uptime of the board at position ``i`` (ms, modulo 2^32)."""
        if self._clock_ms is None:
            return int(self._uptime_fixed[i]) & _M32
        return (int(self._clock_ms()) - int(self._started_ms[i])) & _M32

    # -- the devices --------------------------------------------------------------------------
    def device_state(self, out: np.ndarray | None = None) -> np.ndarray:
        """The state each board's device really has, in device units (gate V, taps), in edge
        order: the board's state, or the stuck value."""
        out = np.empty(self.n) if out is None else out
        _device_state(self.state, self.edges, self.device_unit, self._stuck, self._held, out)
        return out
