"""PyMeasure procedures: J-L-V, lifetime, EL/PL spectroscopy.

Instruments are handed in by the runner or the GUI (``procedure.bench``), never built here.
"""
