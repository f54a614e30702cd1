"""The nidaqmx fake's devices (see :mod:`fake_nidaqmx`): each an autospecced ``Device`` as
its model (:mod:`instruments.daq.models`) would report it, its product type, serial number,
physical channel lists, rates, ranges and ``do_trig_usage``; and the lookup of a channel's
device model that refuses a device or a channel that is not there, as DAQmx does.
"""

from __future__ import annotations

import functools

from fake_nidaqmx_common import daq_error, device_of, on_first_use, spec
from nidaqmx.constants import TriggerUsage
from nidaqmx.error_codes import DAQmxErrors as E
from nidaqmx.system import Device
from nidaqmx.system._collections.physical_channel_collection import PhysicalChannelCollection

from instruments.daq import models


class DevicesMixin:
    """:class:`~fake_nidaqmx.FakeNidaqmx`'s devices (it holds ``device_models``)."""

    def _new_device(self, name: str, model_name: str, k: int):
        m = models.MODELS.get(model_name)
        device = spec(Device)
        device.name = name
        device.product_type = model_name
        device.serial_num = 0x01F2A3B0 + k
        for attribute, kind in (("ao_physical_chans", "ao"), ("ai_physical_chans", "ai"),
                                ("co_physical_chans", "co"), ("do_lines", "do")):
            on_first_use(device, attribute, functools.partial(channel_list, m, name, kind))
        if m is not None:
            device.ai_max_single_chan_rate = m.ai_single_rate_hz
            device.ai_max_multi_chan_rate = m.ai_rate_hz
            device.ao_max_rate = m.ao_rate_hz
            device.ao_voltage_rngs = list(m.ao_range_v) if m.n_ao else []
            device.ai_voltage_rngs = [x for r in sorted(m.ai_ranges_v) for x in (-r, r)]
            device.do_trig_usage = [TriggerUsage.START, TriggerUsage.PAUSE] if m.hw_timed_do_ports else []
        return device

    def _model(self, channel: str, kind: str, task_name: str) -> models.DaqModel:
        """The model of the device of ``channel``; -200220 / -200170 as DAQmx when the device
        or the channel is not there."""
        device = device_of(channel)
        m = self.device_models.get(device)
        if m is None:
            raise daq_error(f"Device identifier is invalid.\nDevice Specified: {device}", E.INVALID_DEVICE_ID, task_name)
        if channel not in m.physical_channels(device, kind):
            raise daq_error(
                f"Physical channel specified does not exist on this device.\n"
                f"Refer to the documentation for channels available on this device.\n"
                f"Device: {device}\nPhysical Channel Name: {channel.split('/', 1)[1]}",
                E.PHYSICAL_CHAN_DOES_NOT_EXIST, task_name)
        return m


def channel_list(m: models.DaqModel | None, device: str, kind: str):
    """A device's physical channel collection of ``kind``, its names as NI-DAQmx lists them."""
    collection = spec(PhysicalChannelCollection)
    collection.channel_names = list(m.physical_channels(device, kind)) if m else []
    return collection
