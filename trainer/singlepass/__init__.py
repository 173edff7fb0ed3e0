"""Training the single-pass engine: data, objectives, the multitask run and calibration."""
