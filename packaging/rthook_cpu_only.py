"""PyInstaller runtime hook of CPU-only bundles (DTPM_BUNDLE_CPU_ONLY=1): hide the GPUs.

Such a bundle may have been built from a CUDA build of torch with the GPU-only libraries left
out; torch must then never pick a GPU (device "auto"), or it would look for them."""

import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""
