"""Batch restoration on a Ray cluster: `dtpm-restore --cluster [ADDRESS]`.

The driver (the `dtpm-restore` process) plans every output name with `dtpm_core.files.output_plan`
before any work starts, exactly as a single-process run does; a pool of Ray actors, each
holding one loaded engine, then restores the planned files one at a time with the CLI's own
per-file function, reading and writing a folder that every node mounts.

    arguments.py  the --cluster options (no ray: `--help` stays fast)
    connect.py    reaching Ray and sizing the worker pool
    worker.py     the actor: one engine, loaded once, restoring one file per call
    pool.py       handing files to workers, retrying the files of lost workers
    results.py    the per-file results table written beside the outputs
    tally.py      what became of each file: the table's rows, the CLI's summary and exit status
    faults.py     fault injection (a killed worker, a killed driver) for tests and drills
    driver.py     the whole job: connect, plan checks, pool, progress, summary

Nothing here imports ray at module level: importing this package (as `dtpm-restore --help`
does) never loads it.
"""
