"""Calibration routines that measure the bench and fit models, and the calibration store.

- :mod:`calibration.daq`: the DAQ's analog channels against the multimeter
  (:func:`~calibration.daq.calibrate_daq` -> :class:`~calibration.daq.DaqCalibration`);
- :mod:`calibration.store`: the HDF5 file of dated, versioned calibrations
  (:class:`~calibration.store.Calibration`, ``save``, ``load``, ``latest``, ``diff``).
"""
