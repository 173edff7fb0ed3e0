"""Config overrides shared by the trainer tests (a uniquely named module: several test
folders have a conftest.py, so `from conftest import ...` would be ambiguous)."""

FAST = ["model.preset=\"tiny\"", "model.semantic=\"none\"", "data.crop=32",
        "data.batch_size=2", "data.workers=0", "loop.log_every=1", "loop.checkpoint_every=2",
        "loop.validate_every=1000", "loop.val_images=1", "loop.val_size=32",
        "optim.warmup=0", "data.held_out_fraction=0.34"]
"""Overrides that make a training run take seconds on a CPU."""
