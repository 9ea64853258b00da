"""Crash-safe HDF5 storage of runs: a PyMeasure ``Results`` replacement, journal, recovery."""
