"""PyMeasure procedures: J-L-V, lifetime, EL/PL spectroscopy. Instruments are handed in, never built here."""
