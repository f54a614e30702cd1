"""Probe a bench: ask every part of a wiring whether it is there and is what the wiring says.

:func:`probe` goes through the parts a wiring names, on the connected hardware or on the
simulated bench, and returns one :class:`Finding` per check:

- the DAQ: the NI devices present (``nidaqmx.system.System.local().devices``), each wiring
  device's product type, and every physical channel the wiring uses against the device's
  own channel lists (``ao_physical_chans``, ``ai_physical_chans``, ``co_physical_chans``,
  ``do_lines``);
- each SCPI instrument: its ``*IDN?`` reply against the model its kind stands for, and on a
  Keithley 2450 its command set (``*LANG?``: the drivers speak SCPI, not TSP);
- the edge bus: a scan (:meth:`~instruments.bus.client.BusClient.scan`) against the boards
  the wiring expects: missing boards, boards the wiring does not name, boards of the other
  edge kind, replies lost to noise.

On the simulated bench the DAQ goes through the same checks, on the NI-DAQmx system the
simulated DAQ presents (:mod:`instruments.sim.simsystem`: the capability table's devices and
channel lists), so a wiring that names a channel its device lacks fails there too.

Nothing is written to an output and no instrument is configured: a probe only asks. What
cannot be reached (no NI-DAQmx driver, no VISA library, a port that does not open, an
instrument that does not answer) is one finding, not a traceback, and the probe goes on to
the next part.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .wiring import Wiring

#: What each instrument kind's ``*IDN?`` reply names (its model field).
IDN_MODEL = {"keithley2450": "2450", "keysight34465a": "34465A", "keysight_e36312a": "E36312A"}

PROBE_TIMEOUT_S = 2.0
"""How long an instrument may take to answer one query during a probe (s)."""


@dataclass(frozen=True)
class Finding:
    """One check of one part.

    Attributes:
        part: what was checked, e.g. ``"daq PXI1Slot3"``, ``"smu"``, ``"bus"``.
        ok: True when the part is what the wiring says.
        message: what was found, one line.
    """

    part: str
    ok: bool
    message: str

    def line(self) -> str:
        return f"{self.part}: {'ok, ' if self.ok else ''}{self.message}"


def probe(wiring: Wiring, *, simulate: bool = False, system=None, resource_manager=None,
          open_bus: Callable[[str], object] | None = None, **bench_options) -> list[Finding]:
    """Every finding about ``wiring``'s parts, DAQ first, then instruments, then the bus.

    Args:
        simulate: probe the simulated bench built from ``wiring`` (and ``bench_options``)
            instead of the hardware.
        system: the NI-DAQmx system to look devices up in (default the local one).
        resource_manager: the pyvisa resource manager (default pyvisa's own).
        open_bus: opens the bus client on a port (default
            :class:`~instruments.bus.client.BusClient`).
    """
    if simulate:
        return list(_simulated(wiring, **bench_options))
    found = list(_daq(wiring, system))
    found += _instruments(wiring, resource_manager)
    found += _bus(wiring, open_bus)
    return found


# -- the DAQ -----------------------------------------------------------------------------------


def _channel_lists(device) -> dict[str, set[str]]:
    """The physical channel names of a device by kind (``ao``, ``ai``, ``ctr``, ``port``)."""
    lists = {}
    for kind, attribute in (("ao", "ao_physical_chans"), ("ai", "ai_physical_chans"),
                            ("ctr", "co_physical_chans"), ("port", "do_lines")):
        lists[kind] = set(getattr(device, attribute).channel_names)
    return lists


def _used_channels(wiring: Wiring) -> dict[str, list[tuple[str, str]]]:
    """Device -> [(kind, channel)] of every channel the wiring uses."""
    used: dict[str, list[tuple[str, str]]] = {}
    channels = [("ao", o.channel) for o in wiring.outputs] + [("ai", i.channel) for i in wiring.inputs]
    channels.append(("ctr" if "/ctr" in wiring.learn_line else "port", wiring.learn_line))
    for kind, channel in channels:
        used.setdefault(channel.split("/", 1)[0], []).append((kind, channel))
    return used


def _daq(wiring: Wiring, system) -> Iterator[Finding]:
    import nidaqmx.errors

    try:
        if system is None:
            from nidaqmx.system import System

            system = System.local()
        present = list(system.devices.device_names)
    except nidaqmx.errors.DaqNotFoundError:
        yield Finding("daq", False, "NI-DAQmx is not installed on this machine (the nidaqmx package found no "
                                    "driver); install NI-DAQmx from ni.com, or probe with --simulate")
        return
    except nidaqmx.errors.Error as exc:
        yield Finding("daq", False, f"cannot list the NI devices: {_one_line(exc)}")
        return
    used = _used_channels(wiring)
    for name, model in wiring.daq_devices.items():
        part = f"daq {name}"
        if name not in present:
            yield Finding(part, False, f"not found (wiring says {model}); present: {', '.join(sorted(present)) or 'none'}")
            continue
        try:
            device = system.devices[name]
            product = str(device.product_type)
            serial = int(device.serial_num)
            channels = _channel_lists(device)
        except nidaqmx.errors.Error as exc:
            yield Finding(part, False, f"cannot identify it: {_one_line(exc)}")
            continue
        if product != model:
            yield Finding(part, False, f"is a {product} (SN {serial:08X}), wiring says {model}")
            continue
        missing = [ch for kind, ch in used.get(name, []) if ch not in channels[kind]]
        if missing:
            yield Finding(part, False, f"{product} has no channel {', '.join(missing)}")
            continue
        yield Finding(part, True, f"NI {product} SN {serial:08X}, all {len(used.get(name, []))} channels present")
    for name in sorted(set(present) - set(wiring.daq_devices)):
        yield Finding(f"daq {name}", True, "present, not in the wiring")


# -- SCPI instruments --------------------------------------------------------------------------


def _instruments(wiring: Wiring, resource_manager) -> list[Finding]:
    roles = [(role, getattr(wiring, role)) for role in ("smu", "dmm", "psu") if getattr(wiring, role) is not None]
    if not roles:
        return []
    if resource_manager is None:
        import pyvisa

        try:
            resource_manager = pyvisa.ResourceManager()
        except (ValueError, OSError) as exc:
            return [Finding("visa", False, f"no VISA library to reach the {', '.join(r for r, _ in roles)} "
                                           f"({_one_line(exc).rstrip('.')}); install NI-VISA or Keysight IO "
                                           "Libraries, or `pip install pyvisa-py`")]
    return [_instrument(role, inst, resource_manager) for role, inst in roles]


def _instrument(role: str, inst, manager) -> Finding:
    import pyvisa

    if inst.kind == "sim":
        return Finding(role, True, "simulated instrument (kind \"sim\"), nothing to probe")
    try:
        resource = manager.open_resource(inst.address, timeout=PROBE_TIMEOUT_S * 1000)
    except (pyvisa.errors.Error, ValueError, OSError) as exc:
        return Finding(role, False, f"cannot open {inst.address}: {_one_line(exc)}")
    try:
        # every instrument the drivers know ends its messages with a line feed
        resource.read_termination = resource.write_termination = "\n"
        try:
            resource.clear()
        except (pyvisa.errors.Error, NotImplementedError):
            pass  # not every interface has a device clear; a stale reply then shows as a wrong answer
        idn = resource.query("*IDN?").strip()
        if not idn:
            return Finding(role, False, f"{inst.address} gives an empty reply to *IDN?: nothing there answers "
                                        f"as a {IDN_MODEL.get(inst.kind, inst.kind)}")
        want = IDN_MODEL.get(inst.kind)
        fields = [f.strip() for f in idn.split(",")]
        model = fields[1] if len(fields) > 1 else idn
        if want is not None and want not in model:
            return Finding(role, False, f"{inst.address} answers *IDN? with {idn!r}, not a {want} ({inst.kind})")
        if inst.kind == "keithley2450":
            lang = resource.query("*LANG?").strip().upper()
            if lang != "SCPI":
                return Finding(role, False, f"{inst.address} is in its {lang} command set; switch it to SCPI "
                                            "(MENU > System > Settings > Command Set) and power-cycle it")
        return Finding(role, True, idn)
    except (pyvisa.errors.Error, ValueError, OSError) as exc:
        return Finding(role, False, f"{inst.address} did not answer: {_one_line(exc)}")
    finally:
        try:
            resource.close()
        except pyvisa.errors.Error:
            pass


# -- the edge bus ------------------------------------------------------------------------------


def _bus(wiring: Wiring, open_bus) -> list[Finding]:
    if wiring.bus_port is None:
        return [Finding("bus", False, "the wiring names no bus port (bus.port), so its boards cannot be "
                                      "probed")] if wiring.boards else []
    from .bus.client import BusClient, BusError

    open_bus = open_bus or BusClient
    try:
        client = open_bus(wiring.bus_port)
    except BusError as exc:
        return [Finding("bus", False, str(exc))]
    try:
        return _boards(wiring, client)
    except BusError as exc:
        return [Finding("bus", False, f"scan on {wiring.bus_port} failed: {_one_line(exc)}")]
    finally:
        client.close()


def _boards(wiring: Wiring, client) -> list[Finding]:
    result = client.scan()
    heard = {b.address: b for b in result}
    want = set(wiring.boards)
    found: list[Finding] = []
    missing = sorted(want - set(heard))
    extra = sorted(set(heard) - want)
    wrong_kind = sorted(a for a in want & set(heard) if heard[a].kind != wiring.edge_kind)
    if missing:
        found.append(Finding("bus", False, f"{len(missing)} of {len(want)} boards did not answer: "
                                           f"{_addresses(missing)}"))
    if extra:
        found.append(Finding("bus", False, f"boards the wiring does not name answered: {_addresses(extra)}"))
    if wrong_kind:
        kinds = ", ".join(f"{a} ({heard[a].kind})" for a in wrong_kind)
        found.append(Finding("bus", False, f"boards of another kind than the wiring's {wiring.edge_kind}: {kinds}"))
    if getattr(result, "garbled", 0):
        found.append(Finding("bus", False, f"{result.garbled} replies arrived garbled over {result.passes} passes; "
                                           "check termination, biasing and cabling"))
    if not found:
        firmware = sorted({b.firmware for b in result})
        found.append(Finding("bus", True, f"all {len(want)} boards answered ({wiring.edge_kind}, firmware "
                                          f"{', '.join(firmware)})"))
    return found


# -- the simulated bench -----------------------------------------------------------------------


def _simulated(wiring: Wiring, **bench_options) -> Iterator[Finding]:
    """The simulated bench probed as the real one: the DAQ through the same checks on the
    NI-DAQmx system of the simulated DAQ (:meth:`~instruments.sim.simdaq.SimDaq.system`, the
    capability table's devices and channels), the instruments by identity, the boards on the
    simulated bus."""
    from .sim.bench import SimBench

    bench = SimBench(wiring, **bench_options)
    try:
        for finding in _daq(wiring, bench.daq.system()):
            if finding.ok and finding.part.startswith("daq ") and finding.message.startswith("NI "):
                finding = Finding(finding.part, True, f"simulated {finding.message}")
            yield finding
        for role in ("smu", "dmm", "psu"):
            if getattr(wiring, role) is not None:
                yield Finding(role, True, getattr(bench, role).identity())
        yield from _boards(wiring, bench.bus)
    finally:
        bench.bus.close()


def _addresses(addresses: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``."""
    runs: list[str] = []
    start = prev = None
    for a in addresses + [None]:
        if a is not None and prev is not None and a == prev + 1:
            prev = a
            continue
        if start is not None:
            runs.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = a
    return ", ".join(runs)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
