"""Public analysis API: device efficiency, lifetime, spectra. Pure numpy/scipy, no Qt, no I/O."""
