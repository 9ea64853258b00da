"""Simulated bench: a physics world model below PyVISA that answers the instruments' queries."""
