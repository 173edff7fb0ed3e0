"""DTPM core: the Diffusion Texture Prior Model, its sampler, inference engine, metrics and I/O.

This package never imports Qt or the trainer; the app and the trainer build on it.
"""

__version__ = "0.1.0"
