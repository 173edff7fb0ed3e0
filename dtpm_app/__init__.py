"""DTPM Studio desktop app (PySide6): all Qt code of the project lives in this package.

The app reaches the model only through `dtpm_core.engines.dtpm_restorer.Restorer`, inside worker
threads; torch is imported lazily, after the window is shown (STYLE habits 6 and 7).
"""

__version__ = "0.1.0"
