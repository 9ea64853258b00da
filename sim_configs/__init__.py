"""Simulator files shipped as package data.

One pyvisa-sim YAML per instrument, the simulated bench file (``bench_sim.yaml``), the demo
recipe and the calibration curves of the simulated detectors (``calibration/``).
"""
