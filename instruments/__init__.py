"""Instrument drivers, one per bench role (source meter, photodetector, laser, power meter, spectrometer).

Each driver is a pymeasure ``Instrument`` (or, for non-VISA devices, a narrow typed facade)
and runs unchanged on real hardware and on the simulated bench.
"""
