"""The simulated bench's NI-DAQmx system: the devices of its DAQ as ``nidaqmx.system.System``
shows them, so ``hostctl rig probe --simulate`` asks the simulated bench the same questions
it asks the real one.

It answers the part of the nidaqmx API the probe reads (nidaqmx 1.x, ``nidaqmx.system``):
``System.devices.device_names``, ``System.devices[name]`` (an unknown name raises
:class:`nidaqmx.errors.DaqError` with DAQmx error -200220, "Device identifier is invalid",
as NI-DAQmx does), and of each device ``name``, ``product_type``, ``serial_num`` and the
channel collections ``ao_physical_chans``, ``ai_physical_chans``, ``co_physical_chans`` and
``do_lines``, each with ``channel_names``. The channel lists are the capability table's
(:meth:`instruments.daq.models.DaqModel.physical_channels`), named as NI-DAQmx names them
(``Dev1/ao0``, ``Dev1/ctr0``, ``Dev1/port0/line0``): a wiring that names a channel the
device lacks fails the probe here as it would on the bench. A model the table does not know
has no channels at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..daq import models

#: DAQmx error code for a device name that is not in the system (NI-DAQmx C reference,
#: DAQmxErrorInvalidDeviceID).
INVALID_DEVICE_ID = -200220


@dataclass(frozen=True)
class SimChannels:
    """A physical channel collection: ``channel_names`` in NI-DAQmx's order."""

    channel_names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SimDevice:
    """One simulated NI device: its product type, serial number and physical channels."""

    name: str
    product_type: str
    serial_num: int
    ao_physical_chans: SimChannels
    ai_physical_chans: SimChannels
    co_physical_chans: SimChannels
    do_lines: SimChannels

    @classmethod
    def of(cls, name: str, product_type: str, serial_num: int) -> "SimDevice":
        """The device ``name`` of model ``product_type`` with the capability table's channels."""
        m = models.MODELS.get(product_type)

        def chans(kind: str) -> SimChannels:
            return SimChannels(list(m.physical_channels(name, kind)) if m is not None else [])

        return cls(name, product_type, int(serial_num), chans("ao"), chans("ai"), chans("co"), chans("do"))


class SimDevices:
    """``System.devices``: the names, and each device by name."""

    def __init__(self, devices: list[SimDevice]):
        self._by_name = {d.name: d for d in devices}

    @property
    def device_names(self) -> list[str]:
        return list(self._by_name)

    def __getitem__(self, name: str) -> SimDevice:
        try:
            return self._by_name[name]
        except KeyError:
            import nidaqmx.errors

            raise nidaqmx.errors.DaqError(
                f"Device identifier is invalid.\nDevice Specified: {name}", INVALID_DEVICE_ID) from None

    def __len__(self) -> int:
        return len(self._by_name)


class SimSystem:
    """``nidaqmx.system.System.local()`` of a simulated bench.

    Args:
        devices: device name -> product type (a wiring's ``daq_devices``), in the order NI
            MAX would list them.
        first_serial: the first device's serial number; the others count up from it.
    """

    def __init__(self, devices: dict[str, str], first_serial: int = 0x01E0_0000):
        self.devices = SimDevices([SimDevice.of(name, product, first_serial + k)
                                   for k, (name, product) in enumerate(devices.items())])
