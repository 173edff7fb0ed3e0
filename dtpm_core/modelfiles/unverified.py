"""The one switch that lets model and training files without a checksum load (issue 21).

Every file the product writes (base, adapter, single-pass weights, training checkpoints)
carries checksums over its tensors and its metadata, verified on load. A file without them
(written by a DTPM Studio from before the checksums, or stripped of them by an edit) is
refused unless the user says otherwise, explicitly: `--allow-unverified-models` (dtpm-restore,
dtpm-train) or the environment variable below. A checksum that is present but wrong is refused
always.

An environment variable, not a parameter threaded through every loader, so that the option
reaches every process of a run (torchrun workers, the app's workers) the same way.
"""

from __future__ import annotations

import os

UNVERIFIED_ENV = "DTPM_ALLOW_UNVERIFIED_MODELS"
"""Set to 1 to load model and checkpoint files that carry no checksum."""
UNVERIFIED_OPTION = "--allow-unverified-models"
"""The command-line option of dtpm-restore and dtpm-train that sets UNVERIFIED_ENV."""
UNVERIFIED_HELP = ("load model and checkpoint files that carry no checksum (written by an old "
                   "version, or edited): their contents cannot be verified; a wrong checksum "
                   f"is refused all the same (same as {UNVERIFIED_ENV}=1)")
_TRUE = {"1", "true", "yes", "on"}


def unverified_allowed() -> bool:
    """Whether files without a checksum may load (the user said so)."""
    return os.environ.get(UNVERIFIED_ENV, "").strip().lower() in _TRUE


def allow_unverified() -> None:
    """Let files without a checksum load in this process and the processes it starts (what
    the command-line option does)."""
    os.environ[UNVERIFIED_ENV] = "1"


def no_checksum_message(path: object, what: str, missing: str) -> str:
    """The refusal of a file without a checksum: which file, what is missing, what to do."""
    return (f"{path}: this {what} carries no checksum ({missing}), so its contents cannot be "
            "verified (written by an old version of DTPM Studio, or edited); export or "
            f"download it again, or pass {UNVERIFIED_OPTION} (or set {UNVERIFIED_ENV}=1) to "
            "load it anyway")
