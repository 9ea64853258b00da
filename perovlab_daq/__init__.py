"""perovlab-daq: acquisition for perovskite LEDs and nanocrystal films.

J-L-V sweeps, operational lifetime runs, EL and PL spectroscopy, streamed into HDF5,
on real instruments or on a physics-backed pyvisa-sim bench.
"""

__version__ = "0.1.0"
