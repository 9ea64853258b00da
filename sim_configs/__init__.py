"""pyvisa-sim YAML files (one per instrument) and the shipped simulated bench file, as package data."""
