"""DTPM core: the Diffusion Texture Prior Model, its sampler, inference engines, metrics and I/O.

Rooms, from the bottom up; each imports only those listed before it (an import-linter
contract in pyproject.toml):

    errors, options, config, cli_warnings
                  shared names: exception types, user-facing choices, model configs, warnings
    files/        images in and results out (image I/O, atomic writes, output plans)
    networks/     the DTPM networks as torch modules
    diffusion/    schedule, DDIM sampling, calibration, training objectives, RTV
    modelfiles/   weight files, the catalog of installed models
    backends/     where networks run: device and precision, PyTorch, OpenVINO
    singlepass/   the single-pass model: network, schedule, weight files, graph
    engines/      running either engine on photos: specs, the two restorers, their runner
    evaluation/   metrics and stored scores
    cluster/      `dtpm-restore --cluster` on Ray
    cli           `dtpm-restore`

This package never imports Qt or the trainer; the app and the trainer build on it.
"""

__version__ = "0.1.0"
