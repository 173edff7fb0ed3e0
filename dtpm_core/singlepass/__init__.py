"""The single-pass engine (DESIGN section 6): the network, its noise schedule, weight files and
the restorer that runs it on photos."""
