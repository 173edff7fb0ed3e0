"""PyInstaller runtime hook: in a bundle, `resources/` (icons, samples, bundled models) sits in
the bundle's data folder (`sys._MEIPASS`), not beside the `dtpm_core` package, so tell
`dtpm_core.modelfiles.catalog.resources_dir()` where it is. A DTPM_RESOURCES set by the user is
kept."""

import os
import sys

if getattr(sys, "frozen", False) and hasattr(sys, "_MEIPASS"):
    os.environ.setdefault("DTPM_RESOURCES", os.path.join(sys._MEIPASS, "resources"))
