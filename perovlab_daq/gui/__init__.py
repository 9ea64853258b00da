"""Operator window (PyQt5 + pyqtgraph). The only place in the project that imports Qt."""
